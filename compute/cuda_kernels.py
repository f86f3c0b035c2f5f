"""CUDA kernels (CuPy ``RawKernel``) for the transposed 3-D convolution on the ``cupy`` backend.

CuPy is never imported here: the caller passes the array module ``xp`` (the backend's, see
:mod:`compute.backend`) and kernels are built with ``xp.RawKernel``. Each kernel is compiled once
per (filters, channels), which are compile-time constants so the per-thread accumulators live in
registers.

- forward: a gather, one thread per output voxel computing all filters; no atomics.
- input gradient: a gather, one thread per input voxel computing all channels; no atomics.
- kernel gradient: one block per (tap, filter, channel) sums its products in a fixed order and a
  fixed tree: deterministic.

Semantics as in :mod:`compute.conv3d_transpose_ops`: output position ``o`` of an axis is the full
position ``p = o + crop``; input ``i`` and tap ``j`` meet there when ``p = i*stride + j*dilation``.
Layouts: data (N, C, D, H, W) contiguous, kernel Keras (kd, kh, kw, F, C) contiguous.
"""

from __future__ import annotations

import numpy as np

THREADS = 256  # threads per block
_CACHE: dict[tuple[str, int, int], object] = {}

_COMMON = r"""
#define I0 g[0]
#define I1 g[1]
#define I2 g[2]
#define O0 g[3]
#define O1 g[4]
#define O2 g[5]
#define K0 g[6]
#define K1 g[7]
#define K2 g[8]
#define S0 g[9]
#define S1 g[10]
#define S2 g[11]
#define D0 g[12]
#define D1 g[13]
#define D2 g[14]
#define P0 g[15]
#define P1 g[16]
#define P2 g[17]
"""

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
    const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dk,
    const int* __restrict__ g, long long n_samples)
{
    // Block b handles kernel entry b = ((tap * NF) + f) * NC + c (Keras layout, flat).
    __shared__ float part[THREADS];
    int b = blockIdx.x;
    int c = b % NC;
    int f = (b / NC) % NF;
    int tap = b / (NC * NF);
    int j2 = tap % K2;
    int j1 = (tap / K2) % K1;
    int j0 = tap / (K2 * K1);
    long long in_vol = (long long)I0 * I1 * I2;
    long long out_vol = (long long)O0 * O1 * O2;
    long long total = n_samples * in_vol;
    float s = 0.0f;
    for (long long e = threadIdx.x; e < total; e += THREADS) {
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
        float xv = x[(n * NC + c) * in_vol + ((long long)i0 * I1 + i1) * I2 + i2];
        float gv = dy[(n * NF + f) * out_vol + ((long long)o0 * O1 + o1) * O2 + o2];
        s += xv * gv;
    }
    part[threadIdx.x] = s;
    __syncthreads();
    for (int half = THREADS / 2; half > 0; half >>= 1) {
        if (threadIdx.x < half) part[threadIdx.x] += part[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) dk[b] = part[0];
}
"""

_SOURCES = {
    "conv3dt_forward": _FORWARD,
    "conv3dt_backward_input": _BACKWARD_INPUT,
    "conv3dt_backward_kernel": _BACKWARD_KERNEL,
}


def _kernel(xp, name: str, nf: int, nc: int):
    key = (name, nf, nc)
    if key not in _CACHE:
        src = f"#define NF {nf}\n#define NC {nc}\n#define THREADS {THREADS}\n"
        _CACHE[key] = xp.RawKernel(src + _COMMON + _SOURCES[name], name)
    return _CACHE[key]


def _geometry_array(xp, geom):
    a = geom.axes
    values = [x.in_len for x in a] + [x.out_len for x in a] + [x.size for x in a]
    values += [x.stride for x in a] + [x.dilation for x in a] + [x.crop_start for x in a]
    return xp.asarray(np.array(values, dtype=np.int32))


def _contiguous(xp, a):
    return xp.ascontiguousarray(a, dtype=xp.float32)


def _launch(kern, total: int, args) -> None:
    if total > 0:
        blocks = (total + THREADS - 1) // THREADS
        kern((blocks,), (THREADS,), (*args, np.int64(total)))


def forward(xp, x, kernel, geom):
    """``x`` (N, C, *in) -> (N, F, *out), no bias."""
    x, kernel = _contiguous(xp, x), _contiguous(xp, kernel)
    n, c = x.shape[:2]
    f = kernel.shape[3]
    y = xp.empty((n, f) + geom.out_shape, dtype=xp.float32)
    total = n * int(np.prod(geom.out_shape))
    _launch(_kernel(xp, "conv3dt_forward", f, c), total, (x, kernel, y, _geometry_array(xp, geom)))
    return y


def backward_input(xp, dy, kernel, geom):
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


def backward_kernel(xp, x, dy, geom, kernel_shape):
    """Kernel gradient (Keras layout), summed over the batch; deterministic."""
    x, dy = _contiguous(xp, x), _contiguous(xp, dy)
    f, c = kernel_shape[3], kernel_shape[4]
    dk = xp.zeros(kernel_shape, dtype=xp.float32)
    blocks = int(np.prod(kernel_shape))
    if x.shape[0] > 0:
        kern = _kernel(xp, "conv3dt_backward_kernel", f, c)
        kern((blocks,), (THREADS,), (x, dy, dk, _geometry_array(xp, geom), np.int64(x.shape[0])))
    return dk
