"""Transposed 3-D convolution maths, backend-generic (NumPy or CuPy array module ``xp``).

Layout inside this module: data channels-first ``(N, C, D, H, W)``; kernel in Keras layout
``(kd, kh, kw, n_filters, in_channels)``.

Semantics (Keras 3): the *full* transposed convolution scatters ``x[i] * w[j]`` to output position
``i*stride + j*dilation`` (length ``L = (in-1)*stride + k_eff`` per axis, ``k_eff = dilation*(size-1)+1``);
the layer's output is a window of it that starts at ``crop_start`` and is ``out`` long, zero beyond ``L``.

Three paths, chosen by the array module, numerically equal within float32 rounding:

- NumPy with Numba (:mod:`compute.cpu_kernels`): the sub-pixel (phase) decomposition of a
  :class:`PhasePlan`, per-sample planes, taps skipped where they miss the input; the fast CPU path.
  Its forward runs by Winograd tiles, by filter vectors or by rows (:class:`RowPlan`) where
  that multiplies less (:func:`forward_path`).
- CuPy (:mod:`compute.cuda_kernels`): gather kernels, one thread per output or input voxel.
- Any array module otherwise (the ``_flat_*`` functions, also the tests' reference): "flat offset":
  each sample's input is placed on the output grid (flattened), so every kernel tap is one constant
  flat offset; a tap contributes ``W_tap @ x_grid`` added at that offset. Work is chunked over
  samples so memory stays bounded by about one output's size (never the whole batch times the
  kernel volume, as im2col would need).
"""

from __future__ import annotations

import itertools
import math
import operator
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType

import numpy as np

from . import cuda_kernels
from .backend import Array, ArrayModule

# Independent partial sums of the kernel gradient (fixed, so results do not depend on threads).
KERNEL_GRAD_CHUNKS = 8
# Upper bound, in bytes, of one chunk's temporaries; chunks are at least one sample.
CHUNK_BYTES = 4 * 2**20
# Small allocations of any call (plan arrays, tap lists, thread-pool bookkeeping), bounded.
_FIXED_BYTES = 256 * 2**10
# Floats in one vector of the compiled kernels (compute.simd.LANES, not imported here: importing
# compute.simd loads Numba).
LANES = 16


@dataclass(frozen=True)
class AxisGeometry:
    """Geometry of one spatial axis."""

    in_len: int
    size: int
    stride: int
    dilation: int
    k_eff: int
    full_len: int  # (in-1)*stride + k_eff
    crop_start: int
    out_len: int
    grid_len: int  # max(full_len, crop_start + out_len): the full result plus zero padding


def axis_geometry(
    in_len: int, size: int, stride: int, dilation: int, same: bool, output_padding: int | None
) -> AxisGeometry:
    """Keras 3 output length and crop of one axis (see the module docstring)."""
    k_eff = dilation * (size - 1) + 1
    full_len = (in_len - 1) * stride + k_eff
    if output_padding is None:
        if same:
            out_len = in_len * stride
            pad_len = stride + k_eff - 2
        else:
            out_len = (in_len - 1) * stride + max(k_eff, stride)
            pad_len = None
    else:
        if same:
            pad_len = k_eff + k_eff % 2 - 2 + output_padding
            out_len = (in_len - 1) * stride + k_eff % 2 + output_padding
        else:
            pad_len = None
            out_len = full_len + output_padding
    if pad_len is None:
        crop_start = 0
    else:
        left = min(pad_len // 2 + pad_len % 2, k_eff - 1)
        crop_start = k_eff - 1 - left
    grid_len = max(full_len, crop_start + out_len)
    return AxisGeometry(
        in_len, size, stride, dilation, k_eff, full_len, crop_start, out_len, grid_len
    )


@dataclass(frozen=True)
class Geometry:
    """The three spatial axes, plus flat-grid helpers."""

    axes: tuple[AxisGeometry, AxisGeometry, AxisGeometry]

    @classmethod
    def of(
        cls,
        spatial_in: Sequence[int],
        size: Sequence[int],
        stride: Sequence[int],
        dilation: Sequence[int],
        same: bool,
        output_padding: Sequence[int | None] | None = None,
    ) -> Geometry:
        # Python ints and a bool as the remembered geometry's key and fields: equal keys of other
        # types (2.0, np.int64(2)) would hand their types to every later caller
        op = (None, None, None) if output_padding is None else _ints(output_padding)
        spatial = tuple(int(n) for n in spatial_in)
        return _geometry(spatial, _ints(size), _ints(stride), _ints(dilation), bool(same), op)

    @property
    def out_shape(self) -> tuple[int, int, int]:
        a0, a1, a2 = self.axes
        return a0.out_len, a1.out_len, a2.out_len

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        a0, a1, a2 = self.axes
        return a0.grid_len, a1.grid_len, a2.grid_len

    @property
    def grid_size(self) -> int:
        g = self.grid_shape
        return g[0] * g[1] * g[2]

    def grid_strides(self) -> tuple[int, int, int]:
        g = self.grid_shape
        return (g[1] * g[2], g[2], 1)

    def span(self) -> int:
        """Flat length from the first to the last input position on the grid, inclusive."""
        st = self.grid_strides()
        return 1 + sum((a.in_len - 1) * a.stride * s for a, s in zip(self.axes, st))

    def taps(self) -> Iterator[tuple[tuple[int, int, int], int]]:
        """(kd, kh, kw) index and flat offset of every kernel tap."""
        st = self.grid_strides()
        a0, a1, a2 = self.axes
        for i in range(a0.size):
            for j in range(a1.size):
                for k in range(a2.size):
                    off = (
                        i * a0.dilation * st[0] + j * a1.dilation * st[1] + k * a2.dilation * st[2]
                    )
                    yield (i, j, k), off

    def input_slices(self) -> tuple[slice, ...]:
        """Where the input samples sit on the grid."""
        return tuple(slice(0, (a.in_len - 1) * a.stride + 1, a.stride) for a in self.axes)

    def output_slices(self) -> tuple[slice, ...]:
        """Where the layer's output window sits on the grid."""
        return tuple(slice(a.crop_start, a.crop_start + a.out_len) for a in self.axes)


def _ints(values: Sequence[int | None]) -> tuple[int | None, ...]:
    """``values`` as Python ints (``None`` kept); a float is refused (TypeError), not rounded."""
    return tuple(None if v is None else operator.index(v) for v in values)


@lru_cache(maxsize=256)
def _geometry(
    spatial: tuple[int, ...],
    size: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    same: bool,
    op: tuple[int | None, ...],
) -> Geometry:
    """:meth:`Geometry.of`, remembered: every call of a layer asks for its geometry a few times
    (shape checks, the memory guard, the kernels)."""
    a0, a1, a2 = (
        axis_geometry(n, k, s, d, same, p)
        for n, k, s, d, p in zip(spatial, size, stride, dilation, op)
    )
    return Geometry((a0, a1, a2))


def _chunk(n: int, per_sample_bytes: int) -> int:
    return max(1, min(n, CHUNK_BYTES // max(per_sample_bytes, 1)))


def _embed(xp: ArrayModule, x: Array, geom: Geometry, where: tuple[slice, ...]) -> Array:
    """Place ``x`` (n, c, *spatial) on zero grids (n, c, *grid) at ``where`` slices; flat view."""
    n, c = x.shape[:2]
    grid = xp.zeros((n, c) + geom.grid_shape, dtype=x.dtype)
    grid[(slice(None), slice(None)) + where] = x
    return grid.reshape(n, c, geom.grid_size)


def _flat_forward(
    xp: ArrayModule, x: Array, kernel: Array, geom: Geometry, y: Array | None = None
) -> Array:
    """Array-module path of :func:`forward` (NumPy without Numba; the tests' reference), into
    ``y`` (any layout) when given."""
    n = x.shape[0]
    f = kernel.shape[3]
    if y is None:
        y = xp.empty((n, f) + geom.out_shape, dtype=x.dtype)
    span = geom.span()
    taps = list(geom.taps())
    step = _chunk(n, 4 * geom.grid_size * (x.shape[1] + 2 * f))
    for s0 in range(0, n, step):
        xs = _embed(xp, x[s0 : s0 + step], geom, geom.input_slices())[:, :, :span]
        yf = xp.zeros((xs.shape[0], f, geom.grid_size), dtype=x.dtype)
        for (i, j, k), off in taps:
            yf[:, :, off : off + span] += xp.matmul(kernel[i, j, k], xs)
        yf = yf.reshape((xs.shape[0], f) + geom.grid_shape)
        y[s0 : s0 + step] = yf[(slice(None), slice(None)) + geom.output_slices()]
    return y


def _flat_backward_input(xp: ArrayModule, dy: Array, kernel: Array, geom: Geometry) -> Array:
    """Array-module path of :func:`backward_input`."""
    n = dy.shape[0]
    c = kernel.shape[4]
    in_shape = tuple(a.in_len for a in geom.axes)
    dx = xp.empty((n, c) + in_shape, dtype=dy.dtype)
    span = geom.span()
    taps = list(geom.taps())
    step = _chunk(n, 4 * geom.grid_size * (dy.shape[1] + 2 * c))
    for s0 in range(0, n, step):
        g = _embed(xp, dy[s0 : s0 + step], geom, geom.output_slices())
        acc = xp.zeros((g.shape[0], c, geom.grid_size), dtype=dy.dtype)
        for (i, j, k), off in taps:
            acc[:, :, :span] += xp.matmul(kernel[i, j, k].T, g[:, :, off : off + span])
        acc = acc.reshape((g.shape[0], c) + geom.grid_shape)
        dx[s0 : s0 + step] = acc[(slice(None), slice(None)) + geom.input_slices()]
    return dx


def _flat_backward_kernel(
    xp: ArrayModule, x: Array, dy: Array, geom: Geometry, kernel_shape: tuple[int, ...]
) -> Array:
    """Array-module path of :func:`backward_kernel`."""
    n = x.shape[0]
    dk = xp.zeros(kernel_shape, dtype=x.dtype)
    span = geom.span()
    taps = list(geom.taps())
    step = _chunk(n, 4 * geom.grid_size * (x.shape[1] + dy.shape[1]))
    for s0 in range(0, n, step):
        xs = _embed(xp, x[s0 : s0 + step], geom, geom.input_slices())[:, :, :span]
        g = _embed(xp, dy[s0 : s0 + step], geom, geom.output_slices())
        xt = xs.transpose(0, 2, 1)
        for (i, j, k), off in taps:
            # one (F, span) @ (span, C) product per sample: no copy of the shifted segment
            dk[i, j, k] += xp.matmul(g[:, :, off : off + span], xt).sum(axis=0)
    return dk


# ----------------------------------------------------------------------------- phase plan

# Columns of PhasePlan.dims and PhasePlan.ph, axes in plan order (what each holds:
# :mod:`compute.cpu_kernels`, which reads them). A per-axis triple takes consecutive columns. The
# compiled kernels hold these values as constants, and Numba's disk cache does not notice a change
# made here: edit cpu_kernels.py with them (any change there recompiles it).
D_C, D_F = 0, 1
D_IN0, D_IN1, D_IN2 = 2, 3, 4
D_OUT0, D_OUT1, D_OUT2 = 5, 6, 7
D_G2, D_PLANE, D_LEAD = 8, 9, 10
D_S0, D_S1, D_S2 = 11, 12, 13
D_XQ, D_M0 = 14, 15
DIMS_LEN = 16
PH_FIRST, PH_COUNT = 0, 1
PH_R0, PH_R1, PH_R2 = 2, 3, 4
PH_MLO0, PH_MLO1, PH_MLO2 = 5, 6, 7
PH_N0, PH_N1, PH_N2 = 8, 9, 10
PH_LEN = 11


@dataclass(frozen=True)
class PhasePlan:
    """Sub-pixel decomposition of a geometry for the compiled kernels (see
    :mod:`compute.cpu_kernels` for the meaning of each array).

    Phase ``r`` (one residue per axis) holds the output positions ``stride*m + r``; its taps are
    those with ``(j*dilation) % stride == r``, each at offset ``(j*dilation - r) // stride`` of a
    dense stride-1 problem. The spatial axes are reordered by ``perm`` so that the axis whose
    padding would waste most work is the outer one, handled by explicit loops that skip taps
    falling outside the input; the two inner axes form one flat plane."""

    perm: tuple[int, int, int]
    dims: np.ndarray
    crop: np.ndarray
    ph: np.ndarray
    qlo: np.ndarray
    qlen: np.ndarray
    toff: np.ndarray  # flat in-plane offset of each tap
    tout: np.ndarray  # outer-axis offset of each tap
    tph: np.ndarray  # phase of each tap
    kidx: np.ndarray  # flat kernel tap (kd, kh, kw) of each plan tap


# One residue of one axis: its taps [(j, offset)], first phase index m, count of output positions.
_AxisPhase = tuple[list[tuple[int, int]], int, int]


def _axis_phases(a: AxisGeometry) -> list[_AxisPhase]:
    """The :data:`_AxisPhase` of each residue ``r``."""
    out = []
    for r in range(a.stride):
        taps = [
            (j, (j * a.dilation - r) // a.stride)
            for j in range(a.size)
            if (j * a.dilation) % a.stride == r
        ]
        mlo = -((r - a.crop_start) // a.stride)
        mhi = (a.crop_start + a.out_len - 1 - r) // a.stride
        out.append((taps, mlo, max(0, mhi - mlo + 1)))
    return out


def _grid_len(a: AxisGeometry, phases: list[_AxisPhase]) -> int:
    """Phase-grid length of one axis: room for the input plus the largest tap offset (so flat
    offsets never wrap into the next row) and for every output position."""
    tmax = max(t for taps, _, _ in phases for _, t in taps)
    top = max((mlo + cnt for _, mlo, cnt in phases if cnt), default=1)
    return max(a.in_len + tmax, top, 1)


def working_bytes(geom: Geometry, c: int, f: int, training: bool = False) -> int:
    """An upper bound of the bytes the compiled kernels allocate beside their inputs and outputs
    (per-thread padded planes, scratch, float64 kernel-gradient sums), from the geometry alone,
    in Python integers (no overflow, no enumeration of taps). A huge dilation makes the padded
    planes huge even when the output is small: the memory guard adds this to its estimates.
    When the sub-pixel GEMM runs the layer (:func:`use_gemm`), its own bound."""
    if use_gemm(geom, c, f):
        from . import conv3d_transpose_gemm as gemm

        return gemm.working_bytes(geom, c, f, training)
    per_thread = _thread_floats(geom, c, f, training)
    threads = _cpu().THREADS if _path(np) != "flat" else 1
    taps = math.prod(a.size for a in geom.axes) * f * c
    # tap weights (and their transpose), tap lists, plan arrays and Python's own bookkeeping
    fixed = _FIXED_BYTES + 3 * 4 * taps + 16 * threads * math.prod(a.size for a in geom.axes)
    # the kernel gradient's float64 partial sums, their total and the float32 result
    kernel_sums = 8 * (KERNEL_GRAD_CHUNKS + 1) * taps + 2 * 4 * taps
    total = fixed + 4 * threads * per_thread + (kernel_sums if training else 0)
    if _path(np) == "flat":  # the array-module path: sample chunks of the flat grid
        total += 2 * max(CHUNK_BYTES, 4 * geom.grid_size * 2 * (c + f))
    return total


@lru_cache(maxsize=256)
def _thread_floats(geom: Geometry, c: int, f: int, training: bool) -> int:
    """An upper bound of the floats one thread of the compiled kernels allocates (for
    :func:`working_bytes`): the largest of the forward's paths and, in training, of the
    gradients' too."""
    grids, outs = [], []
    for a in geom.axes:
        tmax = ((a.size - 1) * a.dilation) // a.stride  # the largest tap offset of any phase
        top = -(-(a.crop_start + a.out_len) // a.stride) + 1  # the last output position, + 1
        grids.append(max(a.in_len + tmax, top, 1))
        outs.append(-(-a.out_len // a.stride) + 1)
    order = sorted(range(3), key=lambda i: grids[i])
    plane = grids[order[1]] * grids[order[2]]  # the two inner axes (at most the largest two)
    in0 = max(a.in_len for a in geom.axes)
    slack = _cpu().VECTOR  # the kernel gradient's planes: whole vectors past each row
    tile = _cpu().TILE  # the forward tiles: rows rounded up to a tile, a tile of slack after
    lanes = max(c, channel_lanes(c))  # the channels-last kernel gradient's rounded channels
    input_planes = in0 * lanes * (2 * plane + slack) + 2 * tile  # xe: (i0, C, lead + plane)
    phases = math.prod(a.stride for a in geom.axes)
    scratch = max(outs) * f * (max(outs) * grids[order[2]] + tile)  # forward: (n0, F, qlen)
    per_thread = max(input_planes + scratch, _row_floats(geom, c, f))
    if filters_apply(geom, f):
        per_thread = max(per_thread, _filter_floats(geom, c))
    if winograd_applies(geom, f):
        per_thread = max(per_thread, _winograd_floats(geom, c))
    if training:  # the backward's, after the forward's
        output_planes = phases * max(outs) * f * (2 * plane + slack) + 2 * tile  # dye
        per_thread = max(per_thread, input_planes + output_planes + in0 * c * (plane + tile))
        if filter_gradient_applies(geom, f):
            per_thread = max(per_thread, _filter_grad_floats(geom, f))
        dual = input_gradient_geometry(geom)
        if dual is not None and winograd_applies(dual, c):
            per_thread = max(per_thread, _winograd_floats(dual, f))
    return per_thread


def _row_floats(geom: Geometry, c: int, f: int) -> int:
    """An upper bound of the floats one thread of :func:`compute.cpu_kernels.row_forward`
    allocates (the sample's rows, two sets of partial rows, a row of scratch), from the
    geometry's lengths alone: no enumeration of residues (a stride of a million is refused by
    the memory guard, not enumerated)."""
    lanes = LANES
    row = _row_axis(geom)
    a = geom.axes[row]
    packed, ln = _row_packing(a.in_len)
    others = [b.in_len for i, b in enumerate(geom.axes) if i != row]
    rows = others[0] * (others[1] + 2 * packed) * c * ln
    tmax = ((a.size - 1) * a.dilation) // a.stride  # a residue's largest tap offset
    # pad <= tmax; the furthest load: the last output's phase index + a vector + 1 (t >= -1)
    rl = tmax + (a.crop_start + a.out_len) // a.stride + 2 + ln + 2 * lanes
    parts = 2 * 8 * -(-f // 8) * a.size * packed * rl
    return rows + parts + f * (rl + lanes) + 3 * lanes


def filters_apply(geom: Geometry, f: int) -> bool:
    """Whether the forward by filter vectors (:func:`compute.cpu_kernels.filter_forward`) can
    run ``geom`` with ``f`` filters: whole vectors of filters, and along the last axis stride 1,
    3 taps, dilation 1 and an output inside the full result (its tile holds 16 input positions'
    18 output positions): the kernel gradient's condition, and no output padding past it."""
    a = geom.axes[2]
    return filter_gradient_applies(geom, f) and a.crop_start + a.out_len <= a.full_len


def _filter_waste(geom: Geometry) -> float:
    """Multiply-adds the forward by filter vectors computes per useful one: the lanes past the
    last axis's input length in its last vector."""
    n = geom.axes[2].in_len
    return LANES * -(-n // LANES) / n


def _filter_floats(geom: Geometry, c: int) -> int:
    """The floats one thread of :func:`compute.cpu_kernels.filter_forward` allocates: the
    sample's rows in whole vectors, two carried vectors and a vector of scratch."""
    i0, i1, i2 = (a.in_len for a in geom.axes)
    return i0 * i1 * c * LANES * -(-i2 // LANES) + 4 * LANES


def filter_dims(geom: Geometry, c: int, f: int) -> np.ndarray:
    """The dims of the forward by filter vectors (columns ``V_*``)."""
    a0, a1, a2 = geom.axes
    dims = [0] * FILTER_DIMS_LEN
    dims[V_C], dims[V_F] = c, f
    dims[V_IN0], dims[V_IN1], dims[V_IN2] = a0.in_len, a1.in_len, a2.in_len
    dims[V_OUT0], dims[V_OUT1], dims[V_OUT2] = a0.out_len, a1.out_len, a2.out_len
    dims[V_K0], dims[V_K1], dims[V_S0], dims[V_S1] = a0.size, a1.size, a0.stride, a1.stride
    dims[V_D0], dims[V_D1] = a0.dilation, a1.dilation
    dims[V_CROP0], dims[V_CROP1], dims[V_CROP2] = a0.crop_start, a1.crop_start, a2.crop_start
    return np.array(dims, np.int64)


def winograd_applies(geom: Geometry, f: int) -> bool:
    """Whether the forward by Winograd tiles (:func:`compute.cpu_kernels.winograd_forward`)
    can run ``geom`` with ``f`` filters: where the forward by filter vectors can, with 3 taps,
    stride 1 and dilation 1 on axes 0 and 1 too and their output inside the full result."""
    return filters_apply(geom, f) and all(
        (a.size, a.stride, a.dilation) == (3, 1, 1) and a.crop_start + a.out_len <= a.full_len
        for a in geom.axes[:2]
    )


def _winograd_tiles(a: AxisGeometry) -> int:
    """The Winograd tiles (2 full positions each) that hold axis ``a``'s output."""
    return (a.crop_start + a.out_len - 1) // 2 - a.crop_start // 2 + 1


def _taps_hit(a: AxisGeometry) -> int:
    """The (output position, tap) pairs of a stride-1, dilation-1 axis whose tap reads an input
    position: ``sum_u |[crop, crop + out) ∩ [u, u + in)|``, no enumeration."""
    lo, hi = a.crop_start, a.crop_start + a.out_len
    return sum(max(0, min(hi, u + a.in_len) - max(lo, u)) for u in range(a.size))


# The Winograd forward's costs, in multiply-adds of 16-float vectors (one a cycle; measured on
# 3x3x3 layers of 1-64 channels, 4^3 to 32^3, one core): its input transform per transformed
# row vector, its output transform and writes per tile, filter group and row vector, and the
# rest of a row pass (call, sums stored) per row vector; the filter-vector forward's output pass
# per output row vector and the rest of a row pass.
_WINOGRAD_INPUT = 4
_WINOGRAD_OUTPUT = 1500
_WINOGRAD_PASS = 24
_FILTER_ROW_WRITE = 240
_FILTER_PASS = 8


def winograd_gain(geom: Geometry, c: int, f: int) -> float:
    """Estimated time of the forward by Winograd tiles over that of the forward by filter
    vectors: 16 row passes per tile (2 x 2 output rows) and its transforms, against the filter
    vectors' row passes (one per tap pair reaching the input) and their output pass."""
    a0, a1, a2 = geom.axes
    nb, groups = -(-a2.in_len // LANES), f // LANES
    tiles = _winograd_tiles(a0) * _winograd_tiles(a1)
    per_tile = 16 * c * nb * _WINOGRAD_INPUT
    per_tile += groups * nb * (16 * (48 * c + _WINOGRAD_PASS) + _WINOGRAD_OUTPUT)
    passes = _taps_hit(a0) * _taps_hit(a1)
    rows = a0.out_len * a1.out_len
    filters = groups * nb * (passes * (48 * c + _FILTER_PASS) + rows * _FILTER_ROW_WRITE)
    return tiles * per_tile / max(filters, 1)


def _winograd_floats(geom: Geometry, c: int) -> int:
    """The floats one thread of :func:`compute.cpu_kernels.winograd_forward` allocates: the
    sample's padded rows, the transformed rows V, M's 16 rows and the output block's 4."""
    a0, a1, a2 = geom.axes
    rw = LANES * -(-a2.in_len // LANES)
    s1 = c * rw + LANES
    rows = [max(2 * _winograd_tiles(a) + a.crop_start // 2 * 2 + 2, a.in_len + 2) for a in (a0, a1)]
    s0 = rows[1] * s1 + LANES
    planes = rows[0]
    return planes * s0 + LANES + 16 * s1 + LANES + (16 * (rw + 2) + 4 * (rw + LANES) + 2) * LANES


def _row_packing(n: int) -> tuple[int, int]:
    """``(rows per vector, floats per row)`` of input rows ``n`` long: rows of 8 or fewer are
    packed several to a vector (rows of 8: two), longer ones padded to whole vectors."""
    if n <= LANES // 2:
        return LANES // n, n
    return 1, LANES * -(-n // LANES)


def _lane_fill(n: int) -> float:
    """The share of a tile's lanes that input rows ``n`` long fill (:func:`_row_packing`)."""
    packed, ln = _row_packing(n)
    return n * packed / (LANES * -(-ln * packed // LANES))


def _row_axis(geom: Geometry) -> int:
    """The row axis of :func:`row_plan`: the one whose rows fill a tile's lanes best (the last
    one among equals)."""
    return max(range(3), key=lambda i: (_lane_fill(geom.axes[i].in_len), i))


@lru_cache(maxsize=64)
def phase_plan(geom: Geometry, c: int, f: int) -> PhasePlan:
    """The :class:`PhasePlan` of ``geom`` for ``c`` input channels and ``f`` filters."""
    per_axis = [_axis_phases(a) for a in geom.axes]
    grid = [_grid_len(a, ph) for a, ph in zip(geom.axes, per_axis)]
    waste = [g / a.in_len for g, a in zip(grid, geom.axes)]
    outer = max(range(3), key=lambda i: (waste[i], -i))
    inner = [i for i in range(3) if i != outer]
    perm = (outer, inner[0], inner[1])
    axes = [geom.axes[i] for i in perm]
    per_axis = [per_axis[i] for i in perm]
    g2 = grid[perm[2]]
    plane = grid[perm[1]] * g2
    ks = [a.size for a in geom.axes]
    ph: list[list[int]] = []
    qlo: list[int] = []
    qlen: list[int] = []
    toff: list[int] = []
    tout: list[int] = []
    tph: list[int] = []
    kidx: list[int] = []
    residues = itertools.product(*(range(a.stride) for a in axes))
    for p, (r, entries) in enumerate(zip(residues, itertools.product(*per_axis))):
        counts = [e[2] for e in entries]
        mlo = [e[1] for e in entries]
        first = len(toff)
        if min(counts) > 0:
            # the outer axis's taps innermost: consecutive taps share their in-plane offset, so
            # the kernel gradient's groups of taps cover nearly the same positions
            taps = itertools.product(entries[1][0], entries[2][0], entries[0][0])
            for (j1, t1), (j2, t2), (j0, t0) in taps:
                toff.append(t1 * g2 + t2)
                tout.append(t0)
                tph.append(p)
                j = [0, 0, 0]
                j[perm[0]], j[perm[1]], j[perm[2]] = j0, j1, j2
                kidx.append((j[0] * ks[1] + j[1]) * ks[2] + j[2])
        row = [0] * PH_LEN
        row[PH_FIRST], row[PH_COUNT] = first, len(toff) - first
        row[PH_R0 : PH_R0 + 3], row[PH_MLO0 : PH_MLO0 + 3] = r, mlo
        row[PH_N0 : PH_N0 + 3] = counts
        ph.append(row)
        lo = mlo[1] * g2 + mlo[2]
        qlo.append(lo)
        qlen.append((mlo[1] + counts[1] - 1) * g2 + mlo[2] + counts[2] - lo if min(counts) else 0)
    ins = [a.in_len for a in axes]
    outs = [a.out_len for a in axes]
    xq = (ins[1] - 1) * g2 + ins[2]
    lead = max(toff, default=0)
    dims = [0] * DIMS_LEN
    dims[D_C], dims[D_F], dims[D_G2], dims[D_PLANE], dims[D_LEAD] = c, f, g2, plane, lead
    dims[D_IN0 : D_IN0 + 3], dims[D_OUT0 : D_OUT0 + 3] = ins, outs
    dims[D_S0 : D_S0 + 3] = [a.stride for a in axes]
    dims[D_XQ], dims[D_M0] = xq, max((row[PH_N0] for row in ph), default=0)
    i64 = np.int64
    return PhasePlan(
        perm,
        np.array(dims, i64),
        np.array([a.crop_start for a in axes], i64),
        np.array(ph, i64).reshape(-1, PH_LEN),
        np.array(qlo, i64),
        np.array(qlen, i64),
        np.array(toff, i64),
        np.array(tout, i64),
        np.array(tph, i64),
        np.array(kidx, i64),
    )


# Columns of RowPlan.dims (read by :func:`compute.cpu_kernels.row_forward`; same caveat as D_*).
R_C, R_F = 0, 1
R_IN0, R_IN1, R_IN2 = 2, 3, 4
R_L, R_V, R_KG, R_K1, R_K2, R_PAD, R_RL = 5, 6, 7, 8, 9, 10, 11
R_S0, R_S1, R_S2 = 12, 13, 14
R_PLANES, R_PAIRS, R_OUT2, R_P, R_ROWS = 15, 16, 17, 18, 19
ROW_DIMS_LEN = 20
# Columns of the dims of the forward by filter vectors (:func:`filter_dims`; read by
# :func:`compute.cpu_kernels.filter_forward`).
V_C, V_F = 0, 1
V_IN0, V_IN1, V_IN2 = 2, 3, 4
V_OUT0, V_OUT1, V_OUT2 = 5, 6, 7
V_K0, V_K1, V_S0, V_S1, V_D0, V_D1 = 8, 9, 10, 11, 12, 13
V_CROP0, V_CROP1, V_CROP2 = 14, 15, 16
FILTER_DIMS_LEN = 17
# Columns of RowPlan.res0/res1/res2: one row per residue of the axis.
A_MLO, A_N, A_FIRST, A_COUNT = 0, 1, 2, 3
# Taps one forward row tile sums along the row axis (its sums: 8 filters x this many vectors).
ROW_TILE_TAPS = 3


@dataclass(frozen=True)
class RowPlan:
    """Row decomposition of a geometry for the compiled forward
    (:func:`compute.cpu_kernels.row_forward`): one axis, the *row* axis (last in plan order),
    is held as whole vectors of input positions; each output row (one position of the two other
    axes, per phase) sums, over the (axis-0, axis-1) tap pairs that reach the input, every
    channel's input row times each row-axis tap's weights, and adds those shifted partial rows
    at the end. No product ever touches padding, except the lanes past the row's length when
    it is not a multiple of 16, and the filters past ``F`` in its last group of 8. Rows of 8 or
    fewer are packed ``R_P`` to a vector (consecutive rows of the middle axis: one vector makes
    that many output rows' partial rows, stored lane group by lane group).

    ``taps*`` rows are ``(kernel index j, offset t)``, ordered by residue (output phase index
    ``m = i + t`` for input index ``i``); ``res*`` rows are :data:`A_MLO`, :data:`A_N` (first
    phase index and count of output positions), :data:`A_FIRST`, :data:`A_COUNT` (its taps);
    ``groups`` rows are ``(first tap, count <= ROW_TILE_TAPS)`` of ``taps2``, one tile each."""

    perm: tuple[int, int, int]
    dims: np.ndarray
    crop: np.ndarray
    res0: np.ndarray
    res1: np.ndarray
    res2: np.ndarray
    taps0: np.ndarray
    taps1: np.ndarray
    taps2: np.ndarray
    groups: np.ndarray
    waste: float  # multiply-adds computed per useful one


def _residues(a: AxisGeometry) -> tuple[np.ndarray, np.ndarray]:
    """``(res, taps)`` arrays of one axis for :class:`RowPlan`."""
    res: list[list[int]] = []
    taps: list[tuple[int, int]] = []
    for tlist, mlo, count in _axis_phases(a):
        res.append([mlo, count, len(taps), len(tlist)])
        taps.extend(tlist)
    i64 = np.int64
    return np.array(res, i64).reshape(-1, 4), np.array(taps, i64).reshape(-1, 2)


def _row_groups(k2: int) -> list[tuple[int, int]]:
    """The row axis's ``k2`` taps split into the fewest tiles of at most
    :data:`ROW_TILE_TAPS`, as even as can be (4 -> 2 + 2, not 3 + 1)."""
    n = -(-k2 // ROW_TILE_TAPS)
    bounds = [k2 * g // n for g in range(n + 1)]
    return [(a, b - a) for a, b in zip(bounds, bounds[1:])]


@lru_cache(maxsize=64)
def row_plan(geom: Geometry, c: int, f: int) -> RowPlan:
    """The :class:`RowPlan` of ``geom`` for ``c`` channels and ``f`` filters: the row axis is
    the one whose length fills whole vectors best (the last one among equals)."""
    lanes = LANES
    row = _row_axis(geom)
    outer = [i for i in range(3) if i != row]
    perm = (outer[0], outer[1], row)
    axes = [geom.axes[i] for i in perm]
    (res0, taps0), (res1, taps1), (res2, taps2) = (_residues(a) for a in axes)
    ins = [a.in_len for a in axes]
    packed, ln = _row_packing(ins[2])
    v = -(-ln // lanes)
    # Partial rows: data at [pad, pad + ln); every vector the output pass loads stays inside.
    reach_lo, reach_hi = 0, 0
    for mlo, count, first, n_taps in res2:
        for _, t in taps2[first : first + n_taps]:
            reach_lo = min(reach_lo, mlo - t)
            reach_hi = max(reach_hi, mlo + -(-count // lanes) * lanes - t)
    pad = -reach_lo
    rl = -(-max(pad + reach_hi, pad + v * lanes) // lanes) * lanes
    pairs = max((n0 * n1 for n0 in res0[:, A_COUNT] for n1 in res1[:, A_COUNT]), default=0)
    dims = [0] * ROW_DIMS_LEN
    dims[R_C], dims[R_F] = c, f
    dims[R_IN0 : R_IN0 + 3] = ins
    dims[R_L], dims[R_V], dims[R_KG] = ln, v, -(-f // 8)
    dims[R_P], dims[R_ROWS] = packed, ins[1] + 2 * (packed - 1)
    dims[R_K1], dims[R_K2], dims[R_PAD], dims[R_RL] = axes[1].size, axes[2].size, pad, rl
    dims[R_S0 : R_S0 + 3] = [a.stride for a in axes]
    dims[R_PLANES], dims[R_PAIRS], dims[R_OUT2] = axes[0].out_len, max(pairs, 1), axes[2].out_len
    i64 = np.int64
    waste = (8 * dims[R_KG] / f) / _lane_fill(ins[2])
    return RowPlan(
        perm,
        np.array(dims, i64),
        np.array([a.crop_start for a in axes], i64),
        res0,
        res1,
        res2,
        taps0,
        taps1,
        taps2,
        np.array(_row_groups(axes[2].size), i64).reshape(-1, 2),
        waste,
    )


def _row_weights(kernel: np.ndarray, plan: RowPlan) -> np.ndarray:
    """Kernel (kd, kh, kw, F, C) -> :func:`compute.cpu_kernels.row_forward`'s weights
    ``(k0*k1, KG, C, 8*k2)``: per (axis-0, axis-1) tap pair, group of 8 filters and channel,
    each row tile's block ``(8, its taps)`` filter-major, tiles in ``plan.groups`` order, zero
    past ``F`` (a compiled loop: NumPy's transposing copies took 1.6 ms of D3's 2 MiB kernel,
    13 % of its forward on two threads)."""
    k = kernel.transpose(*plan.perm, 3, 4)  # plan axis order
    k0, k1, k2, _, c = k.shape
    out = np.zeros((k0 * k1, int(plan.dims[R_KG]), c, 8 * k2), np.float32)
    _cpu().row_weights(k, plan.taps2, plan.groups, out)
    return out


# ----------------------------------------------------------------------------- dispatch


@lru_cache(maxsize=1)
def _cpu() -> ModuleType:
    """:mod:`compute.cpu_kernels`, imported on first use: importing Numba takes a while, and
    ``import compute`` should not pay for it (cached: a layer call asks for it some 17 times)."""
    from . import cpu_kernels

    return cpu_kernels


def _path(xp: ArrayModule) -> str:
    """'numba', 'cuda' or 'flat' (the array-module path) for the array module ``xp``."""
    if xp is np:
        return "numba" if _cpu().AVAILABLE else "flat"
    if getattr(xp, "__name__", "") == "cupy":
        return "cuda"
    return "flat"


def _tile_weights(kernel: np.ndarray, plan: PhasePlan, forward: bool) -> np.ndarray:
    """Kernel (kd, kh, kw, F, C) -> the compiled tiles' weights (T*J, K rounded up to 8), rows
    (plan tap, j), zero past K: j the channels and K the filters for the forward, j the filters
    and K the channels for the input gradient."""
    k = kernel.reshape((-1,) + tuple(kernel.shape[3:]))[plan.kidx]  # (T, F, C)
    if forward:
        k = k.transpose(0, 2, 1)
    t, j, cols = k.shape
    out = np.zeros((t, j, -(-cols // 8) * 8), np.float32)
    out[:, :, :cols] = k
    return out.reshape(t * j, out.shape[2])  # t may be 0: no tap reaches the output


def _flat(a: np.ndarray, plan: PhasePlan | RowPlan) -> tuple[np.ndarray, np.ndarray]:
    """Flat view and element strides of a (N, C, *spatial) array, spatial axes in plan order."""
    return _cpu().flat(a.transpose(0, 1, *(2 + i for i in plan.perm)))


# Cost model of the two CPU paths, in seconds per unit, measured on the development machine (one
# core): the compiled loops' useful multiply-adds; BLAS sgemm's multiply-adds for wide products
# (its rate falls with fewer product columns); an im2col element; a scattered output element.
_LOOPS_FLOP = 1 / 70e9
_GEMM_FLOP = 1 / 95e9
_GEMM_WIDE = 64
# The longest kernel axis the sub-pixel GEMM takes (a longer one: the loops, and the memory
# estimate of a layer with a kernel millions of taps long stays instant).
GEMM_MAX_TAPS = 4096
_COLS_ELEMENT = 0.5e-9
_SCATTER_ELEMENT = 1.6e-9


@lru_cache(maxsize=64)
def costs(geom: Geometry, c: int, f: int) -> tuple[float, float]:
    """Estimated seconds per sample of (compiled loops, sub-pixel GEMM) for one forward pass of
    ``geom`` with ``c`` channels and ``f`` filters; the GEMM multiplies the zeros of ``Wb``
    (:mod:`compute.conv3d_transpose_gemm`) and the union's extra phase indices unless it runs
    one product per phase, and pays for im2col and the pixel shuffle."""
    from . import conv3d_transpose_gemm as gemm

    plan = gemm.gemm_plan(geom)
    useful = 2.0 * math.prod(a.in_len for a in geom.axes) * math.prod(a.size for a in geom.axes)
    useful *= c * f
    rows = math.prod(plan.mshape)
    k, pf = plan.taps * c, plan.phases * f
    rate = _GEMM_FLOP * math.sqrt(max(1.0, _GEMM_WIDE / pf))
    gemm_s = 2.0 * rows * k * pf * rate + rows * (k * _COLS_ELEMENT + pf * _SCATTER_ELEMENT)
    if gemm.per_phase(plan, c, f):  # one product per phase: the phases' own rows, F columns
        kept = gemm.phase_rows(plan)
        gemm_s = 2.0 * kept * k * f * _GEMM_FLOP + kept * (k * _COLS_ELEMENT + f * _SCATTER_ELEMENT)
    return useful * _LOOPS_FLOP, gemm_s


def use_gemm(geom: Geometry, c: int, f: int) -> bool:
    """Whether the CPU runs ``geom`` as the sub-pixel GEMM (many channels: BLAS wins) rather
    than the compiled loops; ``CONV3DT_CPU_PATH=gemm|loops`` forces one (tests, measurements)."""
    forced = os.environ.get("CONV3DT_CPU_PATH", "")
    if forced in ("gemm", "loops"):
        return forced == "gemm"
    if max(a.size for a in geom.axes) > GEMM_MAX_TAPS:
        return False  # its plan takes time in the taps, and its im2col columns memory
    loops, gemm_s = costs(geom, c, f)
    return gemm_s < loops


def _out_array(n: int, f: int, geom: Geometry, channels_last: bool) -> np.ndarray:
    """An uninitialised (n, F, *out) float32 array, laid out channels-last in memory when asked
    (a transposed view of (n, *out, F): the caller's moveaxis is then contiguous, no copy)."""
    if channels_last:
        return np.empty((n, *geom.out_shape, f), np.float32).transpose(0, 4, 1, 2, 3)
    return np.empty((n, f, *geom.out_shape), np.float32)


def forward(
    xp: ArrayModule,
    x: Array,
    kernel: Array,
    geom: Geometry,
    bias: Array | None = None,
    relu: bool = False,
    channels_last: bool = False,
) -> Array:
    """Transposed convolution ``x`` (N, C, D, H, W) -> (N, F, *geom.out_shape), ``+ bias`` when
    given, then ``max(., 0)`` when ``relu`` (fused into the GEMM's blocks on that path). On the
    CPU, ``channels_last`` lays the result out channels-last in memory (same shape)."""
    path = _path(xp)
    if path == "cuda":
        y = cuda_kernels.forward(xp, x, kernel, geom)
    elif xp is np and x.shape[0] and use_gemm(geom, x.shape[1], kernel.shape[3]):
        from . import conv3d_transpose_gemm as gemm

        y = _out_array(x.shape[0], kernel.shape[3], geom, channels_last)
        gemm.forward(x, kernel, geom, y, bias, relu)
        return y
    elif path == "flat" or x.shape[0] == 0:
        out = (
            _out_array(x.shape[0], kernel.shape[3], geom, True)
            if xp is np and channels_last
            else None
        )
        y = _flat_forward(xp, x, kernel, geom, out)
    else:  # bias and relu fused into the compiled loops' last pass
        return _compiled_forward(x, kernel, geom, channels_last, bias, relu)
    if bias is not None:
        y += bias.reshape((-1, 1, 1, 1))
    if relu:
        xp.maximum(y, 0, out=y)
    return y


def _compiled_forward(
    x: np.ndarray,
    kernel: np.ndarray,
    geom: Geometry,
    channels_last: bool = False,
    bias: np.ndarray | None = None,
    relu: bool = False,
) -> np.ndarray:
    """The :mod:`compute.cpu_kernels` path of :func:`forward` (interpreted without Numba), bias
    and relu applied as each output plane is written."""
    n, f = x.shape[0], kernel.shape[3]
    bv = np.zeros(f, np.float32) if bias is None else np.asarray(bias, np.float32).reshape(f)
    y = _out_array(n, f, geom, channels_last)
    path = forward_path(geom, x.shape[1], f)
    if path in ("filters", "winograd"):
        return _filter_forward(x, kernel, geom, y, bv, relu, path == "winograd")
    if path == "rows":
        return _row_forward(x, kernel, row_plan(geom, x.shape[1], f), y, bv, relu)
    plan = phase_plan(geom, x.shape[1], f)
    (xf, xs), (yf, ys) = _flat(x, plan), _flat(y, plan)
    wt = _tile_weights(kernel, plan, forward=True)
    p = plan
    jobs = _sample_parts(n, int(p.dims[D_M0]))
    _cpu().run_chunks(
        _cpu().forward,
        len(jobs),
        len(jobs),
        lambda k, a, b: (
            xf,
            xs,
            wt,
            yf,
            ys,
            *jobs[k][:2],
            p.dims,
            p.crop,
            p.ph,
            p.qlo,
            p.qlen,
            p.toff,
            p.tout,
            bv,
            relu,
            *jobs[k][2:],
        ),  # fmt: skip
    )
    return y


def _row_forward(
    x: np.ndarray, kernel: np.ndarray, plan: RowPlan, y: np.ndarray, bv: np.ndarray, relu: bool
) -> np.ndarray:
    """:func:`_compiled_forward` by rows (:func:`compute.cpu_kernels.row_forward`) into ``y``."""
    (xf, xs), (yf, ys) = _flat(x, plan), _flat(y, plan)
    wr = _row_weights(kernel, plan)
    jobs = _sample_parts(x.shape[0], int(plan.dims[R_PLANES]))
    p = plan
    _cpu().run_chunks(
        _cpu().row_forward,
        len(jobs),
        len(jobs),
        lambda k, a, b: (
            xf,
            xs,
            wr,
            yf,
            ys,
            *jobs[k][:2],
            p.dims,
            p.crop,
            p.res0,
            p.res1,
            p.res2,
            p.taps0,
            p.taps1,
            p.taps2,
            p.groups,
            bv,
            relu,
            *jobs[k][2:],
        ),  # fmt: skip
    )
    return y


def _filter_weights(kernel: np.ndarray) -> np.ndarray:
    """Kernel (kd, kh, kw, F, C) -> :func:`compute.cpu_kernels.filter_forward`'s weights
    ``(F/16, kd, kh, C, kw, 16)``: per group of 16 filters, (axis-0, axis-1) tap pair and
    channel, the last axis's 3 taps' filter vectors."""
    k0, k1, k2, f, c = kernel.shape
    k = kernel.reshape(k0, k1, k2, f // LANES, LANES, c).transpose(3, 0, 1, 5, 2, 4)
    return np.ascontiguousarray(k, np.float32)


# Winograd's F(2, 3) weight transform: 4 taps from 3 (Lavin & Gray, 2016).
_WINOGRAD_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])


def _winograd_weights(kernel: np.ndarray) -> np.ndarray:
    """Kernel (3, 3, 3, F, C) -> :func:`compute.cpu_kernels.winograd_forward`'s weights
    ``(F/16, 4, 4, C, 3, 16)``: ``U = G g G^T`` over axes 0 and 1, ``g`` the taps reversed
    along them (the transposed convolution as a correlation), in float64 before rounding."""
    f, c = kernel.shape[3:]
    g = np.asarray(kernel, np.float64)[::-1, ::-1].reshape(3, 3, -1)
    u = _WINOGRAD_G @ (_WINOGRAD_G @ g).transpose(1, 0, 2)  # (4 axis-1, 4 axis-0, rest)
    u = u.reshape(4, 4, 3, f // LANES, LANES, c).transpose(3, 1, 0, 5, 2, 4)
    return np.ascontiguousarray(u, np.float32)


def _filter_forward(
    x: np.ndarray,
    kernel: np.ndarray,
    geom: Geometry,
    y: np.ndarray,
    bv: np.ndarray,
    relu: bool,
    winograd: bool = False,
) -> np.ndarray:
    """:func:`_compiled_forward` by filter vectors (:func:`compute.cpu_kernels.filter_forward`)
    or, with ``winograd``, by Winograd tiles (:func:`compute.cpu_kernels.winograd_forward`)
    into ``y``."""
    (xf, xs), (yf, ys) = _cpu().flat(x), _cpu().flat(y)
    if winograd:
        fn, w = _cpu().winograd_forward, _winograd_weights(kernel)
        planes = _winograd_tiles(geom.axes[0])  # the threads share rows of tiles
    else:
        fn, w, planes = _cpu().filter_forward, _filter_weights(kernel), geom.axes[0].out_len
    dims = filter_dims(geom, x.shape[1], kernel.shape[3])
    bias = np.ascontiguousarray(bv, np.float32)
    jobs = _sample_parts(x.shape[0], planes)
    _cpu().run_chunks(
        fn,
        len(jobs),
        len(jobs),
        lambda k, a, b: (xf, xs, w, yf, ys, *jobs[k][:2], dims, bias, relu, *jobs[k][2:]),
    )
    return y


def forward_path(geom: Geometry, c: int, f: int) -> str:
    """How the compiled forward runs ``geom``: ``"winograd"`` (by Winograd tiles) where it
    applies and :func:`winograd_gain` expects it faster than the filter vectors (and the rows,
    taken as the filter vectors times their lanes' waste over the filter vectors'), else
    ``"filters"`` (by filter vectors) where they apply and waste no more lanes than the rows
    do, else ``"rows"`` (:class:`RowPlan`) where its lanes and filter groups waste less than the
    phase planes' padding, else ``"planes"``. ``CONV3DT_FORWARD=winograd|filters|rows|planes``
    forces one (tests, measurements; ``winograd`` and ``filters`` only where they apply)."""
    forced = os.environ.get("CONV3DT_FORWARD", "")
    if forced == "winograd" and winograd_applies(geom, f):
        return "winograd"
    if forced == "filters" and filters_apply(geom, f):
        return "filters"
    if forced in ("rows", "planes"):
        return forced
    rows = row_plan(geom, c, f).waste
    # against the filter vectors, or the rows where their lanes waste less
    if (
        forced != "filters"
        and winograd_applies(geom, f)
        and winograd_gain(geom, c, f) < min(1.0, rows / _filter_waste(geom))
    ):
        return "winograd"
    if filters_apply(geom, f) and _filter_waste(geom) <= rows * (1 + 1e-9):
        return "filters"
    return "rows" if rows <= _plane_waste(phase_plan(geom, c, f)) else "planes"


def _plane_waste(plan: PhasePlan) -> float:
    """Multiply-adds the phase-plane forward computes per useful one (its tiles of 8 or 4
    filters, its rows rounded up to whole tiles and the plane's padding; taps skipped at a
    plane's edges not counted)."""
    d = plan.dims
    f = int(d[D_F])
    filters = (-(-f // 8) * 8 if f > 4 else 4) / f
    useful = int(d[D_IN1]) * int(d[D_IN2])
    longest = -(-int(plan.qlen.max(initial=0)) // LANES) * LANES
    return filters * max(longest / useful, 1.0)


def _sample_parts(n: int, planes: int) -> list[tuple[int, int, int, int]]:
    """The forward's jobs ``(n_from, n_to, part, parts)``: ranges of samples when there are at
    least two per thread, else each sample split into ``parts`` ranges of its output planes, so
    that a batch of one or two still keeps every thread busy (and a thread that starts late
    leaves less to wait for)."""
    threads = _cpu().THREADS
    if n >= 2 * threads or threads == 1 or planes < 2:
        chunks = _cpu().ranges_for(n)
        bounds = [(n * k) // chunks for k in range(chunks + 1)]
        return [(a, b, 0, 1) for a, b in zip(bounds, bounds[1:]) if a < b]
    parts = min(planes, -(-2 * threads // max(n, 1)))
    return [(i, i + 1, part, parts) for i in range(n) for part in range(parts)]


def backward_input(xp: ArrayModule, dy: Array, kernel: Array, geom: Geometry) -> Array:
    """Gradient w.r.t. the input: ``dy`` (N, F, *out) -> (N, C, *in)."""
    path = _path(xp)
    if path == "cuda":
        return cuda_kernels.backward_input(xp, dy, kernel, geom)
    if xp is np and dy.shape[0] and use_gemm(geom, kernel.shape[4], kernel.shape[3]):
        from . import conv3d_transpose_gemm as gemm

        dx = np.empty((dy.shape[0], kernel.shape[4], *(a.in_len for a in geom.axes)), np.float32)
        gemm.backward_input(dy, kernel, geom, dx)
        return dx
    if path == "flat" or dy.shape[0] == 0:
        return _flat_backward_input(xp, dy, kernel, geom)
    return _compiled_backward_input(dy, kernel, geom)


def input_gradient_geometry(geom: Geometry) -> Geometry | None:
    """The input gradient of a layer with 3 taps, stride 1 and dilation 1 on every axis as a
    transposed convolution of ``dy`` (the same taps reversed, channels and filters exchanged):
    ``dx[i] = sum_u dy[i - crop + u] w[u]`` is that layer's output cropped from ``2 - crop``,
    ``in`` long. None for other layers."""
    if any((a.size, a.stride, a.dilation) != (3, 1, 1) for a in geom.axes):
        return None
    axes = tuple(
        AxisGeometry(
            a.out_len, 3, 1, 1, 3, a.out_len + 2, 2 - a.crop_start, a.in_len, a.out_len + 2
        )
        for a in geom.axes
    )
    return Geometry((axes[0], axes[1], axes[2]))


def input_gradient_path(geom: Geometry, c: int, f: int) -> str:
    """How the compiled input gradient runs ``geom`` (``c`` channels, ``f`` filters):
    ``"winograd"`` (the forward by Winograd tiles of :func:`input_gradient_geometry`, ``c`` in
    sixteens) where it applies and :func:`winograd_gain` expects it faster than the filter
    vectors (themselves faster than the phase planes), else ``"planes"``.
    ``CONV3DT_INPUT_GRADIENT=winograd|planes`` forces one (``winograd`` where it applies)."""
    dual = input_gradient_geometry(geom)
    if dual is None or not winograd_applies(dual, c):
        return "planes"
    forced = os.environ.get("CONV3DT_INPUT_GRADIENT", "")
    if forced in ("winograd", "planes"):
        return forced
    return "winograd" if winograd_gain(dual, f, c) < 1 else "planes"


def _compiled_backward_input(dy: np.ndarray, kernel: np.ndarray, geom: Geometry) -> np.ndarray:
    n, c = dy.shape[0], kernel.shape[4]
    dual = input_gradient_geometry(geom)
    if dual is not None and input_gradient_path(geom, c, kernel.shape[3]) == "winograd":
        dx = np.empty((n, c, *(a.in_len for a in geom.axes)), np.float32)
        reversed_taps = np.ascontiguousarray(kernel[::-1, ::-1, ::-1].transpose(0, 1, 2, 4, 3))
        return _filter_forward(dy, reversed_taps, dual, dx, np.zeros(c, np.float32), False, True)
    plan = phase_plan(geom, c, kernel.shape[3])
    wt = _tile_weights(kernel, plan, forward=False)
    dx = np.empty((n, c) + tuple(a.in_len for a in geom.axes), dtype=np.float32)
    (df, ds), (dxf, dxs) = _flat(dy, plan), _flat(dx, plan)
    p = plan
    _cpu().run_chunks(
        _cpu().backward_input,
        n,
        _cpu().ranges_for(n),
        lambda k, a, b: (df, ds, wt, dxf, dxs, a, b, p.dims, p.crop, p.ph, p.toff, p.tout, p.tph),
    )
    return dx


def backward_kernel(
    xp: ArrayModule, x: Array, dy: Array, geom: Geometry, kernel_shape: tuple[int, ...]
) -> Array:
    """Gradient w.r.t. the kernel (Keras layout), summed over the batch."""
    path = _path(xp)
    if path == "cuda":
        return cuda_kernels.backward_kernel(xp, x, dy, geom, kernel_shape)
    if xp is np and x.shape[0] and use_gemm(geom, kernel_shape[4], kernel_shape[3]):
        from . import conv3d_transpose_gemm as gemm

        return gemm.backward_kernel(x, dy, geom, kernel_shape)
    if path == "flat" or x.shape[0] == 0:
        return _flat_backward_kernel(xp, x, dy, geom, kernel_shape)
    return _compiled_backward_kernel(x, dy, geom, kernel_shape)


def relu_backward(
    xp: ArrayModule, y: Array, dy: Array, channels_first: bool, bias: bool
) -> tuple[Array, Array | None]:
    """relu's input gradient (``dy`` where ``y > 0``, else 0) and, with ``bias``, its sum per
    channel (the bias gradient), for a layer output ``y`` (N, C, ...) or (N, ..., C). The
    compiled CPU path does both in one pass, on the threads; elsewhere NumPy or CuPy."""
    axes = (0, *range(2, y.ndim)) if channels_first else tuple(range(y.ndim - 1))
    contiguous = y.flags.c_contiguous and dy.flags.c_contiguous
    float32 = y.dtype == dy.dtype == np.float32
    if xp is not np or _path(np) != "numba" or not contiguous or not float32:
        dz = dy * (y > 0)
        return dz, (dz.sum(axis=axes).astype(dz.dtype) if bias else None)
    n, c = y.shape[0], y.shape[1 if channels_first else -1]
    shape = (n, c, -1) if channels_first else (n, -1, c)
    y3, dy3 = y.reshape(shape), dy.reshape(shape)
    dz = np.empty_like(dy)
    chunks = min(n, KERNEL_GRAD_CHUNKS) if n else 1  # fixed: the sums do not depend on threads
    sums = np.zeros((chunks, c), np.float64)
    _cpu().run_chunks(
        _cpu().relu_backward,
        n,
        chunks,
        lambda k, a, b: (y3, dy3, dz.reshape(shape), sums[k], channels_first, a, b),
    )
    return dz, (sums.sum(axis=0).astype(np.float32) if bias else None)


def channel_lanes(c: int) -> int:
    """The channel count the compiled kernel gradient works on: ``c`` rounded up to whole
    16-channel vectors where that wastes at most a quarter of the lanes (the channels-last
    kernel, :func:`compute.cpu_kernels.backward_kernel_channels`), else 0 (the planar one)."""
    lanes = -(-c // 16) * 16
    return lanes if 4 * c >= 3 * lanes else 0


def filter_gradient_applies(geom: Geometry, f: int) -> bool:
    """Whether the kernel gradient by filter vectors
    (:func:`compute.cpu_kernels.filter_kernel_gradient`) can run ``geom`` with ``f`` filters:
    whole vectors of filters, and along the last axis stride 1, 3 taps and dilation 1 (any crop,
    any output padding)."""
    a = geom.axes[2]
    return f % LANES == 0 and (a.size, a.stride, a.dilation) == (3, 1, 1)


def kernel_gradient_path(geom: Geometry, c: int, f: int) -> str:
    """How the compiled kernel gradient runs ``geom``: ``"filters"`` (by filter vectors) where
    it applies and its channels, taken eight at a time, are at most half padding; else
    ``"channels"`` (16 channels a vector, where :func:`channel_lanes` allows) or ``"planes"``.
    ``CONV3DT_KERNEL_GRADIENT=filters|channels|planes`` forces one where it applies (tests,
    measurements); any other value means the automatic choice."""
    forced = os.environ.get("CONV3DT_KERNEL_GRADIENT", "")
    applies = filter_gradient_applies(geom, f)
    if forced == "filters" and applies:
        return "filters"
    if forced == "planes" or (forced == "channels" and channel_lanes(c)):
        return forced
    if applies and -(-c // 8) * 8 <= 2 * c:
        return "filters"
    return "channels" if channel_lanes(c) else "planes"


def _filter_grad_floats(geom: Geometry, f: int) -> int:
    """The floats one thread of :func:`compute.cpu_kernels.filter_kernel_gradient` allocates:
    the sample's output gradient by rows of the full result (in2 + 2 long), two row lists in
    int64 and its small offset arrays."""
    a0, a1, a2 = geom.axes
    return a0.out_len * a1.out_len * (a2.in_len + 2) * f + 4 * a0.in_len * a1.in_len + 8 * LANES


def _sum_kernel_chunks(acc: np.ndarray, b: int) -> np.ndarray:
    """The chunks' float64 sums ``acc`` (chunks, T, A, >= b), added in chunk order (for large
    ones by ranges of taps on the threads) and rounded to float32: (T, A, b)."""
    taps = acc.shape[1]
    total = np.empty((taps, acc.shape[2], b), dtype=np.float32)
    ranges = _cpu().ranges_for(taps) if acc.nbytes >= 4 * 2**20 else 1
    _cpu().run_chunks(_cpu().sum_chunks, taps, ranges, lambda k, a, b: (acc, total, a, b))
    return total


def _filter_backward_kernel(
    x: np.ndarray, dy: np.ndarray, geom: Geometry, kernel_shape: tuple[int, ...]
) -> np.ndarray:
    """:func:`_compiled_backward_kernel` by filter vectors
    (:func:`compute.cpu_kernels.filter_kernel_gradient`)."""
    n, (k0, k1, k2, f, c) = x.shape[0], kernel_shape
    chunks = min(n, KERNEL_GRAD_CHUNKS)  # fixed, as the other paths': the same bits on any threads
    acc = np.empty((chunks, k0 * k1 * k2, c, f), dtype=np.float64)  # zeroed by each chunk
    (xf, xs), (df, ds) = _cpu().flat(x), _cpu().flat(dy)
    dims = filter_dims(geom, c, f)
    _cpu().run_chunks(
        _cpu().filter_kernel_gradient,
        n,
        chunks,
        lambda k, a, b: (xf, xs, df, ds, acc[k].reshape(-1), a, b, dims),
    )
    total = _sum_kernel_chunks(acc, f).reshape(k0, k1, k2, c, f)
    return np.ascontiguousarray(total.transpose(0, 1, 2, 4, 3))


def _compiled_backward_kernel(
    x: np.ndarray, dy: np.ndarray, geom: Geometry, kernel_shape: tuple[int, ...]
) -> np.ndarray:
    n, f, c = x.shape[0], kernel_shape[3], kernel_shape[4]
    path = kernel_gradient_path(geom, c, f)
    if path == "filters":
        return _filter_backward_kernel(x, dy, geom, kernel_shape)
    plan = phase_plan(geom, c, f)
    cp = channel_lanes(c) if path == "channels" else 0
    # Fixed chunks, each with its own float64 sums, added in order: deterministic for any threads.
    chunks = min(n, KERNEL_GRAD_CHUNKS)
    # (zeroed by each chunk's kernel, on its thread: D3's four are 4 MiB each)
    acc = np.empty((chunks, len(plan.toff), f, cp or c), dtype=np.float64)
    (xf, xs), (df, ds) = _flat(x, plan), _flat(dy, plan)
    p = plan
    common = (p.dims, p.crop, p.ph, p.qlo, p.qlen, p.toff, p.tout)
    # dy's planes are the phase planes already: one phase, nothing cropped, contiguous rows as
    # long as the plane's rows (stride 1, "valid" or no crop)
    direct = (
        len(p.qlen) == 1
        and not p.crop.any()
        and not p.ph[0, PH_MLO0 : PH_MLO0 + 3].any()
        and ds[4] == 1
        and ds[3] == p.dims[D_G2] == p.dims[D_OUT0 + 2]
    )
    if cp:
        _cpu().run_chunks(
            _cpu().backward_kernel_channels,
            n,
            chunks,
            lambda k, a, b: (xf, xs, df, ds, acc[k].reshape(-1), a, b, *common, cp, direct),
        )
    else:
        _cpu().run_chunks(
            _cpu().backward_kernel,
            n,
            chunks,
            lambda k, a, b: (xf, xs, df, ds, acc[k], a, b, *common),
        )
    total = _sum_kernel_chunks(acc, c)
    dk = np.zeros((int(np.prod(kernel_shape[:3])), f, c), dtype=np.float32)
    dk[plan.kidx] = total
    return dk.reshape(kernel_shape)


def warm_up() -> bool:
    """Compile (or load from the disk cache) the CPU kernels now, on a tiny problem: the first
    real call then starts at full speed. About 20 s the very first time; call it from a worker.
    Returns whether compiled kernels are in use."""
    if not _cpu().AVAILABLE:
        return False
    geom = Geometry.of((2, 2, 2), (2, 2, 2), (1, 1, 1), (1, 1, 1), False)
    x = np.ones((1, 1, 2, 2, 2), dtype=np.float32)
    kernel = np.ones((2, 2, 2, 1, 1), dtype=np.float32)
    y = _compiled_forward(x, kernel, geom)
    _row_forward(x, kernel, row_plan(geom, 1, 1), np.empty_like(y), np.zeros(1, np.float32), True)
    three = Geometry.of((2, 2, 2), (1, 1, 3), (1, 1, 1), (1, 1, 1), False)  # by filter vectors
    vectors = np.ones((1, 1, 1, LANES, 1), dtype=np.float32)
    _filter_forward(
        x, vectors, three, np.empty((1, LANES, *three.out_shape), np.float32),
        np.zeros(LANES, np.float32), True,
    )  # fmt: skip
    cube = Geometry.of((1, 1, 1), (3, 3, 3), (1, 1, 1), (1, 1, 1), False)  # Winograd tiles
    _filter_forward(
        x[:, :, :1, :1, :1], np.ones((3, 3, 3, LANES, 1), np.float32), cube,
        np.empty((1, LANES, 3, 3, 3), np.float32), np.zeros(LANES, np.float32), True, True,
    )  # fmt: skip
    dy = np.ones((1, LANES, *three.out_shape), np.float32)
    _filter_backward_kernel(x, dy, three, (1, 1, 3, LANES, 1))
    _compiled_backward_input(y, kernel, geom)
    _compiled_backward_kernel(x, y, geom, kernel.shape)
    lanes = np.ones((1, 16, 2, 2, 2), dtype=np.float32)  # the channels-last kernel gradient
    _compiled_backward_kernel(lanes, y, geom, (2, 2, 2, 1, 16))
    relu_backward(np, y, y, True, True)
    return True


def output_shape(
    spatial_in: Sequence[int],
    size: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    same: bool,
    output_padding: Sequence[int | None] | None = None,
) -> tuple[int, int, int]:
    """Pure output-shape function of the spatial axes (no arrays touched)."""
    return Geometry.of(spatial_in, size, stride, dilation, same, output_padding).out_shape


__all__ = [
    "AxisGeometry",
    "Geometry",
    "PhasePlan",
    "axis_geometry",
    "backward_input",
    "backward_kernel",
    "costs",
    "forward",
    "output_shape",
    "phase_plan",
    "use_gemm",
    "warm_up",
]
