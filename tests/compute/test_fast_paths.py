"""The optimized transposed-convolution paths against the plain "flat offset" reference.

The compiled CPU kernels (Numba; interpreted when Numba is absent, so shapes stay tiny) and the CuPy
kernels (``gpu``-marked, skipped without a GPU) must equal ``conv3d_transpose_ops._flat_*`` within
float32 rounding on every geometry: strides 1-3 with even and odd kernels, dilation, stride x
dilation, both paddings, output_padding, both data layouts. PyTorch is a second, independent oracle.
No timing assertions.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conv3dt_studio.compute import conv3d_transpose_ops as ops
from conv3dt_studio.compute import cpu_kernels
from conv3dt_studio.compute.backend import NUMPY, get_backend
from conv3dt_studio.compute.conv3d_transpose import Conv3DTranspose
from conv3dt_studio.compute.errors import BackendError

# (spatial in, size, stride, dilation, same, output_padding)
GEOMETRIES = [
    ((5, 6, 3), 3, 1, 1, False, None),  # W1's shape family
    ((5, 6, 3), 3, 1, 1, True, None),
    ((4, 5, 3), 2, 2, 1, False, None),  # even kernel, stride 2
    ((4, 5, 3), 2, 2, 1, True, None),
    ((4, 3, 5), 3, 2, 1, True, None),  # W2's shape family
    ((3, 4, 2), 4, 3, 1, False, None),  # even kernel, stride 3
    ((3, 4, 2), 3, 3, 1, True, None),
    ((3, 2, 4), 5, 3, 1, True, None),  # kernel longer than stride + 1
    ((4, 5, 3), 3, 1, 2, False, None),  # dilation
    ((4, 5, 3), 3, 1, 2, True, None),
    ((4, 5, 3), 3, 2, 2, False, None),  # stride x dilation: phases without taps
    ((4, 3, 3), 2, 2, 3, True, None),
    ((3, 4, 5), (2, 3, 1), (3, 2, 1), (2, 1, 3), True, None),  # mixed per axis
    ((3, 4, 5), (3, 1, 2), (1, 3, 2), (1, 1, 2), False, None),
    ((4, 5, 6), (5, 3, 1), 1, 1, True, None),  # a different crop on each axis (2, 1, 0)
    ((3, 4, 5), (3, 5, 4), (2, 1, 2), (2, 1, 1), True, None),  # crops (1, 2, 1)
    ((4, 3, 3), 3, 2, 1, False, (1, 0, 1)),  # output_padding
    ((4, 3, 3), 3, 3, 1, True, (2, 1, 0)),
    ((3, 3, 4), 2, 3, 2, False, (2, 2, 1)),
    ((4, 3, 2), 1, 3, 1, False, None),  # 1x1x1 kernel: only one phase has taps
    ((1, 1, 1), 3, 2, 1, True, None),  # a single voxel
    ((6, 1, 2), (3, 3, 2), (2, 1, 2), 1, False, None),
    ((3, 3, 1), (1, 1, 2), (1, 1, 3), (1, 1, 3), True, (0, 0, 1)),  # no tap reaches the output
    ((2, 1, 1), (4, 1, 2), (1, 3, 3), (1, 2, 3), True, (0, 1, 1)),  # nor reaches the input back
]


def _triple(v):
    return (v, v, v) if isinstance(v, int) or v is None else tuple(v)


def _geometry(case):
    spatial, size, stride, dilation, same, op = case
    return ops.Geometry.of(spatial, _triple(size), _triple(stride), _triple(dilation), same, op)


def _case(rng, case, n=2, c=3, f=2):
    geom = _geometry(case)
    x = rng.standard_normal((n, c, *case[0]), dtype=np.float32)
    kernel = rng.standard_normal((*(a.size for a in geom.axes), f, c), dtype=np.float32)
    dy = rng.standard_normal((n, f, *geom.out_shape), dtype=np.float32)
    return geom, x, kernel, dy


def _close(got, want):
    got = np.asarray(got)
    assert got.shape == want.shape and got.dtype == np.float32
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6 * scale)


def _ids(cases):
    return [
        f"in{c[0]}-k{c[1]}-s{c[2]}-d{c[3]}-{'same' if c[4] else 'valid'}-op{c[5]}" for c in cases
    ]


# ----------------------------------------------------------------------------- CPU kernels


@pytest.mark.parametrize("case", GEOMETRIES, ids=_ids(GEOMETRIES))
def test_compiled_forward_equals_reference(rng, case):
    geom, x, kernel, _ = _case(rng, case)
    _close(ops._compiled_forward(x, kernel, geom), ops._flat_forward(np, x, kernel, geom))


@pytest.mark.parametrize("case", GEOMETRIES, ids=_ids(GEOMETRIES))
def test_compiled_backward_input_equals_reference(rng, case):
    geom, _, kernel, dy = _case(rng, case)
    _close(
        ops._compiled_backward_input(dy, kernel, geom),
        ops._flat_backward_input(np, dy, kernel, geom),
    )


@pytest.mark.parametrize("case", GEOMETRIES, ids=_ids(GEOMETRIES))
def test_compiled_backward_kernel_equals_reference(rng, case):
    geom, x, kernel, dy = _case(rng, case)
    _close(
        ops._compiled_backward_kernel(x, dy, geom, kernel.shape),
        ops._flat_backward_kernel(np, x, dy, geom, kernel.shape),
    )


def test_channels_last_views_need_no_copy_and_match(rng):
    """The layer hands channels_last data over as a moved-axis view: same numbers."""
    geom, x, kernel, dy = _case(rng, GEOMETRIES[4])
    x_cl = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    view = np.moveaxis(x_cl, -1, 1)
    flat, strides = cpu_kernels.flat(view)
    assert np.shares_memory(flat, x_cl)
    assert list(strides) == [s // 4 for s in view.strides]
    _close(ops._compiled_forward(view, kernel, geom), ops._flat_forward(np, x, kernel, geom))
    dy_view = np.moveaxis(np.ascontiguousarray(np.moveaxis(dy, 1, -1)), -1, 1)
    _close(
        ops._compiled_backward_kernel(view, dy_view, geom, kernel.shape),
        ops._flat_backward_kernel(np, x, dy, geom, kernel.shape),
    )


def test_flat_copies_what_is_not_a_permutation(rng):
    a = rng.standard_normal((2, 3, 4, 5, 6), dtype=np.float32)[:, :, ::2]
    flat, strides = cpu_kernels.flat(a)
    np.testing.assert_array_equal(flat.reshape(a.shape), a)
    assert not np.shares_memory(flat, a)
    assert list(strides) == [180, 60, 30, 6, 1]


def test_length_one_axes_with_any_stride(rng):
    """np.newaxis gives length-1 axes a stride of 0: still one view, same numbers."""
    case = ((1, 4, 1), 3, 2, 1, True, None)
    geom, x, kernel, _ = _case(rng, case, n=1)
    odd = x[0, :, 0][None, :, None]  # (1, C, 1, 4, 1) with zero strides on the new axes
    assert 0 in odd.strides
    _close(ops._compiled_forward(odd, kernel, geom), ops._flat_forward(np, x, kernel, geom))


def test_kernel_gradient_is_deterministic(rng, monkeypatch):
    """Fixed chunks summed in order: the same bits whatever the thread count."""
    geom, x, kernel, dy = _case(rng, GEOMETRIES[2], n=9)
    first = ops._compiled_backward_kernel(x, dy, geom, kernel.shape)
    monkeypatch.setattr(cpu_kernels, "THREADS", 1)
    again = ops._compiled_backward_kernel(x, dy, geom, kernel.shape)
    np.testing.assert_array_equal(first, again)


def test_remembered_geometries_hold_python_ints():
    """Geometries are remembered by their arguments: a NumPy integer is taken as the equal
    Python int (the geometry holds ints whoever asked first), a float is refused."""
    first = ops.Geometry.of((4, 5, 6), np.array([3, 3, 3]), (np.int64(2),) * 3, (1, 1, 1), True)
    again = ops.Geometry.of([4, 5, 6], (3, 3, 3), (2, 2, 2), (1, 1, 1), True)
    assert again is first
    assert all(type(v) is int for a in first.axes for v in (a.size, a.stride, a.dilation))
    with pytest.raises(TypeError):
        ops.Geometry.of((4, 5, 6), (3, 3, 3), (2.0, 2, 2), (1, 1, 1), True)


def test_warm_up_reports_the_compiled_path():
    assert ops.warm_up() is cpu_kernels.AVAILABLE


def test_phase_plan_covers_every_tap_and_output_once():
    for case in GEOMETRIES:
        geom = _geometry(case)
        plan = ops.phase_plan(geom, 1, 1)
        ph = plan.ph
        assert plan.ph[:, 8:].prod(axis=1).sum() == np.prod(geom.out_shape)
        # a tap is either used once or lies in a phase with no output position
        used = set(plan.kidx.tolist())
        assert len(used) == len(plan.kidx)
        assert sorted(plan.perm) == [0, 1, 2]
        assert (ph[:, 1] >= 0).all()


def layer_step(case, data_format, activation, x):
    """A fresh layer's training forward and backward on ``x``: (y, gradients, new weights)."""
    spatial, size, stride, dilation, same, op = case
    layer = Conv3DTranspose(
        n_filters=3,
        size=_triple(size),
        stride=_triple(stride),
        dilation_rate=_triple(dilation),
        padding=same,
        output_padding=op,
        data_format=data_format,
        activation=activation,
        store=True,
        bias_initializer="random_uniform",
    )
    layer.build(x.shape, NUMPY, 7)
    y = layer.forward(x, training=True)
    dy = np.random.default_rng(3).standard_normal(y.shape, dtype=np.float32)
    layer.backward(dy)
    return y, layer.get_gradients(), layer.get_weights()


@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
@pytest.mark.parametrize("case", [GEOMETRIES[0], GEOMETRIES[4], GEOMETRIES[14]], ids=str)
def test_layer_fast_path_equals_reference_path(rng, monkeypatch, case, data_format):
    """Through the layer (bias, activation, layouts, lda, optimizer): the dispatching ops equal the
    reference path on forward, gradients and the updated weights."""
    spatial, size, stride, dilation, same, op = case
    cf = data_format == "channels_first"
    x = rng.standard_normal((3, 2, *spatial) if cf else (3, *spatial, 2), dtype=np.float32)

    def run(path):
        monkeypatch.setattr(ops, "_path", lambda xp: path)
        return layer_step(case, data_format, "tanh", x)

    fast = "numba" if cpu_kernels.AVAILABLE else "flat"
    (y1, g1, w1), (y0, g0, w0) = run(fast), run("flat")
    _close(y1, y0)
    for key in ("kernel", "bias", "input"):
        _close(g1[key], g0[key])
    for a, b in zip(w1, w0):
        _close(a, b)


# ----------------------------------------------------------------------------- PyTorch oracle


@pytest.mark.parametrize(
    "case",
    [GEOMETRIES[i] for i in (0, 3, 6, 10, 12)],
    ids=_ids([GEOMETRIES[i] for i in (0, 3, 6, 10, 12)]),
)
def test_compiled_paths_match_torch(rng, case):
    geom, x, kernel, dy = _case(rng, case)
    y, dx, dk = _torch_layer(x, kernel, geom, dy)
    _close(ops._compiled_forward(x, kernel, geom), y)
    _close(ops._compiled_backward_input(dy, kernel, geom), dx)
    _close(ops._compiled_backward_kernel(x, dy, geom, kernel.shape), dk)


def _torch_layer(x, kernel, geom, dy):
    """PyTorch's (float64) layer output, input gradient and kernel gradient for ``dy``: the
    full ``conv_transpose3d``, zero-padded where the Keras window runs past it, then cropped."""
    import torch

    stride = tuple(a.stride for a in geom.axes)
    dilation = tuple(a.dilation for a in geom.axes)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(kernel.transpose(4, 3, 0, 1, 2), dtype=torch.float64, requires_grad=True)
    full = torch.nn.functional.conv_transpose3d(xt, wt, stride=stride, dilation=dilation)
    pad = [0, 0] * 3
    for i, a in enumerate(geom.axes):
        pad[2 * (2 - i) + 1] = max(0, a.crop_start + a.out_len - a.full_len)
    full = torch.nn.functional.pad(full, pad)
    y = full[(slice(None), slice(None), *geom.output_slices())]
    y.backward(torch.tensor(dy, dtype=torch.float64))
    dk = wt.grad.numpy().transpose(2, 3, 4, 1, 0)
    return (v.astype(np.float32) for v in (y.detach().numpy(), xt.grad.numpy(), dk))


# ----------------------------------------------------------------------------- GPU


def _cupy():
    try:
        return get_backend("cupy")
    except BackendError as exc:
        pytest.skip(str(exc))


@pytest.mark.gpu
@pytest.mark.parametrize("case", GEOMETRIES, ids=_ids(GEOMETRIES))
def test_cuda_kernels_equal_reference(rng, case):
    b = _cupy()
    geom, x, kernel, dy = _case(rng, case)
    xd, kd, dyd = b.asarray(x), b.asarray(kernel), b.asarray(dy)
    _close(b.to_numpy(ops.forward(b.xp, xd, kd, geom)), ops._flat_forward(np, x, kernel, geom))
    _close(
        b.to_numpy(ops.backward_input(b.xp, dyd, kd, geom)),
        ops._flat_backward_input(np, dy, kernel, geom),
    )
    _close(
        b.to_numpy(ops.backward_kernel(b.xp, xd, dyd, geom, kernel.shape)),
        ops._flat_backward_kernel(np, x, dy, geom, kernel.shape),
    )


@pytest.mark.gpu
def test_cuda_channels_last_view(rng):
    b = _cupy()
    geom, x, kernel, _ = _case(rng, GEOMETRIES[4])
    xd = b.xp.moveaxis(b.asarray(np.ascontiguousarray(np.moveaxis(x, 1, -1))), -1, 1)
    _close(
        b.to_numpy(ops.forward(b.xp, xd, b.asarray(kernel), geom)),
        ops._flat_forward(np, x, kernel, geom),
    )


@pytest.mark.parametrize("c, f", [(4, 5), (16, 8), (1, 9)])
def test_compiled_backward_kernel_any_filter_and_row_count(rng, c, f):
    """The kernel gradient takes filters four at a time and (tap, channel) rows three at a time:
    counts that leave a partial group, and ones that do not, equal the reference."""
    geom, x, kernel, dy = _case(rng, GEOMETRIES[4], c=c, f=f)
    _close(
        ops._compiled_backward_kernel(x, dy, geom, kernel.shape),
        ops._flat_backward_kernel(np, x, dy, geom, kernel.shape),
    )


# The compiled tiles: 8 or 4 filters per forward tile (and channels per input-gradient tile),
# partial last groups; the kernel gradient vectorized over 16 channels from 12 channels up.
TILE_COUNTS = [(16, 8), (16, 16), (13, 9), (32, 3), (5, 12), (24, 5)]


# Stride 1 without crop: the kernel gradient reads dy's planes in place (no phase planes);
# rows of 16 or more: copied to and from the planes by whole vectors.
DIRECT = [
    ((6, 5, 4), 3, 1, 1, False, None),
    ((4, 4, 4), 2, 1, 1, False, None),
    ((2, 3, 18), 3, 1, 1, False, None),
    ((2, 3, 17), 3, 2, 1, True, None),
]


@pytest.mark.parametrize("c, f", TILE_COUNTS, ids=str)
@pytest.mark.parametrize("case", [GEOMETRIES[i] for i in (0, 2, 4, 8, 10, 15)] + DIRECT, ids=str)
def test_compiled_tiles_any_channel_and_filter_count(rng, case, c, f):
    geom, x, kernel, dy = _case(rng, case, n=2, c=c, f=f)
    _close(ops._compiled_forward(x, kernel, geom), ops._flat_forward(np, x, kernel, geom))
    _gradients_match_reference(x, kernel, geom, dy)


def _gradients_match_reference(x, kernel, geom, dy):
    """The compiled input and kernel gradients equal the flat reference's."""
    _close(
        ops._compiled_backward_input(dy, kernel, geom),
        ops._flat_backward_input(np, dy, kernel, geom),
    )
    _close(
        ops._compiled_backward_kernel(x, dy, geom, kernel.shape),
        ops._flat_backward_kernel(np, x, dy, geom, kernel.shape),
    )


@pytest.mark.parametrize(
    "case",
    [
        ((9, 5, 6), 3, 1, 1, False, None),  # stride 1: dy read in place, edge planes' fewer taps
        ((9, 5, 6), 4, 2, 1, True, None),  # D3's family: 8 phases, runs of interior planes
        ((7, 3, 4), (5, 2, 3), (1, 2, 1), (2, 1, 1), False, None),  # dilated: short runs
        ((3, 40, 40), 3, 1, 1, False, None),  # planes above RUN_POSITIONS: one plane a run
    ],
    ids=str,
)
def test_kernel_gradient_sums_runs_of_planes(rng, case):
    """The channels kernel gradient sums a run of planes with the same taps in one tile (each
    tap reading the next input plane), then adds it once to the float64 sums."""
    geom, x, kernel, dy = _case(rng, case, n=2, c=16, f=9)
    _close(
        ops._compiled_backward_kernel(x, dy, geom, kernel.shape),
        ops._flat_backward_kernel(np, x, dy, geom, kernel.shape),
    )


def test_channel_lanes_take_the_vector_kernel_from_12_channels():
    assert [ops.channel_lanes(c) for c in (3, 8, 11, 12, 16, 17, 24, 25, 64)] == [
        0, 0, 0, 16, 16, 0, 32, 32, 64,
    ]  # fmt: skip


@pytest.mark.parametrize("channels_first", [True, False])
@pytest.mark.parametrize("shape", [(3, 4, 5, 6, 7), (2, 4, 4, 4, 4), (1, 1, 2, 3, 1)], ids=str)
def test_relu_backward_fused_with_the_bias_gradient(rng, shape, channels_first):
    """One compiled pass = NumPy's two (relu's derivative, then the sum per channel), NaN kept
    where y > 0; square shapes cannot mix up the channel axis."""
    y = rng.standard_normal(shape, dtype=np.float32)
    dy = rng.standard_normal(shape, dtype=np.float32)
    dy.flat[::7] = np.nan
    dz, db = ops.relu_backward(np, y, dy, channels_first, bias=True)
    want = dy * (y > 0)
    np.testing.assert_array_equal(dz, want)
    axes = (0, 2, 3, 4) if channels_first else (0, 1, 2, 3)
    np.testing.assert_allclose(db, want.astype(np.float64).sum(axis=axes), rtol=1e-6)
    assert db.dtype == np.float32
    assert ops.relu_backward(np, y, dy, channels_first, bias=False)[1] is None


@pytest.mark.parametrize("threads, n", [(4, 1), (3, 2), (2, 3), (1, 1)])
@pytest.mark.parametrize("case", [GEOMETRIES[i] for i in (0, 4, 12, 16)], ids=str)
def test_forward_shares_samples_between_threads(rng, monkeypatch, case, threads, n):
    """With fewer than two samples per thread, each sample's output planes are split between
    the threads: every split gives the reference's output."""
    monkeypatch.setattr(cpu_kernels, "THREADS", threads)
    jobs = ops._sample_parts(n, 4)
    assert (len(jobs) > n) == (threads > 1 and n < 2 * threads)
    geom, x, kernel, _ = _case(rng, case, n=n, c=3, f=5)
    _close(ops._compiled_forward(x, kernel, geom), ops._flat_forward(np, x, kernel, geom))


# The forward by rows: rows of whole vectors and not (16, 17, 33, 40 long), rows packed 2-16 to
# a vector (8, 5, 3, 1 long), 1-7 row-axis taps
# (a fourth and later ones in one residue), stride 2 interleaved with crop 0 and 1 and odd
# lengths, stride 3 and channels-last element by element, residues without taps.
ROWS = [
    ((2, 3, 16), 3, 1, 1, False, None),  # D4's family: 3 taps, 18 long output
    ((3, 2, 16), 3, 1, 1, True, None),  # the same, cropped by 1
    ((9, 9, 13), 3, 1, 1, False, None),  # the same on a row shorter than its vector
    ((3, 2, 17), 4, 2, 1, True, None),  # D1's: interleaved, crop 1
    ((2, 2, 16), 3, 2, 1, True, None),  # D2's: residues of 2 and 1 taps, crop 0
    ((2, 2, 16), 3, 2, 1, False, None),  # odd output length (33)
    ((2, 3, 33), (2, 3, 7), 1, (1, 1, 2), True, None),  # 7 taps, dilated: one residue
    ((2, 2, 20), (3, 2, 7), (1, 2, 2), 1, False, None),  # 4 and 3 taps per residue
    ((3, 2, 40), (1, 3, 5), (2, 1, 3), (1, 1, 2), True, None),  # stride 3, element by element
    ((2, 2, 18), (2, 2, 1), (3, 1, 3), 1, False, (2, 0, 2)),  # residues without taps
    ((1, 1, 5), 3, 2, 1, True, None),  # a row shorter than a vector
    ((3, 5, 8), 4, 2, 1, True, None),  # D3's family: rows of 8, two to a vector
    ((2, 7, 8), 3, 1, 1, False, None),  # D7's: an odd count of rows
    ((2, 9, 3), (3, 2, 3), (1, 2, 2), 1, True, None),  # rows of 3, five to a vector
    ((5, 18, 1), (1, 3, 2), (2, 1, 2), (1, 2, 1), False, (1, 0, 1)),  # rows of 1: 16
]


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize("c, f", [(3, 3), (16, 8), (5, 9), (17, 16)], ids=str)
@pytest.mark.parametrize("case", ROWS + GEOMETRIES[:6], ids=str)
def test_row_forward_equals_reference(rng, monkeypatch, case, c, f, layout):
    """The forward by rows, forced, with bias and relu: the reference's output."""
    monkeypatch.setenv("CONV3DT_FORWARD", "rows")
    geom, x, kernel, _ = _case(rng, case, n=2, c=c, f=f)
    bias = rng.standard_normal(f).astype(np.float32)
    want = np.maximum(ops._flat_forward(np, x, kernel, geom) + bias.reshape(-1, 1, 1, 1), 0)
    got = ops._compiled_forward(x, kernel, geom, layout == "channels_last", bias, relu=True)
    _close(got, want)


@pytest.mark.parametrize(
    "spatial, size, stride, same, c, f, waste, rows",
    [
        ((16, 16, 16), 3, 1, False, 16, 16, 1.0, True),  # D4: no padding multiplied
        ((16, 16, 16), 4, 2, True, 64, 32, 1.0, True),  # D1
        ((8, 8, 8), 4, 2, True, 128, 64, 1.0, True),  # D3: rows of 8, two to a vector
        ((12, 12, 12), 3, 1, False, 16, 12, (16 / 12) * (16 / 12), True),
        ((10, 6, 64), 3, 1, False, 1, 3, 8 / 3, False),  # W1 (plan order): 3 filters of 8
    ],
)
def test_forward_takes_rows_where_they_waste_less(spatial, size, stride, same, c, f, waste, rows):
    geom = ops.Geometry.of(spatial, (size,) * 3, (stride,) * 3, (1, 1, 1), same)
    assert ops.LANES == cpu_kernels.LANES  # the plan's vectors are the kernels' vectors
    assert ops.row_plan(geom, c, f).waste == pytest.approx(waste)
    assert (ops.forward_path(geom, c, f) != "planes") == rows  # rows (or filter vectors: D4)


# The forward by filter vectors: stride 1, 3 taps, dilation 1 along the last axis; F in 16s.
FILTERS = [
    ((3, 2, 16), 3, 1, 1, False, None),  # D4's family: one block, 18 positions
    ((2, 3, 16), 3, 1, 1, True, None),  # the same cropped by 1 at each end
    ((5, 7, 16), (2, 3, 3), (2, 1, 1), (1, 2, 1), True, None),  # other axes: stride, dilation
    ((3, 4, 20), (3, 2, 3), (1, 3, 1), (2, 1, 1), False, None),  # two blocks, the last short
    ((4, 3, 33), 3, (2, 2, 1), 1, True, None),  # three blocks, one position in the last
    ((2, 2, 5), (4, 1, 3), 1, 1, True, None),  # a row shorter than a vector
    ((3, 3, 1), 3, 1, 1, False, None),  # one position: a block of 15 zero lanes
    ((2, 2, 48), (1, 1, 3), (3, 1, 1), 1, False, (2, 0, 0)),  # output padding on axis 0
]


@pytest.mark.parametrize("case", FILTERS[:5], ids=str)
def test_filter_vectors_match_torch(rng, monkeypatch, case):
    """The forward and the kernel gradient by filter vectors against PyTorch's conv_transpose3d
    and its autograd (independent oracles)."""
    monkeypatch.setenv("CONV3DT_FORWARD", "filters")
    monkeypatch.setenv("CONV3DT_KERNEL_GRADIENT", "filters")
    geom, x, kernel, dy = _case(rng, case, n=2, c=7, f=32)
    assert ops.forward_path(geom, 7, 32) == ops.kernel_gradient_path(geom, 7, 32) == "filters"
    y, _, dk = _torch_layer(x, kernel, geom, dy)
    _close(ops._compiled_forward(x, kernel, geom), y)
    _close(ops._compiled_forward(x, kernel, geom, channels_last=True), y)
    _close(ops._compiled_backward_kernel(x, dy, geom, kernel.shape), dk)


# 3 taps, stride 1 and dilation 1 on every axis: the forward by Winograd tiles
WINOGRAD = [
    ((3, 2, 16), 3, 1, 1, False, None),  # D4's family: one block, 18 positions
    ((2, 3, 16), 3, 1, 1, True, None),  # cropped by 1 at each end: tiles cut on axes 0 and 1
    ((4, 5, 20), 3, 1, 1, False, None),  # two blocks, the last short; odd tile counts
    ((5, 4, 33), 3, 1, 1, True, None),  # three blocks, one position in the last
    ((1, 1, 1), 3, 1, 1, False, None),  # one voxel: a tile's second row past the output
    ((2, 7, 5), 3, 1, 1, True, None),  # a row shorter than a vector
    ((6, 1, 3), 3, 1, 1, False, None),
]


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize("n, c, f", [(3, 3, 16), (2, 17, 32), (1, 1, 48)], ids=str)
@pytest.mark.parametrize(
    "path, case",
    [("filters", case) for case in FILTERS] + [("winograd", case) for case in WINOGRAD],
    ids=str,
)
def test_vector_forwards_equal_reference(rng, monkeypatch, path, case, n, c, f, layout):
    """The forward by filter vectors and by Winograd tiles, forced, with bias and relu: the
    reference's output. One to three samples: output planes or rows of tiles shared between
    threads."""
    monkeypatch.setenv("CONV3DT_FORWARD", path)
    geom, x, kernel, _ = _case(rng, case, n=n, c=c, f=f)
    assert ops.forward_path(geom, c, f) == path
    bias = rng.standard_normal(f).astype(np.float32)
    want = np.maximum(ops._flat_forward(np, x, kernel, geom) + bias.reshape(-1, 1, 1, 1), 0)
    got = ops._compiled_forward(x, kernel, geom, layout == "channels_last", bias, relu=True)
    _close(got, want)


@pytest.mark.parametrize("case", WINOGRAD[:4], ids=str)
def test_winograd_forward_matches_torch(rng, monkeypatch, case):
    """The forward by Winograd tiles against PyTorch's conv_transpose3d (float64), an
    independent oracle; the transforms' rounding stays within the usual tolerance."""
    monkeypatch.setenv("CONV3DT_FORWARD", "winograd")
    geom, x, kernel, dy = _case(rng, case, n=2, c=24, f=32)
    assert ops.forward_path(geom, 24, 32) == "winograd"
    y, _, _ = _torch_layer(x, kernel, geom, dy)
    _close(ops._compiled_forward(x, kernel, geom), y)
    _close(ops._compiled_forward(x, kernel, geom, channels_last=True), y)


@pytest.mark.parametrize("n, c, f", [(3, 16, 3), (2, 32, 16), (1, 16, 21)], ids=str)
@pytest.mark.parametrize(
    "case", [*WINOGRAD, ((4, 3, 5), 3, 1, 1, False, (1, 0, 2))], ids=str
)  # output padding: gradient positions past the full result
def test_winograd_input_gradient_equals_reference(rng, monkeypatch, case, n, c, f):
    """The input gradient of a 3x3x3 stride-1 layer as the Winograd forward of its dual
    geometry (taps reversed, channels and filters exchanged), forced: the reference's."""
    monkeypatch.setenv("CONV3DT_INPUT_GRADIENT", "winograd")
    geom, _, kernel, dy = _case(rng, case, n=n, c=c, f=f)
    assert ops.input_gradient_path(geom, c, f) == "winograd"
    _close(
        ops._compiled_backward_input(dy, kernel, geom),
        ops._flat_backward_input(np, dy, kernel, geom),
    )


@pytest.mark.parametrize("case", WINOGRAD[:3], ids=str)
def test_winograd_input_gradient_matches_torch(rng, monkeypatch, case):
    monkeypatch.setenv("CONV3DT_INPUT_GRADIENT", "winograd")
    geom, x, kernel, dy = _case(rng, case, n=2, c=32, f=24)
    _, dx, _ = _torch_layer(x, kernel, geom, dy)
    _close(ops._compiled_backward_input(dy, kernel, geom), dx)


def test_input_gradient_takes_winograd_tiles_where_they_apply(monkeypatch):
    geom = ops.Geometry.of((16, 16, 16), (3, 3, 3), (1, 1, 1), (1, 1, 1), False)  # D4
    assert ops.input_gradient_path(geom, 16, 16) == "winograd"
    assert ops.input_gradient_path(geom, 8, 16) == "planes"  # 8 channels: half a vector
    strided = ops.Geometry.of((16, 16, 16), (3, 3, 3), (2, 2, 2), (1, 1, 1), True)
    assert ops.input_gradient_geometry(strided) is None
    assert ops.input_gradient_path(strided, 16, 16) == "planes"
    small = ops.Geometry.of((1, 1, 1), (3, 3, 3), (1, 1, 1), (1, 1, 1), True)
    assert ops.input_gradient_path(small, 16, 16) == "planes"  # one voxel: the planes win
    monkeypatch.setenv("CONV3DT_INPUT_GRADIENT", "winograd")
    assert ops.input_gradient_path(small, 16, 16) == "winograd"
    assert ops.input_gradient_path(strided, 16, 16) == "planes"  # forced where it applies only
    monkeypatch.setenv("CONV3DT_INPUT_GRADIENT", "planes")
    assert ops.input_gradient_path(geom, 16, 16) == "planes"


@pytest.mark.skipif(not cpu_kernels.AVAILABLE, reason="interpreted, 40 layers take too long")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.tuples(st.integers(1, 19), st.integers(1, 19), st.integers(1, 40)),
    st.booleans(),
    st.integers(1, 3),
    st.sampled_from([1, 5, 16, 19, 32]),
    st.sampled_from([16, 32]),
    st.booleans(),
    st.integers(0, 2**16),
)
def test_winograd_forward_equals_reference_on_random_layers(ins, same, n, c, f, last, seed):
    """Random 3x3x3 stride-1 layers by Winograd tiles: any lengths (tiles cut at either end,
    rows of one to three vectors), padding, batch, channels, filter groups and layout; the input
    gradient too where the channels come in sixteens."""
    geom = ops.Geometry.of(ins, (3, 3, 3), (1, 1, 1), (1, 1, 1), same)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, *ins), dtype=np.float32)
    kernel = rng.standard_normal((3, 3, 3, f, c), dtype=np.float32)
    bias = rng.standard_normal(f).astype(np.float32)
    want = np.maximum(ops._flat_forward(np, x, kernel, geom) + bias.reshape(-1, 1, 1, 1), 0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONV3DT_FORWARD", "winograd")
        assert ops.forward_path(geom, c, f) == "winograd"
        _close(ops._compiled_forward(x, kernel, geom, last, bias, relu=True), want)
        if c % 16 == 0:  # the input gradient's dual layer: c filters
            mp.setenv("CONV3DT_INPUT_GRADIENT", "winograd")
            assert ops.input_gradient_path(geom, c, f) == "winograd"
            dy = rng.standard_normal((n, f, *geom.out_shape), dtype=np.float32)
            dx = ops._flat_backward_input(np, dy, kernel, geom)
            _close(ops._compiled_backward_input(dy, kernel, geom), dx)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(
    "path, case, f",
    [("rows", case, 11) for case in ROWS[:4]]
    + [("filters", case, 16) for case in FILTERS[:4]]
    + [("winograd", case, 16) for case in WINOGRAD[:4]],
    ids=str,
)
def test_bias_and_relu_fuse_bit_for_bit(rng, monkeypatch, path, case, f, channels_last):
    """By rows, filter vectors and Winograd tiles, bias and relu applied as each output row is
    written: the
    same bits as the forward, then ``+= bias``, then relu."""
    monkeypatch.setenv("CONV3DT_FORWARD", path)
    geom, x, kernel, _ = _case(rng, case, n=2, c=5, f=f)
    assert ops.forward_path(geom, 5, f) == path
    bias = rng.standard_normal(f).astype(np.float32)
    fused = ops._compiled_forward(x, kernel, geom, channels_last, bias, relu=True)
    plain = ops._compiled_forward(x, kernel, geom, channels_last)
    plain += bias.reshape((-1, 1, 1, 1))
    np.testing.assert_array_equal(fused, np.maximum(plain, 0))


@pytest.mark.parametrize(
    "spatial, size, stride, c, f, path",
    [
        ((16, 16, 16), 3, 1, 16, 16, "winograd"),  # D4: 16 row passes per 4 rows, not 36
        ((12, 12, 40), 3, 1, 16, 32, "winograd"),
        ((4, 4, 16), 3, 1, 16, 16, "filters"),  # 4 rows: tiles past the edges cost more
        ((12, 12, 40), (1, 3, 3), 1, 16, 32, "filters"),  # no Winograd (1 tap on axis 0); 48
        # lanes for 40 positions, as many as the rows waste
        ((8, 8, 8), 3, 1, 32, 32, "rows"),  # rows of 8: two to a vector beat half-empty ones
        ((16, 16, 16), 3, 1, 16, 8, "rows"),  # 8 filters: half a vector
        ((16, 16, 16), 4, 1, 16, 16, "rows"),  # 4 taps
        ((16, 16, 16), 4, 2, 64, 32, "rows"),  # D1: stride 2
    ],
)
def test_forward_takes_filter_vectors_where_they_apply(spatial, size, stride, c, f, path):
    geom = ops.Geometry.of(spatial, _triple(size), (stride,) * 3, (1, 1, 1), False)
    assert ops.forward_path(geom, c, f) == path


def test_forcing_filter_vectors_where_they_do_not_apply_chooses_as_usual(monkeypatch):
    geom = ops.Geometry.of((16, 16, 16), (3, 3, 3), (1, 1, 1), (1, 1, 1), False)
    monkeypatch.setenv("CONV3DT_FORWARD", "filters")
    assert ops.forward_path(geom, 16, 16) == "filters"  # not Winograd: forced
    assert ops.forward_path(geom, 16, 8) == "rows"  # 8 filters: not a whole vector
    monkeypatch.setenv("CONV3DT_FORWARD", "winograd")
    assert ops.forward_path(geom, 16, 8) == "rows"
    dilated = ops.Geometry.of((16, 16, 16), (3, 3, 3), (1, 1, 1), (2, 1, 1), False)
    assert ops.forward_path(dilated, 16, 16) == "filters"  # dilation 2 on axis 0
    small = ops.Geometry.of((2, 2, 16), (3, 3, 3), (1, 1, 1), (1, 1, 1), False)
    assert ops.forward_path(small, 16, 16) == "winograd"  # where it would not be chosen
    monkeypatch.setenv("CONV3DT_FORWARD", "fastest")  # not a path: the automatic choice
    assert ops.forward_path(geom, 16, 16) == "winograd"
    assert ops.forward_path(small, 16, 16) == "filters"


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize("c, f", [(5, 16), (8, 32), (19, 16)], ids=str)
@pytest.mark.parametrize("case", FILTERS, ids=str)
def test_filter_kernel_gradient_equals_reference(rng, monkeypatch, case, c, f, layout):
    """The kernel gradient by filter vectors, forced: channels in eights with a partial last
    eight (5, 19) or none (8), rows shorter and longer than a vector, crops, strides and
    dilations on the other axes, and both layouts of ``x`` and ``dy`` (read where they are)."""
    monkeypatch.setenv("CONV3DT_KERNEL_GRADIENT", "filters")
    geom, x, kernel, dy = _case(rng, case, n=3, c=c, f=f)
    assert ops.kernel_gradient_path(geom, c, f) == "filters"
    want = ops._flat_backward_kernel(np, x, dy, geom, kernel.shape)
    if layout == "channels_last":
        x = np.moveaxis(np.ascontiguousarray(np.moveaxis(x, 1, -1)), -1, 1)
        dy = np.moveaxis(np.ascontiguousarray(np.moveaxis(dy, 1, -1)), -1, 1)
    _close(ops._compiled_backward_kernel(x, dy, geom, kernel.shape), want)


def test_filter_kernel_gradient_is_deterministic(rng, monkeypatch):
    """Fixed chunks summed in order: the same bits on one thread as on several."""
    geom, x, kernel, dy = _case(rng, FILTERS[0], n=9, c=8, f=16)
    assert ops.kernel_gradient_path(geom, 8, 16) == "filters"
    first = ops._compiled_backward_kernel(x, dy, geom, kernel.shape)
    monkeypatch.setattr(cpu_kernels, "THREADS", 1)
    np.testing.assert_array_equal(ops._compiled_backward_kernel(x, dy, geom, kernel.shape), first)


@pytest.mark.parametrize(
    "size, stride, c, f, path",
    [
        (3, 1, 16, 16, "filters"),  # D4
        (3, 1, 4, 16, "filters"),  # half of the eight channels padding: still
        (3, 1, 3, 16, "planes"),  # more than half: the planar kernel (too few for 16 lanes)
        (3, 1, 16, 8, "channels"),  # 8 filters: half a vector
        (4, 2, 64, 32, "channels"),  # D1's: 4 taps, stride 2
    ],
)
def test_kernel_gradient_takes_filter_vectors_where_they_apply(size, stride, c, f, path):
    geom = ops.Geometry.of((16, 16, 16), (size,) * 3, (stride,) * 3, (1, 1, 1), True)
    assert ops.kernel_gradient_path(geom, c, f) == path


def test_forcing_a_kernel_gradient_path(monkeypatch):
    """Forced where it applies; elsewhere, and for a value naming no path, the usual choice."""
    geom = ops.Geometry.of((16, 16, 16), (3, 3, 3), (1, 1, 1), (1, 1, 1), False)
    monkeypatch.setenv("CONV3DT_KERNEL_GRADIENT", "filters")
    assert ops.kernel_gradient_path(geom, 3, 16) == "filters"  # channels padding: forced
    assert ops.kernel_gradient_path(geom, 16, 8) == "channels"  # not a whole filter vector
    monkeypatch.setenv("CONV3DT_KERNEL_GRADIENT", "channels")
    assert ops.kernel_gradient_path(geom, 16, 16) == "channels"
    assert ops.kernel_gradient_path(geom, 3, 16) == "planes"  # too few channels for lanes
    monkeypatch.setenv("CONV3DT_KERNEL_GRADIENT", "planes")
    assert ops.kernel_gradient_path(geom, 16, 16) == "planes"
    monkeypatch.setenv("CONV3DT_KERNEL_GRADIENT", "fastest")  # not a path: the automatic choice
    assert ops.kernel_gradient_path(geom, 16, 16) == "filters"


# ----------------------------------------------------------------------------- random layers

axis = st.tuples(
    st.integers(1, 19),  # input length: rows of one vector or more, and shorter
    st.integers(1, 4),  # kernel size
    st.integers(1, 3),  # stride
    st.integers(1, 2),  # dilation
)
layers = st.fixed_dictionaries(
    {
        "axes": st.tuples(axis, axis, axis),
        "same": st.booleans(),
        "n": st.integers(1, 3),
        "c": st.sampled_from([1, 3, 5, 12, 16, 17, 24, 33]),
        "f": st.sampled_from([1, 2, 4, 5, 8, 9, 16, 19]),
        "channels_last": st.booleans(),
        "seed": st.integers(0, 2**16),
    }
)


@pytest.mark.skipif(not cpu_kernels.AVAILABLE, reason="interpreted, 60 layers take too long")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layers)
def test_compiled_kernels_equal_the_reference_on_random_layers(layer):
    """Random layers: any spatial size (rows shorter and longer than a vector), kernel size,
    stride, dilation, padding, channel and filter counts (partial filter groups and channel
    vectors, the channels-last kernel gradient from 12 channels), batch (samples shared between
    threads), both output layouts, bias and relu, the forward by filter vectors, by rows and by
    phase planes, the kernel gradient by filter vectors, channels and planes; relu's backward
    fused with the bias gradient. 60 examples here (3,000 passed
    when the kernels were written)."""
    ins, sizes, strides, dilations = zip(*layer["axes"])
    if np.prod(ins) * layer["c"] * layer["n"] > 60_000:  # keep each example quick
        ins = tuple(min(i, 6) for i in ins)
    geom = ops.Geometry.of(ins, sizes, strides, dilations, layer["same"])
    n, c, f = layer["n"], layer["c"], layer["f"]
    rng = np.random.default_rng(layer["seed"])
    x = rng.standard_normal((n, c, *ins), dtype=np.float32)
    kernel = rng.standard_normal((*sizes, f, c), dtype=np.float32)
    bias = rng.standard_normal(f).astype(np.float32)
    dy = rng.standard_normal((n, f, *geom.out_shape), dtype=np.float32)

    want = np.maximum(ops._flat_forward(np, x, kernel, geom) + bias.reshape(-1, 1, 1, 1), 0)
    for forward in ("filters", "rows", "planes"):  # filters only where they apply
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("CONV3DT_FORWARD", forward)
            got = ops._compiled_forward(x, kernel, geom, layer["channels_last"], bias, relu=True)
        _close(got, want)
    _gradients_match_reference(x, kernel, geom, dy)
    want_dk = ops._flat_backward_kernel(np, x, dy, geom, kernel.shape)
    for gradient in ("filters", "channels", "planes"):  # each where it applies
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("CONV3DT_KERNEL_GRADIENT", gradient)
            _close(ops._compiled_backward_kernel(x, dy, geom, kernel.shape), want_dk)
    dz, db = ops.relu_backward(np, want, dy, True, True)
    _close(dz, dy * (want > 0))
    _close(db, (dy * (want > 0)).astype(np.float64).sum(axis=(0, 2, 3, 4)))  # exact-ish sums


def test_run_chunks_finishes_on_the_caller_once_the_pool_is_shut_down(monkeypatch):
    """At interpreter exit the helpers' pool refuses work (a warm-up may still be running):
    the calling thread then does every range itself, with no error."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(1)
    pool.shutdown()
    monkeypatch.setattr(cpu_kernels, "THREADS", 2)
    monkeypatch.setattr(cpu_kernels, "_pool", pool)
    done = []
    cpu_kernels.run_chunks(lambda a, b: done.append((a, b)), 10, 4, lambda k, a, b: (a, b))
    assert sorted(done) == [(0, 2), (2, 5), (5, 7), (7, 10)]
