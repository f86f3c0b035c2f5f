"""The sub-pixel GEMM path (:mod:`compute.conv3d_transpose_gemm`) against the "flat offset"
reference, on every geometry of the fast-path table, plus its cost-model dispatch, fused bias
and relu, channels_last results without a copy, determinism, and its memory bound against the
allocations tracemalloc sees. No timing assertions."""

from __future__ import annotations

import numpy as np
import pytest
from test_fast_paths import GEOMETRIES, _case, _close, _ids, layer_step

from conv3dt_studio.compute import conv3d_transpose_gemm as gemm
from conv3dt_studio.compute import conv3d_transpose_ops as ops
from conv3dt_studio.compute.benchmark import traced_peak

# Decoder-like layers (in, kernel, stride, same, channels, filters) where many channels make
# the GEMM the chosen path.
DECODERS = [
    ((6, 5, 4), 4, 2, True, 24, 12),
    ((5, 4, 6), 3, 2, True, 16, 8),
    ((4, 4, 4), 3, 1, False, 16, 16),
]
DECODERS_CASE = ((5, 4, 6), 3, 2, 1, True, None)


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks and sample chunks of a few hundred bytes: every chunking branch runs."""
    monkeypatch.setattr(gemm, "BLOCK_BYTES", 512)
    monkeypatch.setattr(gemm, "PAD_BYTES", 4096)


def _products(x, kernel, geom, dy):
    y = np.full((x.shape[0], kernel.shape[3], *geom.out_shape), np.nan, np.float32)
    gemm.forward(x, kernel, geom, y)
    dx = np.full(x.shape, np.nan, np.float32)
    gemm.backward_input(dy, kernel, geom, dx)
    return y, dx, gemm.backward_kernel(x, dy, geom, kernel.shape)


def _reference(x, kernel, geom, dy):
    return (
        ops._flat_forward(np, x, kernel, geom),
        ops._flat_backward_input(np, dy, kernel, geom),
        ops._flat_backward_kernel(np, x, dy, geom, kernel.shape),
    )


@pytest.mark.parametrize("case", GEOMETRIES, ids=_ids(GEOMETRIES))
def test_gemm_products_equal_reference(rng, case):
    geom, x, kernel, dy = _case(rng, case, n=3, c=4, f=3)
    for got, want in zip(_products(x, kernel, geom, dy), _reference(x, kernel, geom, dy)):
        _close(got, want)


@pytest.mark.parametrize("case", [GEOMETRIES[i] for i in (0, 4, 12, 16)], ids=str)
def test_gemm_chunks_and_blocks_change_nothing(rng, small_blocks, case):
    geom, x, kernel, dy = _case(rng, case, n=5, c=3, f=2)
    for got, want in zip(_products(x, kernel, geom, dy), _reference(x, kernel, geom, dy)):
        _close(got, want)


def test_the_shift_minimises_the_products():
    """4^3 at stride 2 with "same" crops 1: shifting by 1 keeps two offsets per axis (one 16-long
    phase range instead of three offsets)."""
    geom = ops.Geometry.of((16, 16, 16), (4, 4, 4), (2, 2, 2), (1, 1, 1), True)
    plan = gemm.gemm_plan(geom)
    assert plan.taps == 8 and plan.phases == 8
    assert gemm.useful_fraction(geom) == 1.0
    assert all(a.mlen in (16, 17) for a in plan.axes)


def test_weight_matrix_round_trip(rng):
    geom = ops.Geometry.of((3, 4, 5), (3, 2, 4), (2, 1, 3), (1, 2, 1), True)
    plan = gemm.gemm_plan(geom)
    kernel = rng.standard_normal((3, 2, 4, 5, 6), dtype=np.float32)
    wb = gemm.weight_matrix(kernel, plan)
    assert np.count_nonzero(wb) == kernel.size  # every tap once, the rest zeros
    np.testing.assert_array_equal(gemm.kernel_from_matrix(wb, plan, kernel.shape), kernel)


@pytest.mark.parametrize("spatial, k, s, same, c, f", DECODERS, ids=str)
def test_decoder_layers_take_the_gemm_and_match(rng, spatial, k, s, same, c, f):
    geom = ops.Geometry.of(spatial, (k,) * 3, (s,) * 3, (1, 1, 1), same)
    loops, product = ops.costs(geom, c, f)
    assert loops > 0 and product > 0
    x = rng.standard_normal((2, c, *spatial), dtype=np.float32)
    kernel = rng.standard_normal((k, k, k, f, c), dtype=np.float32) / c
    dy = rng.standard_normal((2, f, *geom.out_shape), dtype=np.float32)
    for got, want in zip(_products(x, kernel, geom, dy), _reference(x, kernel, geom, dy)):
        _close(got, want)


def test_few_channels_keep_the_compiled_loops_and_many_take_the_gemm():
    """The tiled loops keep up with BLAS to 64 -> 32 channels (issue 13's decoder rows); wider
    layers take the GEMM."""
    w1 = ops.Geometry.of((5, 64, 64), (3, 3, 3), (1, 1, 1), (1, 1, 1), False)
    decoder = ops.Geometry.of((16, 16, 16), (4, 4, 4), (2, 2, 2), (1, 1, 1), True)
    assert not ops.use_gemm(w1, 5, 3)
    assert not ops.use_gemm(decoder, 64, 32)
    assert ops.use_gemm(decoder, 256, 128)


def test_the_environment_forces_a_path(monkeypatch):
    w1 = ops.Geometry.of((5, 64, 64), (3, 3, 3), (1, 1, 1), (1, 1, 1), False)
    monkeypatch.setenv("CONV3DT_CPU_PATH", "gemm")
    assert ops.use_gemm(w1, 5, 3)
    monkeypatch.setenv("CONV3DT_CPU_PATH", "loops")
    assert not ops.use_gemm(w1, 64, 32)


@pytest.mark.parametrize("cpu", ["gemm", "loops"])
@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_layer_on_each_cpu_path_equals_reference(rng, monkeypatch, cpu, data_format, activation):
    """Bias and relu fused into the GEMM's blocks, layouts, gradients and updated weights
    ("loops" is the compiled loops, or without Numba the flat path with ops.forward's bias)."""
    spatial = GEOMETRIES[16][0]
    cf = data_format == "channels_first"
    x = rng.standard_normal((3, 4, *spatial) if cf else (3, *spatial, 4), dtype=np.float32)

    def run(path):
        monkeypatch.setenv("CONV3DT_CPU_PATH", "gemm" if path == "gemm" else "loops")
        monkeypatch.setattr(ops, "_path", lambda xp: "flat" if path == "flat" else "numba")
        if path == "flat":
            monkeypatch.setattr(ops, "use_gemm", lambda *a: False)
        return layer_step(GEOMETRIES[16], data_format, activation, x)

    y1, g1, w1 = run(cpu)
    with monkeypatch.context():
        y0, g0, w0 = run("flat")
    assert y1.flags.c_contiguous
    _close(y1, y0)
    for key in ("kernel", "bias", "input"):
        _close(g1[key], g0[key])
    for a, b in zip(w1, w0):
        _close(a, b)


@pytest.mark.parametrize("cpu", ["gemm", "loops"])
def test_channels_last_results_are_laid_out_so(rng, monkeypatch, cpu):
    """ops.forward(channels_last=True): the (N, F, ...) result is a view of a channels-last
    buffer, so the layer's moveaxis needs no copy of the output."""
    monkeypatch.setenv("CONV3DT_CPU_PATH", cpu)
    geom, x, kernel, _ = _case(rng, GEOMETRIES[4])
    y = ops.forward(np, x, kernel, geom, channels_last=True)
    assert np.moveaxis(y, 1, -1).flags.c_contiguous
    _close(y, ops._flat_forward(np, x, kernel, geom))


@pytest.mark.parametrize("index", [4, 16])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("relu", [False, True])
def test_loops_fuse_bias_and_relu_bit_for_bit(rng, monkeypatch, index, channels_last, relu):
    """The compiled loops add the bias and apply relu as they write each output plane: the same
    float32 operations in the same order as the convolution followed by ``+= bias`` and
    ``maximum(., 0)``, so the same bits."""
    monkeypatch.setenv("CONV3DT_CPU_PATH", "loops")
    geom, x, kernel, _ = _case(rng, GEOMETRIES[index])
    bias = rng.standard_normal(kernel.shape[3], dtype=np.float32)
    fused = ops.forward(np, x, kernel, geom, bias, relu, channels_last)
    plain = ops.forward(np, x, kernel, geom, channels_last=channels_last)
    plain += bias.reshape((-1, 1, 1, 1))
    if relu:
        np.maximum(plain, 0, out=plain)
    np.testing.assert_array_equal(fused, plain)


def test_gemm_kernel_gradient_is_deterministic(rng):
    geom, x, kernel, dy = _case(rng, DECODERS_CASE, n=5, c=16, f=8)
    first = gemm.backward_kernel(x, dy, geom, kernel.shape)
    np.testing.assert_array_equal(first, gemm.backward_kernel(x, dy, geom, kernel.shape))


@pytest.mark.parametrize(
    "cpu", ["gemm", "loops", "loops by rows", "loops by filters", "loops by winograd"]
)
@pytest.mark.parametrize(
    "spatial, k, s, same, c, f",
    [*DECODERS, ((5, 9, 3), 3, 1, False, 5, 3), ((6, 4, 5), 3, 2, True, 2, 3)],
    ids=str,
)
def test_working_bytes_bounds_the_traced_peak(rng, monkeypatch, cpu, spatial, k, s, same, c, f):
    """working_bytes (what the memory guard adds) is at least the peak of what a forward, a
    kernel gradient and an input gradient allocate beside their inputs and outputs (the loops'
    forward by phase planes, or by rows)."""
    monkeypatch.setenv("CONV3DT_CPU_PATH", cpu.split()[0])
    monkeypatch.setenv("CONV3DT_FORWARD", cpu.split()[-1] if " by " in cpu else "planes")
    monkeypatch.setenv("CONV3DT_INPUT_GRADIENT", "winograd" if "winograd" in cpu else "planes")
    geom = ops.Geometry.of(spatial, (k,) * 3, (s,) * 3, (1, 1, 1), same)
    x = rng.standard_normal((3, c, *spatial), dtype=np.float32)
    kernel = rng.standard_normal((k, k, k, f, c), dtype=np.float32)
    dy = rng.standard_normal((3, f, *geom.out_shape), dtype=np.float32)
    ops.warm_up()
    out = 4 * dy.size
    forward = traced_peak(lambda: ops.forward(np, x, kernel, geom)) - out
    assert forward <= ops.working_bytes(geom, c, f)
    grad_input = traced_peak(lambda: ops.backward_input(np, dy, kernel, geom)) - x.nbytes
    grad_kernel = traced_peak(lambda: ops.backward_kernel(np, x, dy, geom, kernel.shape))
    assert max(grad_input, grad_kernel - kernel.nbytes) <= ops.working_bytes(geom, c, f, True)


@pytest.fixture
def phased(monkeypatch):
    """One product per phase wherever every (offset, residue) slot of ``Wb`` holds a tap."""
    monkeypatch.setattr(gemm, "PER_PHASE_MIN_FILTERS", 1)
    monkeypatch.setattr(gemm, "PER_PHASE_WASTE", 0.0)


@pytest.mark.parametrize("blocks", ["default", "small"])
@pytest.mark.parametrize("case", GEOMETRIES, ids=_ids(GEOMETRIES))
def test_per_phase_products_equal_reference(rng, monkeypatch, phased, blocks, case):
    if blocks == "small":
        monkeypatch.setattr(gemm, "BLOCK_BYTES", 512)
        monkeypatch.setattr(gemm, "PAD_BYTES", 4096)
    geom, x, kernel, dy = _case(rng, case, n=3, c=4, f=3)
    for got, want in zip(_products(x, kernel, geom, dy), _reference(x, kernel, geom, dy)):
        _close(got, want)


def test_per_phase_is_chosen_where_the_union_wastes_most():
    d3 = ops.Geometry.of((8, 8, 8), (4,) * 3, (2,) * 3, (1, 1, 1), True)
    d1 = ops.Geometry.of((16, 16, 16), (4,) * 3, (2,) * 3, (1, 1, 1), True)
    d2 = ops.Geometry.of((16, 16, 16), (3,) * 3, (2,) * 3, (1, 1, 1), True)
    assert gemm.per_phase(gemm.gemm_plan(d3), 128, 64)
    assert not gemm.per_phase(gemm.gemm_plan(d3), 128, 32)  # products too narrow
    assert not gemm.per_phase(gemm.gemm_plan(d1), 64, 32)  # 17^3 for 16^3: 20 % only
    assert not gemm.per_phase(gemm.gemm_plan(d2), 32, 64)  # zero slots in Wb


def test_per_phase_kernel_gradient_is_deterministic(rng, phased):
    geom, x, kernel, dy = _case(rng, ((4, 5, 3), 4, 2, 1, True, None), n=5, c=6, f=4)
    assert gemm.per_phase(gemm.gemm_plan(geom), 6, 4)
    first = gemm.backward_kernel(x, dy, geom, kernel.shape)
    np.testing.assert_array_equal(first, gemm.backward_kernel(x, dy, geom, kernel.shape))


def test_working_bytes_bounds_the_per_phase_peak(rng, monkeypatch, phased):
    assert gemm.per_phase(
        gemm.gemm_plan(ops.Geometry.of((6, 5, 4), (4,) * 3, (2,) * 3, (1, 1, 1), True)), 24, 12
    )
    test_working_bytes_bounds_the_traced_peak(rng, monkeypatch, "gemm", *DECODERS[0])
