"""TimeDistributed(Conv3DTranspose) against the naive float64 reference and the PyTorch oracle;
gradients against the reference and finite differences; training-state switches."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref

from conv3dt_studio.compute import Conv3DTranspose, Graph, Input, TimeDistributed
from conv3dt_studio.compute import conv3d_transpose_ops as ops
from conv3dt_studio.compute.activations import ACTIVATIONS
from conv3dt_studio.compute.backend import get_backend
from conv3dt_studio.compute.errors import ShapeError, StateError

NUMPY = get_backend("numpy")


def _t3(v):
    return ref._triple(v)


def make(x_shape, seed=0, **params):
    """(layer, wrapper, graph) for 6-D data of ``x_shape``."""
    params.setdefault("activation", "linear")
    layer = Conv3DTranspose(**params)
    td = TimeDistributed(layer)
    graph = Graph([Input(shape=tuple(x_shape[1:])), td], backend="numpy", seed=seed)
    return layer, td, graph


def x_shape_of(spatial, c, data_format, batch=1, time=2):
    if data_format == "channels_first":
        return (batch, time, c, *spatial)
    return (batch, time, *spatial, c)


def random_weights(rng, size, f, c, use_bias, scale=1.0):
    k = (rng.standard_normal((*_t3(size), f, c)) * scale).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32) if use_bias else None
    return k, b


def assert_close(actual, expected, rtol=2e-5):
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape
    scale = max(np.abs(expected).max(), 1e-30)
    err = np.abs(actual.astype(np.float64) - expected).max()
    assert err <= rtol * scale, f"max abs error {err:.3g}, scale {scale:.3g}"


# (size, stride, dilation, output_padding, spatial input)
GEOMETRIES = [
    (3, 1, 1, None, (2, 3, 2)),
    (1, 1, 1, None, (2, 2, 3)),
    (2, 1, 1, None, (3, 2, 2)),
    (4, 1, 1, None, (2, 2, 2)),
    (5, 1, 1, None, (1, 2, 1)),
    ((1, 2, 3), (1, 2, 3), 1, None, (2, 2, 2)),
    ((4, 5, 2), (2, 3, 1), 1, None, (2, 2, 3)),
    ((3, 1, 4), (3, 3, 2), (2, 1, 2), None, (2, 2, 2)),
    ((2, 3, 5), 1, (3, 2, 1), None, (2, 2, 2)),
    (1, 3, 1, None, (2, 2, 2)),
    (2, 3, 1, None, (2, 3, 2)),
    (2, 2, 2, None, (2, 2, 2)),
    ((3, 2, 2), (2, 3, 2), (2, 2, 3), None, (2, 2, 2)),
    (3, 2, 1, 1, (2, 2, 2)),
    ((2, 4, 3), (3, 2, 2), 1, (2, 1, 0), (2, 2, 2)),
    (3, 3, 2, (2, 0, 1), (2, 2, 2)),
    ((5, 1, 2), (2, 1, 3), (1, 1, 2), (1, 0, 2), (2, 3, 2)),
]
GEOM_IDS = [f"k{g[0]}-s{g[1]}-d{g[2]}-op{g[3]}" for g in GEOMETRIES]


def _layer_params(geom, same, data_format, use_bias, activation="linear", **extra):
    size, stride, dil, op, _ = geom
    return dict(
        n_filters=2,
        size=size,
        stride=stride,
        dilation_rate=dil,
        padding=same,
        data_format=data_format,
        use_bias=use_bias,
        activation=activation,
        output_padding=op,
        **extra,
    )


def _ref_kw(geom, same):
    size, stride, dil, op, _ = geom
    return dict(stride=stride, dilation=dil, same=same, output_padding=op)


# --------------------------------------------------------------------------- reference self-check


def test_reference_geometry_known_values():
    """The reference's own crop table, against hand-worked Keras values."""
    # (in, size, stride, dilation, same, op) -> (out, crop)
    table = [
        ((4, 3, 1, 1, False, None), (6, 0)),
        ((4, 3, 1, 1, True, None), (4, 1)),
        ((4, 3, 2, 1, True, None), (8, 0)),
        ((4, 4, 2, 1, True, None), (8, 1)),
        ((4, 1, 3, 1, False, None), (12, 0)),
        ((4, 3, 2, 2, True, None), (8, 1)),
        ((4, 3, 2, 1, False, 1), (10, 0)),
        ((4, 3, 2, 1, True, 1), (8, 0)),
        ((4, 4, 2, 1, True, 1), (7, 1)),
    ]
    for args, expected in table:
        assert ref.axis_out_and_crop(*args) == expected, args


def test_an_empty_output_is_refused_with_the_axis_and_its_parameters():
    """Keras's "same" length with output_padding, ``(in - 1) * stride + k % 2 + op``, is 0 for an
    even kernel on a 1-long axis with op 0: refused before anything is built or run."""
    assert ref.axis_out_and_crop(1, 2, 1, 1, True, 0)[0] == 0
    params = dict(n_filters=2, size=[1, 1, 2], output_padding=[0, 0, 0], padding=True)
    layer = Conv3DTranspose(**params)
    with pytest.raises(ShapeError) as err:
        layer.compute_output_shape((None, 2, 4, 3, 1))
    msg = str(err.value)
    assert "\n" not in msg and "spatial axis 3" in msg and "length 0" in msg
    assert "size 2" in msg and "output_padding 0" in msg and "at least 1" in msg
    with pytest.raises(ShapeError, match="spatial axis 3"):
        make((1, 2, 2, 4, 3, 1), **params)[2].predict(np.ones((1, 2, 2, 4, 3, 1), np.float32))
    # stride 2 with output_padding 1: one output position
    layer = Conv3DTranspose(**{**params, "stride": [1, 1, 2], "output_padding": [0, 0, 1]})
    assert layer.compute_output_shape((None, 2, 4, 3, 1)) == (None, 2, 4, 3, 1)


def test_reference_naive_matches_torch():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 2, 2, 3, 2))
    k = rng.standard_normal((3, 2, 2, 3, 2))
    a = ref.naive_full(x, k, (2, 1, 3), (1, 2, 1))
    b = ref.torch_full(x, k, (2, 1, 3), (1, 2, 1))
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- forward vs naive


@pytest.mark.parametrize("geom", GEOMETRIES, ids=GEOM_IDS)
@pytest.mark.parametrize("same", [False, True], ids=["valid", "same"])
@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "nobias"])
def test_forward_matches_naive(geom, same, data_format, use_bias, cpu_path):
    rng = np.random.default_rng(len(GEOM_IDS) * same + GEOMETRIES.index(geom))
    c = 3
    x = rng.standard_normal(x_shape_of(geom[4], c, data_format)).astype(np.float32)
    layer, _, graph = make(x.shape, **_layer_params(geom, same, data_format, use_bias))
    k, b = random_weights(rng, geom[0], 2, c, use_bias)
    layer.set_weights([k, b] if use_bias else [k])
    expected = ref.ref_layer(x, k, b, data_format=data_format, **_ref_kw(geom, same))
    info, y = graph.predict(x)
    assert y.dtype == np.float32
    assert info.shape == expected.shape
    assert_close(y, expected)
    # training-mode forward gives the same numbers
    assert_close(graph.forward(x), expected)
    # and the pure shape function agrees
    assert graph.compute_output_shape((None, *x.shape[1:])) == (None, *expected.shape[1:])


@pytest.mark.parametrize("activation", ref.ACTIVATION_NAMES)
@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
def test_every_activation_matches_naive(activation, data_format, cpu_path):
    geom = ((3, 2, 2), 2, 1, None, (2, 2, 2))
    rng = np.random.default_rng(ref.ACTIVATION_NAMES.index(activation))
    c = 2
    x = (rng.standard_normal(x_shape_of(geom[4], c, data_format)) * 0.7).astype(np.float32)
    layer, _, graph = make(x.shape, **_layer_params(geom, True, data_format, True, activation))
    k, b = random_weights(rng, geom[0], 2, c, True, scale=0.5)
    layer.set_weights([k, b])
    expected = ref.ref_layer(
        x, k, b, data_format=data_format, activation=activation, **_ref_kw(geom, True)
    )
    _, y = graph.predict(x)
    assert_close(y, expected)
    if activation == "softmax":
        axis = 2 if data_format == "channels_first" else -1
        np.testing.assert_allclose(y.sum(axis=axis), 1.0, rtol=1e-5)


def test_softmax_uses_channel_axis_with_three_filters():
    """With n_filters != spatial lengths a softmax over the wrong axis cannot pass."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 2, 2, 2, 3, 4)).astype(np.float32)
    layer, _, graph = make(x.shape, n_filters=3, size=(1, 2, 1), activation="softmax")
    k, b = random_weights(rng, (1, 2, 1), 3, 2, True)
    layer.set_weights([k, b])
    expected = ref.ref_layer(x, k, b, activation="softmax")
    _, y = graph.predict(x)
    assert_close(y, expected)


@pytest.mark.parametrize("batch, time", [(1, 1), (2, 3), (3, 1)])
def test_time_distributed_shapes_and_values(batch, time):
    rng = np.random.default_rng(batch * 10 + time)
    x = rng.standard_normal((batch, time, 2, 2, 1, 3)).astype(np.float32)
    layer, _, graph = make(x.shape, n_filters=3, size=(2, 1, 3), stride=(1, 2, 1))
    k, b = random_weights(rng, (2, 1, 3), 3, 2, True)
    layer.set_weights([k, b])
    info, y = graph.predict(x)
    assert y.shape == (batch, time, 3, 3, 2, 5)
    assert_close(y, ref.ref_layer(x, k, b, stride=(1, 2, 1)))
    # each time step is the layer applied to that step alone (weights shared over time)
    for t in range(time):
        _, yt = graph.predict(x[:, t : t + 1].repeat(time, axis=1))
        np.testing.assert_array_equal(yt[:, 0], y[:, t])


def test_channels_last_is_a_transpose_of_channels_first():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 2, 3, 2, 3, 2)).astype(np.float32)
    kw = dict(n_filters=2, size=(2, 3, 2), stride=(2, 1, 3), padding=True, activation="tanh")
    lf, _, gf = make(x.shape, **kw)
    xl = np.moveaxis(x, 2, -1)
    ll, _, gl = make(xl.shape, data_format="channels_last", **kw)
    k, b = random_weights(rng, (2, 3, 2), 2, 3, True)
    lf.set_weights([k, b])
    ll.set_weights([k, b])
    _, yf = gf.predict(x)
    _, yl = gl.predict(xl)
    np.testing.assert_allclose(np.moveaxis(yf, 2, -1), yl, rtol=1e-6, atol=1e-6)


def test_toolkit_example_shape(cpu_path):
    """Data (10, 6, 5, 64, 64, 3), channels_first, defaults -> (10, 6, 3, 66, 66, 5)."""
    layer, _, graph = make((10, 6, 5, 64, 64, 3), activation="relu")
    assert graph.compute_output_shape((10, 6, 5, 64, 64, 3)) == (10, 6, 3, 66, 66, 5)
    assert layer.get_weights()[0].shape == (3, 3, 3, 3, 5)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, 6, 5, 64, 64, 3)).astype(np.float32)
    info, y = graph.predict(x)
    assert y.shape == info.shape == (1, 6, 3, 66, 66, 5)
    k, b = layer.get_weights()
    expected = ref.torch_layer(x[:, :1], k, b, activation="relu")
    assert_close(y[:, :1], expected, rtol=1e-5)


def test_default_layer_matches_keras_defaults_end_to_end():
    """Default kernel: glorot_uniform with Keras fans; default bias zeros."""
    layer, _, _ = make((1, 1, 4, 2, 2, 2), activation="relu")
    k, b = layer.get_weights()
    assert k.shape == (3, 3, 3, 3, 4)  # (kd, kh, kw, n_filters, in_channels)
    limit = np.sqrt(6 / ((3 + 4) * 27))
    assert np.abs(k).max() <= limit
    np.testing.assert_array_equal(b, np.zeros(3, dtype=np.float32))


@pytest.mark.parametrize("size", [1, 3, 5, (3, 1, 5)])
def test_identity_initializer_passes_input_through(size):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 2, 3, 3, 2, 4)).astype(np.float32)
    _, _, graph = make(
        x.shape, n_filters=3, size=size, padding=True, use_bias=False, filter_initializer="identity"
    )
    _, y = graph.predict(x)
    np.testing.assert_array_equal(y, x)


# --------------------------------------------------------------------------- PyTorch oracle

N_TORCH = 40


def _torch_config(i):
    rng = np.random.default_rng(5000 + i)
    size = tuple(int(v) for v in rng.integers(1, 6, 3))
    stride = tuple(int(v) for v in rng.integers(1, 4, 3))
    dil = tuple(int(v) for v in rng.integers(1, 4, 3))
    op = tuple(int(rng.integers(0, s)) for s in stride) if rng.random() < 0.35 else None
    spatial = tuple(int(v) for v in rng.integers(1, 5, 3))
    return dict(
        size=size,
        stride=stride,
        dil=dil,
        op=op,
        spatial=spatial,
        same=bool(rng.random() < 0.5),
        data_format=("channels_first", "channels_last")[int(rng.random() < 0.5)],
        c=int(rng.integers(1, 4)),
        f=int(rng.integers(1, 4)),
        use_bias=bool(rng.random() < 0.7),
        batch=int(rng.integers(1, 3)),
        time=int(rng.integers(1, 3)),
    )


@pytest.mark.parametrize("i", range(N_TORCH))
def test_forward_matches_torch_oracle(i, cpu_path):
    cfg = _torch_config(i)
    rng = np.random.default_rng(i)
    x = rng.standard_normal(
        x_shape_of(cfg["spatial"], cfg["c"], cfg["data_format"], cfg["batch"], cfg["time"])
    ).astype(np.float32)
    layer, _, graph = make(
        x.shape,
        n_filters=cfg["f"],
        size=cfg["size"],
        stride=cfg["stride"],
        dilation_rate=cfg["dil"],
        padding=cfg["same"],
        data_format=cfg["data_format"],
        use_bias=cfg["use_bias"],
        output_padding=cfg["op"],
    )
    k, b = random_weights(rng, cfg["size"], cfg["f"], cfg["c"], cfg["use_bias"])
    layer.set_weights([k, b] if cfg["use_bias"] else [k])
    expected = ref.torch_layer(
        x,
        k,
        b,
        stride=cfg["stride"],
        dilation=cfg["dil"],
        same=cfg["same"],
        output_padding=cfg["op"],
        data_format=cfg["data_format"],
    )
    _, y = graph.predict(x)
    assert y.shape == expected.shape, cfg
    err = float(np.abs(y - expected).max()) if y.size else 0.0
    scale = float(np.abs(expected).max()) if y.size else 1.0
    ref.TORCH_ERRORS.append((err, err / max(scale, 1e-30), i))
    print(f"torch oracle config {i}: max abs error {err:.3g} (relative {err / scale:.3g})")
    assert err <= 1e-4 * scale, cfg


# --------------------------------------------------------------------------- ops-level gradients


@pytest.mark.parametrize("geom", GEOMETRIES[::2], ids=GEOM_IDS[::2])
@pytest.mark.parametrize("same", [False, True], ids=["valid", "same"])
def test_ops_gradients_finite_differences_float64(geom, same, flat_path):
    """backward_input / backward_kernel are the adjoints of forward (float64, central FD)."""
    size, stride, dil, op, spatial = geom
    g = ops.Geometry.of(
        spatial, _t3(size), _t3(stride), _t3(dil), same, None if op is None else _t3(op)
    )
    rng = np.random.default_rng(GEOMETRIES.index(geom))
    x = rng.standard_normal((2, 2, *spatial))
    k = rng.standard_normal((*_t3(size), 3, 2))
    r = rng.standard_normal((2, 3, *g.out_shape))
    dx = ops.backward_input(np, r, k, g)
    dk = ops.backward_kernel(np, x, r, g, k.shape)
    assert dx.dtype == dk.dtype == np.float64

    def loss(xv, kv):
        return float((ops.forward(np, xv, kv, g) * r).sum())

    h = 1e-3
    fdx = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp_, xm = x.copy(), x.copy()
        xp_[idx] += h
        xm[idx] -= h
        fdx[idx] = (loss(xp_, k) - loss(xm, k)) / (2 * h)
    fdk = np.zeros_like(k)
    for idx in np.ndindex(k.shape):
        kp, km = k.copy(), k.copy()
        kp[idx] += h
        km[idx] -= h
        fdk[idx] = (loss(x, kp) - loss(x, km)) / (2 * h)
    np.testing.assert_allclose(dx, fdx, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(dk, fdk, rtol=1e-7, atol=1e-8)


# --------------------------------------------------------------------------- layer gradients


@pytest.mark.parametrize("geom", GEOMETRIES, ids=GEOM_IDS)
@pytest.mark.parametrize("same", [False, True], ids=["valid", "same"])
@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
def test_layer_gradients_match_reference(geom, same, data_format, cpu_path):
    rng = np.random.default_rng(100 + GEOMETRIES.index(geom))
    c = 2
    x = rng.standard_normal(x_shape_of(geom[4], c, data_format, batch=2)).astype(np.float32)
    layer, td, graph = make(
        x.shape, store=True, update=False, **_layer_params(geom, same, data_format, True)
    )
    k, b = random_weights(rng, geom[0], 2, c, True)
    layer.set_weights([k, b])
    y = graph.forward(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = graph.backward(dy)
    rdx, rdk, rdb, _ = ref.ref_layer_grads(
        x, k, b, dy, data_format=data_format, **_ref_kw(geom, same)
    )
    assert_close(dx, rdx)
    grads = td.get_gradients()
    assert_close(grads["kernel"], rdk)
    assert_close(grads["bias"], rdb)
    np.testing.assert_array_equal(grads["input"], dx)


ACT_GEOM = ((2, 3, 2), (2, 1, 2), (1, 2, 1), None, (2, 2, 2))


def _away_from_kinks(activation, seed, data_format="channels_first"):
    """Data whose pre-activations keep at least 0.05 from every kink of ``activation``."""
    c = 2
    for s in range(seed, seed + 200):
        rng = np.random.default_rng(s)
        x = (rng.standard_normal(x_shape_of(ACT_GEOM[4], c, data_format)) * 0.8).astype(np.float32)
        k, b = random_weights(rng, ACT_GEOM[0], 2, c, True, scale=0.4)
        z = ref.ref_layer_pre(x, k, b, data_format=data_format, **_ref_kw(ACT_GEOM, False))
        kinks = ref.KINKS.get(activation, ())
        if all(np.abs(z - q).min() > 0.05 for q in kinks):
            return x, k, b
    raise AssertionError("no data away from the kinks")  # pragma: no cover


@pytest.mark.parametrize("activation", ref.ACTIVATION_NAMES)
@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
def test_layer_gradients_through_every_activation(activation, data_format, cpu_path):
    x, k, b = _away_from_kinks(activation, 7 * ref.ACTIVATION_NAMES.index(activation), data_format)
    layer, td, graph = make(
        x.shape,
        store=True,
        update=False,
        **_layer_params(ACT_GEOM, False, data_format, True, activation),
    )
    layer.set_weights([k, b])
    y = graph.forward(x)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    dx = graph.backward(dy)
    rdx, rdk, rdb, _ = ref.ref_layer_grads(
        x, k, b, dy, activation=activation, data_format=data_format, **_ref_kw(ACT_GEOM, False)
    )
    grads = td.get_gradients()
    assert_close(dx, rdx, rtol=1e-4)
    assert_close(grads["kernel"], rdk, rtol=1e-4)
    assert_close(grads["bias"], rdb, rtol=1e-4)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_derivatives_finite_differences(name):
    """Each activation's backward against central differences of its own forward."""
    rng = np.random.default_rng(sorted(ACTIVATIONS).index(name))
    z = rng.uniform(-3.5, 3.5, (2, 4, 3, 2))
    for q in ref.KINKS.get(name, ()):
        close = np.abs(z - q) < 0.05
        z[close] += 0.2
    z = z.astype(np.float32).astype(np.float64)
    dy = rng.standard_normal(z.shape)
    act = ACTIVATIONS[name]
    y = act.forward(NUMPY, z, 1)
    dz = act.backward(NUMPY, z, y, dy, 1)
    # float64 FD of the forward (the backend's erf returns float32: larger step for gelu)
    h = 1e-2 if name == "gelu" else 1e-6
    if name == "softmax":
        fd = np.zeros_like(z)
        for idx in np.ndindex(z.shape):
            zp, zm = z.copy(), z.copy()
            zp[idx] += h
            zm[idx] -= h
            diff = act.forward(NUMPY, zp, 1) - act.forward(NUMPY, zm, 1)
            fd[idx] = (diff * dy).sum() / (2 * h)
    else:
        fd = dy * (act.forward(NUMPY, z + h, 1) - act.forward(NUMPY, z - h, 1)) / (2 * h)
    tol = (1e-3, 1e-4) if name == "gelu" else (1e-6, 1e-6)
    np.testing.assert_allclose(dz, fd, rtol=tol[0], atol=tol[1])
    # and the forward equals the naive reference formula
    rtol = 3e-6 if name == "gelu" else 1e-6
    np.testing.assert_allclose(y, ref.ref_activation(z, name, 1), rtol=rtol, atol=1e-7)


FD_CASES = [
    (dict(size=2, stride=2, padding=True, activation="linear"), (2, 2, 1)),
    (dict(size=3, stride=1, dilation_rate=2, activation="tanh"), (2, 1, 2)),
    (
        dict(
            size=(3, 2, 1),
            stride=(2, 1, 3),
            padding=True,
            output_padding=(1, 0, 2),
            activation="softmax",
        ),
        (1, 2, 2),
    ),
    (
        dict(size=(1, 3, 2), stride=(3, 2, 1), activation="sigmoid", data_format="channels_last"),
        (2, 2, 1),
    ),
]


@pytest.mark.parametrize("case", range(len(FD_CASES)))
def test_layer_gradients_finite_differences_float32(case, cpu_path):
    """Central differences of the float32 layer itself (loose tolerance)."""
    params, spatial = FD_CASES[case]
    df = params.get("data_format", "channels_first")
    rng = np.random.default_rng(40 + case)
    x = rng.standard_normal(x_shape_of(spatial, 2, df)).astype(np.float32)
    layer, td, graph = make(x.shape, n_filters=2, store=True, update=False, **params)
    k, b = random_weights(rng, params["size"], 2, 2, True, scale=0.5)
    layer.set_weights([k, b])
    y = graph.forward(x)
    r = rng.standard_normal(y.shape)
    dx = graph.backward(r.astype(np.float32))
    grads = td.get_gradients()

    def loss(xv, kv, bv):
        layer.set_weights([kv, bv])
        return float((graph.predict(xv)[1].astype(np.float64) * r).sum())

    h = 1e-2

    def fd(arr, which):
        out = np.zeros(arr.shape)
        for idx in np.ndindex(arr.shape):
            p, m = arr.copy(), arr.copy()
            p[idx] += h
            m[idx] -= h
            args_p = {"x": x, "k": k, "b": b, which: p}
            args_m = {"x": x, "k": k, "b": b, which: m}
            out[idx] = (
                loss(args_p["x"], args_p["k"], args_p["b"])
                - loss(args_m["x"], args_m["k"], args_m["b"])
            ) / (2 * h)
        return out

    for analytic, numeric in (
        (dx, fd(x, "x")),
        (grads["kernel"], fd(k, "k")),
        (grads["bias"], fd(b, "b")),
    ):
        scale = np.abs(numeric).max()
        assert scale > 0
        np.testing.assert_allclose(analytic, numeric, rtol=2e-2, atol=2e-3 * scale)


# --------------------------------------------------------------------------- training switches

SMALL = (2, 2, 2, 2, 1, 3)  # (batch, time, channels, d1, d2, d3)


def _small(seed=0, **params):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(SMALL).astype(np.float32)
    params.setdefault("size", (2, 1, 2))
    params.setdefault("stride", (1, 2, 1))
    params.setdefault("activation", "tanh")
    layer, td, graph = make(x.shape, seed=seed, **params)
    y = graph.forward(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    return layer, td, graph, x, dy


@pytest.mark.parametrize("lda", [0.0, -2.5, 3.0])
def test_lda_coeff_scales_only_the_input_gradient(lda):
    opt = {"algorithm": "sgd", "learning_rate": 0.1}
    l1, t1, g1, x, dy = _small(store=True, optimizer=opt)
    l2, t2, g2, _, _ = _small(store=True, optimizer=opt, lda_coeff=lda)
    l2.set_weights(l1.get_weights())
    g2.forward(x)
    dx1 = g1.backward(dy)
    dx2 = g2.backward(dy)
    np.testing.assert_allclose(dx2, lda * dx1, rtol=1e-6, atol=1e-7)
    a, b = t1.get_gradients(), t2.get_gradients()
    np.testing.assert_array_equal(a["kernel"], b["kernel"])
    np.testing.assert_array_equal(a["bias"], b["bias"])
    np.testing.assert_array_equal(b["input"], dx2)
    for w1, w2 in zip(l1.get_weights(), l2.get_weights()):
        np.testing.assert_array_equal(w1, w2)


def test_get_gradients_through_time_distributed():
    layer, td, graph, x, dy = _small(store=True)
    dx = graph.backward(dy)
    g_td = td.get_gradients()
    g_in = layer.get_gradients()
    assert set(g_td) == {"kernel", "bias", "input"}
    assert g_td["input"].shape == x.shape
    np.testing.assert_array_equal(g_td["input"], dx)
    np.testing.assert_array_equal(g_in["input"].reshape(x.shape), dx)
    assert g_td["kernel"].shape == layer.get_weights()[0].shape
    assert g_td["bias"].shape == (3,)
    # copies: mutating them changes nothing inside
    g_td["kernel"][...] = 0
    assert np.abs(td.get_gradients()["kernel"]).max() > 0


def test_get_gradients_without_bias():
    _, td, graph, _, dy = _small(store=True, use_bias=False)
    graph.backward(dy)
    g = td.get_gradients()
    assert g.get("bias") is None
    assert g["kernel"] is not None


def test_store_false_get_gradients_raises():
    layer, td, graph, _, dy = _small(store=False)
    graph.backward(dy)
    with pytest.raises(StateError, match="store"):
        layer.get_gradients()
    with pytest.raises(StateError):
        td.get_gradients()


def test_training_false_backward_raises():
    layer, _, graph, x, dy = _small(training=False)
    with pytest.raises(StateError):
        graph.backward(dy)
    # the forward itself still works and equals inference
    np.testing.assert_array_equal(graph.forward(x), graph.predict(x)[1])


def test_backward_after_predict_raises():
    """predict caches nothing, even for a training layer."""
    _, _, graph, x, dy = _small(store=True)
    graph.backward(dy)  # consumes the training forward
    graph.predict(x)
    with pytest.raises(StateError):
        graph.backward(dy)


@pytest.mark.parametrize("algorithm", ["adam", "sgd", "nadam", "adagrad"])
def test_update_false_freezes_weights_and_optimizer_state(algorithm):
    opt = {"algorithm": algorithm, "learning_rate": 0.1}
    layer, td, graph, x, dy = _small(store=True, update=False, optimizer=opt)
    w0 = layer.get_weights()
    s0 = layer.optimizer.get_state()
    for _ in range(3):
        graph.forward(x)
        dx = graph.backward(dy)
    for a, b in zip(w0, layer.get_weights()):
        np.testing.assert_array_equal(a, b)
    s1 = layer.optimizer.get_state()
    assert s1.keys() == s0.keys()
    for key in s0:
        np.testing.assert_array_equal(s0[key], s1[key])
    assert np.abs(dx).max() > 0
    assert np.abs(td.get_gradients()["kernel"]).max() > 0
    # the same layer with update=True moves
    l2, _, g2, _, _ = _small(store=True, update=True, optimizer=opt)
    l2.set_weights(w0)
    g2.forward(x)
    np.testing.assert_array_equal(g2.backward(dy), dx)
    assert not np.array_equal(l2.get_weights()[0], w0[0])


def test_update_applies_sgd_to_the_returned_gradients():
    lr = 0.05
    layer, td, graph, x, dy = _small(
        store=True, optimizer={"algorithm": "sgd", "learning_rate": lr}
    )
    k0, b0 = layer.get_weights()
    graph.backward(dy)
    g = td.get_gradients()
    k1, b1 = layer.get_weights()
    np.testing.assert_allclose(k1, k0 - lr * g["kernel"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(b1, b0 - lr * g["bias"], rtol=1e-6, atol=1e-7)


def test_weight_gradients_sum_over_batch_and_time():
    layer, td, graph, x, dy = _small(store=True, update=False)
    graph.backward(dy)
    full = td.get_gradients()
    weights = layer.get_weights()
    one, one_td, g1 = make(
        (1, 1, *x.shape[2:]),
        store=True,
        update=False,
        size=(2, 1, 2),
        stride=(1, 2, 1),
        activation="tanh",
    )
    one.set_weights(weights)
    k_sum = np.zeros(weights[0].shape)
    b_sum = np.zeros(weights[1].shape)
    for n in range(x.shape[0]):
        for t in range(x.shape[1]):
            g1.forward(x[n : n + 1, t : t + 1])
            dxs = g1.backward(dy[n : n + 1, t : t + 1])
            gs = one_td.get_gradients()
            k_sum += gs["kernel"]
            b_sum += gs["bias"]
            np.testing.assert_allclose(dxs[0, 0], full["input"][n, t], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(full["kernel"], k_sum, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(full["bias"], b_sum, rtol=1e-5, atol=1e-5)


def test_set_weights_round_trip_and_layout():
    layer, _, graph, x, _ = _small(n_filters=4)
    k, b = layer.get_weights()
    assert k.shape == (2, 1, 2, 4, 2)  # (kd, kh, kw, n_filters, in_channels)
    assert b.shape == (4,)
    rng = np.random.default_rng(9)
    k2 = rng.standard_normal(k.shape).astype(np.float32)
    b2 = rng.standard_normal(b.shape).astype(np.float32)
    layer.set_weights([k2, b2])
    got = layer.get_weights()
    np.testing.assert_array_equal(got[0], k2)
    np.testing.assert_array_equal(got[1], b2)
    got[0][...] = 0  # a copy
    np.testing.assert_array_equal(layer.get_weights()[0], k2)


def test_no_bias_has_one_weight():
    layer, _, _, _, _ = _small(use_bias=False)
    assert len(layer.get_weights()) == 1


def test_same_seed_same_initial_weights_different_seed_differs():
    a, _, _, _, _ = _small(seed=4)
    b, _, _, _, _ = _small(seed=4)
    c, _, _, _, _ = _small(seed=5)
    np.testing.assert_array_equal(a.get_weights()[0], b.get_weights()[0])
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])


@pytest.mark.parametrize(
    "name, z, expected",
    [
        ("relu", 0.0, 0.0),
        ("leaky_relu", 0.0, 0.3),
        ("elu", 0.0, 1.0),
        ("selu", 0.0, ref.SELU_SCALE * ref.SELU_ALPHA),
        ("thresholded_relu", 1.0, 0.0),
        ("hard_sigmoid", -3.0, 0.0),
        ("hard_sigmoid", 3.0, 0.0),
    ],
)
def test_derivative_at_kinks_takes_the_left_piece(name, z, expected):
    act = ACTIVATIONS[name]
    zz = np.full((1, 2, 1, 1, 1), z, dtype=np.float32)
    y = act.forward(NUMPY, zz, 1)
    dz = act.backward(NUMPY, zz, y, np.ones_like(zz), 1)
    np.testing.assert_allclose(dz, expected, rtol=1e-6)


def test_the_python_api_refuses_what_would_not_fit_before_allocating():
    """A huge dilation with "same" padding: a 4^3 output, but kernel temporaries of exabytes.
    Refused in one line with the estimate and the limit, before any allocation."""
    from conv3dt_studio.compute.memory import MemoryLimitExceeded

    layer = Conv3DTranspose(dilation_rate=2**31 - 1, padding=True)
    with pytest.raises(MemoryLimitExceeded) as err:
        layer.forward(np.ones((1, 1, 4, 4, 4), np.float32))
    text = str(err.value)
    assert "layer `" in text and "needs about" in text and "above the memory limit" in text
    assert layer.kernel is None  # nothing was built


def test_the_kernels_temporaries_grow_with_the_dilation():
    from conv3dt_studio.compute import conv3d_transpose_ops as ops

    def work(d: int) -> int:
        geom = ops.Geometry.of((4, 4, 4), (3, 3, 3), (1, 1, 1), (d, d, d), True)
        return ops.working_bytes(geom, 1, 3, training=True)

    assert work(1) < work(10) < work(100) < work(1000)
    assert work(1000) > 100 * work(10)  # planes grow with the square of the dilation
