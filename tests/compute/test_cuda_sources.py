"""The CUDA kernels, checked where no GPU is present (CI has none).

Two independent checks of the exact kernel text that :mod:`compute.cuda_kernels` hands to CuPy:
- NVRTC (the compiler CuPy uses) compiles every kernel for Ampere and Hopper, with no register
  spills in the per-thread accumulators;
- the same text, run by a CPU emulation of CUDA's threads and barriers (:mod:`cuda_emulation`),
  equals the NumPy reference on the geometry table of ``test_fast_paths``, and the fused optimizer
  update equals the NumPy optimizer step by step, for every algorithm.
On a GPU, the ``gpu``-marked tests in ``test_fast_paths`` and ``test_optimizers`` run the same
kernels for real.
"""

from __future__ import annotations

import platform

import numpy as np
import pytest
from cuda_emulation import EmulatedKernels
from test_fast_paths import GEOMETRIES, _case, _close, _ids

from conv3dt_studio.compute import conv3d_transpose_ops as ops
from conv3dt_studio.compute import cuda_kernels
from conv3dt_studio.compute.backend import NUMPY
from conv3dt_studio.compute.optimizers import _SLOTS, ALGORITHMS, CUDA_RULES, Optimizer

if platform.system() == "Linux" and platform.machine() == "x86_64":
    from nvrtc import Nvrtc  # a test dependency here: a missing wheel must fail, not skip
else:  # the nvidia-cuda-nvrtc-cu12 wheel exists for Linux x86-64 only
    Nvrtc = pytest.importorskip("nvrtc").Nvrtc

CONV_KERNELS = tuple(cuda_kernels._SOURCES)
# (filters, channels): W1 (3, 5), W4 (8, 16), one of each, and tiles that do not divide channels.
SPECIALISATIONS = [(3, 5), (8, 16), (1, 1), (8, 5)]


def _update_source(algo: str) -> str:
    names = tuple(name for name, _ in _SLOTS[algo])
    constants = tuple(Optimizer({"algorithm": algo}, NUMPY).constants(1))
    return cuda_kernels.update_source(f"update_{algo}", CUDA_RULES[algo], names, constants)


# ----------------------------------------------------------------------------- NVRTC


@pytest.fixture(scope="module")
def nvrtc():
    return Nvrtc()


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("nf, nc", SPECIALISATIONS)
@pytest.mark.parametrize("name", CONV_KERNELS)
def test_conv_kernels_compile_without_spills(nvrtc, name, nf, nc, arch):
    out = nvrtc.compile(cuda_kernels.conv_source(name, nf, nc), name, arch)
    assert out.ok, out.log
    assert out.cubin_bytes > 0
    assert out.spills == 0, out.log  # the per-thread accumulators stay in registers


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_update_kernels_compile(nvrtc, algo):
    out = nvrtc.compile(_update_source(algo), f"update_{algo}")
    assert out.ok, out.log
    assert out.spills == 0, out.log


def test_nvrtc_reports_errors(nvrtc):
    # The checks above can fail: a kernel calling an undefined function does not compile.
    out = nvrtc.compile('extern "C" __global__ void k(float* y) { y[0] = nowhere(); }', "k")
    assert not out.ok and "nowhere" in out.log


# ----------------------------------------------------------------------------- emulation


def _build(tmp_path_factory, nf, nc):
    src = "".join(
        cuda_kernels.conv_source(n, nf, nc) + "\n#undef NF\n#undef NC\n#undef CT\n#undef THREADS\n"
        for n in CONV_KERNELS
    )
    src = src.replace("#define I0", "#undef I0\n#define I0")  # _COMMON repeats per kernel
    return EmulatedKernels(src, tmp_path_factory.mktemp("cuda_emulation"))


def _geometry_array(geom):
    return cuda_kernels._geometry_array(np, geom)


def _emulate_all(kernels, geom, x, kernel, dy):
    """Forward, input gradient and kernel gradient as cuda_kernels launches them."""
    t = cuda_kernels.THREADS
    n, c = x.shape[:2]
    f = kernel.shape[3]
    g = _geometry_array(geom)
    y = np.full((n, f, *geom.out_shape), np.nan, np.float32)
    total = y.size // f
    kernels.run("conv3dt_forward", (-(-total // t),), t, x, kernel, y, g, total)
    dx = np.full_like(x, np.nan)
    total = dx.size // c
    kernels.run("conv3dt_backward_input", (-(-total // t),), t, dy, kernel, dx, g, total)
    taps = int(np.prod(kernel.shape[:3]))
    grid, chunk = cuda_kernels.kernel_grad_grid(x.size // c, taps, f, c)
    partial = np.full((grid[0], taps, f, c), np.nan, np.float32)
    kernels.run("conv3dt_backward_kernel", grid, t, x, dy, partial, g, n, chunk)
    return y, dx, partial.sum(axis=0).reshape(kernel.shape)


@pytest.fixture(scope="module")
def emulated_2x3(tmp_path_factory):
    return _build(tmp_path_factory, 2, 3)


@pytest.mark.parametrize("case", GEOMETRIES, ids=_ids(GEOMETRIES))
def test_emulated_conv_kernels_equal_reference(rng, emulated_2x3, case):
    geom, x, kernel, dy = _case(rng, case)  # f=2, c=3, as compiled
    y, dx, dk = _emulate_all(emulated_2x3, geom, x, kernel, dy)
    _close(y, ops._flat_forward(np, x, kernel, geom))
    _close(dx, ops._flat_backward_input(np, dy, kernel, geom))
    _close(dk, ops._flat_backward_kernel(np, x, dy, geom, kernel.shape))


def test_emulated_kernel_gradient_over_chunks_and_channel_tiles(rng, tmp_path_factory):
    # 8 filters x 5 channels: tiles of 4 channels, the last one partial; 2 x 5,400 elements:
    # two chunks, the last one partial.
    kernels = _build(tmp_path_factory, 8, 5)
    case = ((15, 18, 20), 3, 2, 1, True, None)
    geom, x, kernel, dy = _case(rng, case, n=2, c=5, f=8)
    grid, _ = cuda_kernels.kernel_grad_grid(x.size // 5, 27, 8, 5)
    assert grid == (2, 27, 2)
    y, dx, dk = _emulate_all(kernels, geom, x, kernel, dy)
    _close(y, ops._flat_forward(np, x, kernel, geom))
    _close(dx, ops._flat_backward_input(np, dy, kernel, geom))
    _close(dk, ops._flat_backward_kernel(np, x, dy, geom, kernel.shape))


def test_kernel_grad_grid_bounds_chunks():
    grid, chunk = cuda_kernels.kernel_grad_grid(10 * 6 * 5 * 64 * 64, 27, 3, 5)  # W1
    assert grid[1:] == (27, 1) and grid[0] * chunk >= 10 * 6 * 5 * 64 * 64
    huge, big_chunk = cuda_kernels.kernel_grad_grid(10**9, 27, 3, 5)
    assert huge[0] <= cuda_kernels.MAX_CHUNKS and huge[0] * big_chunk >= 10**9


def test_emulator_catches_a_missing_barrier(tmp_path_factory):
    # The emulation is a real check: a block sum without its barriers gives a wrong total, and a
    # barrier skipped by some threads is reported.
    src = r"""
extern "C" __global__ void block_sum(const float* x, float* out, int barriers) {
    __shared__ float part[64];
    part[threadIdx.x] = x[threadIdx.x];
    if (barriers) __syncthreads();
    for (int half = 32; half > 0; half >>= 1) {
        if (threadIdx.x < half) part[threadIdx.x] += part[threadIdx.x + half];
        if (barriers) __syncthreads();
    }
    if (threadIdx.x == 0) out[0] = part[0];
}
extern "C" __global__ void divergent(float* out, int unused) {
    if (threadIdx.x % 2) __syncthreads();
    out[threadIdx.x] = 1.0f;
}
"""
    kernels = EmulatedKernels(src, tmp_path_factory.mktemp("barrier"))
    x = np.arange(64, dtype=np.float32)
    out = np.zeros(1, np.float32)
    kernels.run("block_sum", (1,), 64, x, out, 1)
    assert out[0] == x.sum()
    kernels.run("block_sum", (1,), 64, 2 * x, out, 0)  # new data: stale sums would not do
    assert out[0] != 2 * x.sum()
    with pytest.raises(AssertionError, match="only some threads"):
        kernels.run("divergent", (1,), 64, np.zeros(64, np.float32), 0)


@pytest.fixture(scope="module")
def emulated_updates(tmp_path_factory):
    src = "".join(_update_source(a) + "\n#undef NP\n" for a in ALGORITHMS)
    return EmulatedKernels(src, tmp_path_factory.mktemp("update_emulation"))


class _Host:
    """Stands in for CuPy in ``fused_update``'s tables: host addresses of NumPy arrays."""

    @staticmethod
    def ptr(a):
        return a.ctypes.data


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_emulated_fused_update_equals_numpy_optimizer(rng, emulated_updates, algo):
    config = {"algorithm": algo, "learning_rate": 0.01}
    shapes = [(3, 3, 3, 2, 5), (2,), (0,), (4, 1, 1, 2, 3)]  # kernel, bias, empty, another
    w0 = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
    want = Optimizer(config, NUMPY)
    got = Optimizer(config, NUMPY)  # its slots and constants, updated by the emulated kernel
    w_want, w_got = [w.copy() for w in w0], [w.copy() for w in w0]
    names = tuple(name for name, _ in _SLOTS[algo])
    for _ in range(4):
        grads = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
        want.apply(w_want, grads)
        got._ensure_slots(w_got)
        k = got.constants(got.iterations + 1)
        groups = [(w, g, *(s[n] for n in names)) for w, g, s in zip(w_got, grads, got.slots)]
        ptrs, starts, total = cuda_kernels.update_tables(groups, _Host.ptr)
        consts = np.array([k[c] for c in k], dtype=np.float32)
        t = cuda_kernels.THREADS
        emulated_updates.run(
            f"update_{algo}", (-(-total // t),), t, ptrs, starts, len(groups), consts, total
        )
        got.iterations += 1
        if algo == "nadam":
            got.u_product = k["prod_t"]
        pairs = list(zip(w_got, w_want))
        pairs += [(sa[n], sb[n]) for sa, sb in zip(got.slots, want.slots) for n in names]
        for a, b in pairs:
            if b.size:  # the empty tensor: nothing to compare, but its neighbours must be right
                _close(a, b)
