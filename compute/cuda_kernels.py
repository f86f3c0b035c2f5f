"""CUDA kernels (CuPy ``RawKernel``) for the transposed 3-D convolution on the ``cupy`` backend.

CuPy is never imported here: the caller passes the array module ``xp`` (the backend's, see
:mod:`compute.backend`) and kernels are built with ``xp.RawKernel``. Each kernel is compiled once
per (filters, channels), which are compile-time constants so the per-thread accumulators live in
registers.

- forward: a gather, one thread per output voxel computing all filters; no atomics.
- input gradient: a gather, one thread per input voxel computing all channels; no atomics.
- kernel gradient: one block per (chunk of samples x voxels, tap, channel tile) sums the products
  of all filters and its channels in a fixed order and a fixed tree; the chunks are then added in
  order: deterministic, no atomics, and x and dy are read once per tap.
- optimizer update: one launch per optimizer step over all its tensors (:func:`fused_update`); the
  rules themselves are written in :mod:`compute.optimizers`, next to their NumPy spelling.

Semantics as in :mod:`compute.conv3d_transpose_ops`: output position ``o`` of an axis is the full
position ``p = o + crop``; input ``i`` and tap ``j`` meet there when ``p = i*stride + j*dilation``.
Layouts: data (N, C, D, H, W) contiguous, kernel Keras (kd, kh, kw, F, C) contiguous.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .backend import Array, ArrayModule

if TYPE_CHECKING:  # conv3d_transpose_ops imports this module
    from .conv3d_transpose_ops import Geometry

THREADS = 256  # threads per block
_CACHE: dict[tuple[Any, ...], Any] = {}  # compiled kernels (CuPy RawKernel)

# The geometry table ``g`` every convolution kernel reads: per field, one int32 per axis. The C
# source names its entries (I0 = g[0], ..., P2 = g[17]) with #defines generated from this table,
# and :func:`_geometry_array` fills it from the same one, so the two cannot disagree.
_GEOMETRY_FIELDS = (
    ("I", "in_len"),
    ("O", "out_len"),
    ("K", "size"),
    ("S", "stride"),
    ("D", "dilation"),
    ("P", "crop_start"),
)
_COMMON = "\n" + "".join(
    f"#define {letter}{axis} g[{3 * i + axis}]\n"
    for i, (letter, _) in enumerate(_GEOMETRY_FIELDS)
    for axis in range(3)
)

_FORWARD = r"""
extern "C" __global__ void conv3dt_forward(
    const float* __restrict__ x, const float* __restrict__ w, float* __restrict__ y,
    const int* __restrict__ g, long long total)
{
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    int o2 = (int)(idx % O2);
    long long r = idx / O2;
    int o1 = (int)(r % O1);
    r /= O1;
    int o0 = (int)(r % O0);
    long long n = r / O0;
    float acc[NF];
    #pragma unroll
    for (int f = 0; f < NF; ++f) acc[f] = 0.0f;
    long long in_vol = (long long)I0 * I1 * I2;
    const float* xn = x + n * NC * in_vol;
    for (int j0 = 0; j0 < K0; ++j0) {
        int q0 = o0 + P0 - j0 * D0;
        if (q0 < 0 || q0 % S0 != 0 || q0 / S0 >= I0) continue;
        int i0 = q0 / S0;
        for (int j1 = 0; j1 < K1; ++j1) {
            int q1 = o1 + P1 - j1 * D1;
            if (q1 < 0 || q1 % S1 != 0 || q1 / S1 >= I1) continue;
            int i1 = q1 / S1;
            for (int j2 = 0; j2 < K2; ++j2) {
                int q2 = o2 + P2 - j2 * D2;
                if (q2 < 0 || q2 % S2 != 0 || q2 / S2 >= I2) continue;
                int i2 = q2 / S2;
                const float* xv = xn + ((long long)i0 * I1 + i1) * I2 + i2;
                const float* wt = w + (long long)((j0 * K1 + j1) * K2 + j2) * NF * NC;
                #pragma unroll
                for (int c = 0; c < NC; ++c) {
                    float v = xv[c * in_vol];
                    #pragma unroll
                    for (int f = 0; f < NF; ++f) acc[f] += wt[f * NC + c] * v;
                }
            }
        }
    }
    long long out_vol = (long long)O0 * O1 * O2;
    float* yv = y + n * NF * out_vol + ((long long)o0 * O1 + o1) * O2 + o2;
    #pragma unroll
    for (int f = 0; f < NF; ++f) yv[f * out_vol] = acc[f];
}
"""

_BACKWARD_INPUT = r"""
extern "C" __global__ void conv3dt_backward_input(
    const float* __restrict__ dy, const float* __restrict__ w, float* __restrict__ dx,
    const int* __restrict__ g, long long total)
{
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    int i2 = (int)(idx % I2);
    long long r = idx / I2;
    int i1 = (int)(r % I1);
    r /= I1;
    int i0 = (int)(r % I0);
    long long n = r / I0;
    float acc[NC];
    #pragma unroll
    for (int c = 0; c < NC; ++c) acc[c] = 0.0f;
    long long out_vol = (long long)O0 * O1 * O2;
    const float* dyn = dy + n * NF * out_vol;
    for (int j0 = 0; j0 < K0; ++j0) {
        int o0 = i0 * S0 + j0 * D0 - P0;
        if (o0 < 0 || o0 >= O0) continue;
        for (int j1 = 0; j1 < K1; ++j1) {
            int o1 = i1 * S1 + j1 * D1 - P1;
            if (o1 < 0 || o1 >= O1) continue;
            for (int j2 = 0; j2 < K2; ++j2) {
                int o2 = i2 * S2 + j2 * D2 - P2;
                if (o2 < 0 || o2 >= O2) continue;
                const float* gv = dyn + ((long long)o0 * O1 + o1) * O2 + o2;
                const float* wt = w + (long long)((j0 * K1 + j1) * K2 + j2) * NF * NC;
                #pragma unroll
                for (int f = 0; f < NF; ++f) {
                    float v = gv[f * out_vol];
                    #pragma unroll
                    for (int c = 0; c < NC; ++c) acc[c] += wt[f * NC + c] * v;
                }
            }
        }
    }
    long long in_vol = (long long)I0 * I1 * I2;
    float* dxv = dx + n * NC * in_vol + ((long long)i0 * I1 + i1) * I2 + i2;
    #pragma unroll
    for (int c = 0; c < NC; ++c) dxv[c * in_vol] = acc[c];
}
"""

_BACKWARD_KERNEL = r"""
extern "C" __global__ void conv3dt_backward_kernel(
    const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ partial,
    const int* __restrict__ g, long long n_samples, long long chunk)
{
    // Block (blockIdx.x, blockIdx.y, blockIdx.z) = (element chunk, tap, channel tile): it sums
    // x[n, c, i] * dy[n, f, o(i, tap)] over its chunk of (n, i) for all NF filters and CT channels,
    // in a fixed order and a fixed tree, and writes them to
    // partial[chunk][tap][f][c]; the chunks are then summed in order: deterministic, no atomics.
    __shared__ float part[THREADS];
    int tap = blockIdx.y;
    int c0 = blockIdx.z * CT;
    int j2 = tap % K2;
    int j1 = (tap / K2) % K1;
    int j0 = tap / (K2 * K1);
    long long in_vol = (long long)I0 * I1 * I2;
    long long out_vol = (long long)O0 * O1 * O2;
    long long total = n_samples * in_vol;
    long long begin = (long long)blockIdx.x * chunk;
    long long end = begin + chunk < total ? begin + chunk : total;
    float acc[NF][CT];
    #pragma unroll
    for (int f = 0; f < NF; ++f) {
        #pragma unroll
        for (int c = 0; c < CT; ++c) acc[f][c] = 0.0f;
    }
    for (long long e = begin + threadIdx.x; e < end; e += THREADS) {
        int i2 = (int)(e % I2);
        long long r = e / I2;
        int i1 = (int)(r % I1);
        r /= I1;
        int i0 = (int)(r % I0);
        long long n = r / I0;
        int o0 = i0 * S0 + j0 * D0 - P0;
        int o1 = i1 * S1 + j1 * D1 - P1;
        int o2 = i2 * S2 + j2 * D2 - P2;
        if (o0 < 0 || o0 >= O0 || o1 < 0 || o1 >= O1 || o2 < 0 || o2 >= O2) continue;
        const float* xv = x + (n * NC + c0) * in_vol + ((long long)i0 * I1 + i1) * I2 + i2;
        const float* gv = dy + n * NF * out_vol + ((long long)o0 * O1 + o1) * O2 + o2;
        float xs[CT];
        #pragma unroll
        for (int c = 0; c < CT; ++c) xs[c] = c0 + c < NC ? xv[c * in_vol] : 0.0f;
        #pragma unroll
        for (int f = 0; f < NF; ++f) {
            float gf = gv[f * out_vol];
            #pragma unroll
            for (int c = 0; c < CT; ++c) acc[f][c] += xs[c] * gf;
        }
    }
    float* out = partial + ((long long)blockIdx.x * gridDim.y + tap) * NF * NC;
    #pragma unroll
    for (int f = 0; f < NF; ++f) {
        #pragma unroll
        for (int c = 0; c < CT; ++c) {
            part[threadIdx.x] = acc[f][c];
            __syncthreads();
            for (int half = THREADS / 2; half > 0; half >>= 1) {
                if (threadIdx.x < half) part[threadIdx.x] += part[threadIdx.x + half];
                __syncthreads();
            }
            if (threadIdx.x == 0 && c0 + c < NC) out[f * NC + c0 + c] = part[0];
            __syncthreads();  // part[0] is read before the next round overwrites part
        }
    }
}
"""

_SOURCES = {
    "conv3dt_forward": _FORWARD,
    "conv3dt_backward_input": _BACKWARD_INPUT,
    "conv3dt_backward_kernel": _BACKWARD_KERNEL,
}


def channel_tile(nf: int, nc: int) -> int:
    """Channels one kernel-gradient block sums at once: ``NF * CT`` accumulators per thread, at
    most 32 so they stay in registers."""
    return max(1, min(nc, 32 // nf))


def conv_source(name: str, nf: int, nc: int) -> str:
    """The full CUDA source of one convolution kernel, specialised for ``nf`` filters and ``nc``
    channels (what :func:`_kernel` compiles; the tests compile and emulate the same text)."""
    defines = f"#define NF {nf}\n#define NC {nc}\n#define CT {channel_tile(nf, nc)}\n"
    return defines + f"#define THREADS {THREADS}\n" + _COMMON + _SOURCES[name]


def _kernel(xp: ArrayModule, name: str, nf: int, nc: int) -> Any:
    key = (name, nf, nc)
    if key not in _CACHE:
        _CACHE[key] = xp.RawKernel(conv_source(name, nf, nc), name)
    return _CACHE[key]


def _geometry_array(xp: ArrayModule, geom: Geometry) -> Array:
    values = [getattr(a, name) for _, name in _GEOMETRY_FIELDS for a in geom.axes]
    return xp.asarray(np.array(values, dtype=np.int32))


def _contiguous(xp: ArrayModule, a: Array) -> Array:
    return xp.ascontiguousarray(a, dtype=xp.float32)


def _launch(kern: Any, total: int, args: tuple[Any, ...]) -> None:
    if total > 0:
        blocks = (total + THREADS - 1) // THREADS
        kern((blocks,), (THREADS,), (*args, np.int64(total)))


def forward(xp: ArrayModule, x: Array, kernel: Array, geom: Geometry) -> Array:
    """``x`` (N, C, *in) -> (N, F, *out), no bias."""
    x, kernel = _contiguous(xp, x), _contiguous(xp, kernel)
    n, c = x.shape[:2]
    f = kernel.shape[3]
    y = xp.empty((n, f) + geom.out_shape, dtype=xp.float32)
    total = n * int(np.prod(geom.out_shape))
    _launch(_kernel(xp, "conv3dt_forward", f, c), total, (x, kernel, y, _geometry_array(xp, geom)))
    return y


def backward_input(xp: ArrayModule, dy: Array, kernel: Array, geom: Geometry) -> Array:
    """``dy`` (N, F, *out) -> (N, C, *in)."""
    dy, kernel = _contiguous(xp, dy), _contiguous(xp, kernel)
    n, f = dy.shape[:2]
    c = kernel.shape[4]
    in_shape = tuple(a.in_len for a in geom.axes)
    dx = xp.empty((n, c) + in_shape, dtype=xp.float32)
    total = n * int(np.prod(in_shape))
    kern = _kernel(xp, "conv3dt_backward_input", f, c)
    _launch(kern, total, (dy, kernel, dx, _geometry_array(xp, geom)))
    return dx


ELEMENTS_PER_THREAD = 32  # (sample, input voxel) pairs each kernel-gradient thread sums, at least
MAX_CHUNKS = 2048  # beyond this, chunks grow instead: the partial sums stay small


def kernel_grad_grid(total: int, taps: int, nf: int, nc: int) -> tuple[tuple[int, int, int], int]:
    """Grid ``(chunks, taps, channel tiles)`` and chunk length of the kernel-gradient launch for
    ``total`` (sample, input voxel) pairs. Depends on the shapes only: the summation order, hence
    the result, is the same on every run."""
    chunk = max(THREADS * ELEMENTS_PER_THREAD, -(-total // MAX_CHUNKS))
    chunks = max(1, -(-total // chunk))
    tiles = -(-nc // channel_tile(nf, nc))
    return (chunks, taps, tiles), chunk


def backward_kernel(
    xp: ArrayModule, x: Array, dy: Array, geom: Geometry, kernel_shape: tuple[int, ...]
) -> Array:
    """Kernel gradient (Keras layout), summed over the batch; deterministic: per-chunk block sums
    in a fixed tree, then the chunks added in order."""
    x, dy = _contiguous(xp, x), _contiguous(xp, dy)
    taps = int(np.prod(kernel_shape[:3]))
    f, c = kernel_shape[3], kernel_shape[4]
    total = x.shape[0] * int(np.prod(x.shape[2:]))
    if total == 0:
        return xp.zeros(kernel_shape, dtype=xp.float32)
    grid, chunk = kernel_grad_grid(total, taps, f, c)
    partial = xp.empty((grid[0], taps, f, c), dtype=xp.float32)
    kern = _kernel(xp, "conv3dt_backward_kernel", f, c)
    g = _geometry_array(xp, geom)
    kern(grid, (THREADS,), (x, dy, partial, g, np.int64(x.shape[0]), np.int64(chunk)))
    return partial.sum(axis=0).reshape(kernel_shape)


# ----------------------------------------------------------------------------- optimizer update

_UPDATE = r"""
extern "C" __global__ void NAME(
    const unsigned long long* __restrict__ ptrs, const long long* __restrict__ starts,
    int n_tensors, const float* __restrict__ k, long long total)
{
    // One launch updates every element of every tensor: element idx belongs to tensor t with
    // starts[t] <= idx < starts[t + 1]; ptrs[t * NP + ...] are its weight, gradient and slots.
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    int t = 0;
    while (t + 1 < n_tensors && idx >= starts[t + 1]) ++t;
    long long i = idx - starts[t];
    const unsigned long long* p = ptrs + (long long)t * NP;
CONSTANTS
    float w = ((float*)p[0])[i];
    const float g = ((const float*)p[1])[i];
LOAD
RULE
    ((float*)p[0])[i] = w;
STORE
}
"""


def update_source(name: str, rule: str, slots: tuple[str, ...], constants: tuple[str, ...]) -> str:
    """CUDA source of a fused optimizer update named ``name``: ``rule`` is C statements updating
    the floats ``w`` and the slot variables ``slots`` from ``g`` and the named ``constants``."""
    src = _UPDATE.replace("NAME", name)
    src = src.replace(
        "CONSTANTS", "".join(f"    const float {c} = k[{i}];\n" for i, c in enumerate(constants))
    )
    src = src.replace(
        "LOAD", "".join(f"    float {s} = ((float*)p[{2 + i}])[i];\n" for i, s in enumerate(slots))
    )
    src = src.replace(
        "STORE", "".join(f"    ((float*)p[{2 + i}])[i] = {s};\n" for i, s in enumerate(slots))
    )
    return f"#define NP {2 + len(slots)}\n" + src.replace("RULE", rule)


def update_tables(
    tensors: Sequence[Sequence[Any]], ptr: Callable[[Any], int]
) -> tuple[np.ndarray, np.ndarray, int]:
    """Pointer table (tensors x NP, uint64), element starts (tensors + 1, int64) and element count
    for ``tensors``, a list of (weight, gradient, *slots); ``ptr`` gives an array's address."""
    ptrs = np.array([[ptr(a) for a in group] for group in tensors], dtype=np.uint64)
    sizes = [int(group[0].size) for group in tensors]
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return ptrs, starts, int(starts[-1])


def fused_update(
    xp: ArrayModule,
    name: str,
    rule: str,
    slots: Sequence[str],
    constants: dict[str, float],
    tensors: Sequence[Sequence[Array]],
) -> None:
    """Apply an optimizer rule to every (weight, gradient, *slots) group of ``tensors`` in one
    kernel launch. Weights and slots are updated in place and must be contiguous float32."""
    for group in tensors:
        for a in (group[0], *group[2:]):
            if a.dtype != np.float32 or not a.flags.c_contiguous:
                raise ValueError("fused update needs contiguous float32 weights and slots")
    # Gradients may be views or another dtype: contiguous float32 copies, kept alive in `groups`
    # until the launch is queued (CuPy frees device memory in stream order).
    groups = [(g[0], _contiguous(xp, g[1]), *g[2:]) for g in tensors]
    names = tuple(constants)
    key = ("update", name, rule, tuple(slots), names)
    if key not in _CACHE:
        _CACHE[key] = xp.RawKernel(update_source(name, rule, tuple(slots), names), name)
    ptrs, starts, total = update_tables(groups, lambda a: a.data.ptr)
    k = np.array([constants[c] for c in names], dtype=np.float32)
    if total > 0:
        blocks = (total + THREADS - 1) // THREADS
        args = (xp.asarray(ptrs), xp.asarray(starts), np.int32(len(groups)), xp.asarray(k))
        _CACHE[key]((blocks,), (THREADS,), (*args, np.int64(total)))
