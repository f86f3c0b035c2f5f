"""Transposed 3-D convolution as one matrix product per chunk (sub-pixel GEMM), NumPy and BLAS.

For many channels the work is a matrix product; NumPy's ``matmul`` (OpenBLAS sgemm) runs it far
faster than hand-written loops. The formulation:

A stride-``s`` transposed convolution is, per axis, ``s`` *phases*: output position ``y = s*m + r
- crop`` (residue ``r``, phase index ``m``) receives ``x[m - o] * w[j]`` from every tap ``j`` with
``(j*dilation) % s == r``, ``o = (j*dilation) // s`` (:func:`conv3d_transpose_ops._axis_phases`).
Take, per axis, the union ``O`` of the offsets ``o`` of all phases and one range of ``m`` covering
every phase. Then the whole layer is an ordinary stride-1 correlation with ``|O|`` taps per axis
and ``P*F`` output channels (``P = s0*s1*s2`` phases), followed by a pixel shuffle:

    Z[(n, m), (p, f)] = sum_{(o, c)} cols[(n, m), (o, c)] * Wb[(o, c), (p, f)]
    cols[(n, m), (o, c)] = x[n, m - o, c]   (zero outside the input)
    Wb[(o, c), (p, f)] = w[j, f, c] for the tap j of phase p at offset o, else 0
    y[n, f, s*m + r_p - crop] = Z[(n, m), (p, f)]

``cols`` is built in bounded chunks of ``(n, m0)`` rows (im2col over a zero-padded, channels-last
copy of the input), so memory stays a few MiB whatever the batch. The gradients are the same
product read the other ways: ``dWb = cols^T @ dZ`` (kernel; float32 products of each chunk summed
in float64, chunk sizes fixed by the geometry: deterministic for any thread count) and
``dx[(n, i), c] = sum_{(o, p, f)} dZ[(n, i + o), (p, f)] * Wb[(o, c), (p, f)]`` (input: the
same im2col over the phase-split output gradient).

The union's range of ``m`` covers every phase, so it computes positions that no phase keeps (4^3
at stride 2 with "same" on 8^3: 9^3 rows where each phase keeps 8^3). Where every phase takes
every offset of the union (no zero slots in ``Wb``), that waste is large and the layer has many
filters (:func:`per_phase`), the forward and the kernel gradient instead run one product per
phase over its own range: ``cols`` of those rows times ``Wb``'s columns of the phase (a view),
written to (or read from) the phase's strided output positions directly.

Pure NumPy: the path runs with or without Numba. Where the kernel is sparse in ``Wb`` (a stride
that does not divide the kernel: 27 of 64 slots for 3^3 at stride 2) zeros are multiplied; the
cost model in :mod:`compute.conv3d_transpose_ops` weighs that against the compiled loops.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from .conv3d_transpose_ops import AxisGeometry, Geometry

Index = tuple[Any, ...]  # a NumPy index: slices and integers
Window = tuple[Index, Index, Index]  # (phase residues, output slices, phase-index slices)
_ALL: Index = (slice(None),)

# Upper bound, in bytes, of one block's im2col rows plus their products (at least one row plane).
BLOCK_BYTES = 2 * 2**20
# Upper bound, in bytes, of the padded copy of a chunk of samples (at least one sample).
PAD_BYTES = 16 * 2**20
# Small allocations of any call (index arrays, views, Python's own bookkeeping), bounded.
FIXED_BYTES = 64 * 2**10


@dataclass(frozen=True)
class AxisUnion:
    """One axis of the sub-pixel GEMM. Kernel index ``j`` lands on output index ``s*(i + o) + r
    - shift`` from input index ``i``, with ``j*dilation - crop_start + shift = s*o + r``, ``0 <= r
    < s``; ``tap[j]`` = (index of ``o`` in ``offsets``, ``r``). Phase indices ``u`` run over
    ``[0, mlen)``; the input sits at ``pad + i`` of a zero grid of ``xlen``; the output gradient
    is laid out by ``u - offsets[0]`` over ``dlen``."""

    stride: int
    shift: int
    offsets: tuple[int, ...]
    tap: tuple[tuple[int, int], ...]
    mlen: int
    pad: int
    xlen: int
    dlen: int
    out_len: int
    in_len: int


# Taps x shifts :func:`axis_union` tries at most (every shift of any kernel up to 1,000 long).
_SHIFT_SEARCH = 1_000_000


def axis_union(a: AxisGeometry) -> AxisUnion:
    """The :class:`AxisUnion` of one axis: the ``shift`` in ``[0, stride)`` with the fewest
    (offsets x phase indices), i.e. the fewest multiply-adds (see the module docstring)."""
    s = a.stride
    best = None
    # the offsets change only where some j*dilation - crop + shift meets a multiple of s, and
    # mlen grows with shift: the best shift is 0 or one of those points (a few, any stride).
    # Any shift is correct: for huge kernels only the first few are tried (the search costs
    # size x candidates; a kernel 10^5 long with stride 10^3 would take minutes)
    candidates = sorted({0} | {(a.crop_start - j * a.dilation) % s for j in range(a.size)})
    for shift in candidates[: max(1, _SHIFT_SEARCH // a.size)]:
        split = [divmod(j * a.dilation - a.crop_start + shift, s) for j in range(a.size)]
        offs = sorted({o for o, _ in split})
        mlen = max(-(-(a.out_len + shift) // s), 1)
        if best is None or len(offs) * mlen < len(best[1]) * best[2]:
            best = (shift, offs, mlen, split)
    assert best is not None
    shift, offs, mlen, split = best
    index = {o: i for i, o in enumerate(offs)}
    tap = tuple((index[o], r) for o, r in split)
    pad = offs[-1]
    xlen = max(mlen + pad - offs[0], pad + a.in_len)
    dlen = a.in_len + offs[-1] - offs[0]
    return AxisUnion(s, shift, tuple(offs), tap, mlen, pad, xlen, dlen, a.out_len, a.in_len)


@dataclass(frozen=True)
class GemmPlan:
    """The three :class:`AxisUnion` of a geometry."""

    axes: tuple[AxisUnion, AxisUnion, AxisUnion]

    @property
    def phases(self) -> int:
        return math.prod(a.stride for a in self.axes)

    @property
    def taps(self) -> int:
        return math.prod(len(a.offsets) for a in self.axes)

    @property
    def mshape(self) -> tuple[int, int, int]:
        a0, a1, a2 = self.axes
        return a0.mlen, a1.mlen, a2.mlen


@lru_cache(maxsize=64)
def gemm_plan(geom: Geometry) -> GemmPlan:
    """The :class:`GemmPlan` of ``geom``."""
    a0, a1, a2 = (axis_union(a) for a in geom.axes)
    return GemmPlan((a0, a1, a2))


def useful_fraction(geom: Geometry) -> float:
    """Kernel taps over the slots of ``Wb`` (1.0 when every stride divides its kernel)."""
    plan = gemm_plan(geom)
    return math.prod(a.size for a in geom.axes) / (plan.taps * plan.phases)


def weight_matrix(kernel: np.ndarray, plan: GemmPlan) -> np.ndarray:
    """``Wb`` (``|O| * C``, ``P * F``) of the module docstring from a Keras kernel
    (kd, kh, kw, F, C); rows (o0, o1, o2, c), columns (r0, r1, r2, f)."""
    k0, k1, k2, f, c = kernel.shape
    a0, a1, a2 = plan.axes
    o = [np.array([t[0] for t in a.tap]) for a in plan.axes]
    r = [np.array([t[1] for t in a.tap]) for a in plan.axes]
    wb = np.zeros(
        (len(a0.offsets), len(a1.offsets), len(a2.offsets), c, a0.stride, a1.stride, a2.stride, f),
        np.float32,
    )
    i0, i1, i2 = o[0][:, None, None], o[1][None, :, None], o[2][None, None, :]
    q0, q1, q2 = r[0][:, None, None], r[1][None, :, None], r[2][None, None, :]
    wb[i0, i1, i2, :, q0, q1, q2, :] = kernel.transpose(0, 1, 2, 4, 3)
    return wb.reshape(plan.taps * c, plan.phases * f)


def kernel_from_matrix(
    dwb: np.ndarray, plan: GemmPlan, kernel_shape: tuple[int, ...]
) -> np.ndarray:
    """The inverse of :func:`weight_matrix`: the kernel's entries picked from ``dWb``."""
    k0, k1, k2, f, c = kernel_shape
    a0, a1, a2 = plan.axes
    o = [np.array([t[0] for t in a.tap]) for a in plan.axes]
    r = [np.array([t[1] for t in a.tap]) for a in plan.axes]
    wb = dwb.reshape(
        len(a0.offsets), len(a1.offsets), len(a2.offsets), c, a0.stride, a1.stride, a2.stride, f
    )
    i0, i1, i2 = o[0][:, None, None], o[1][None, :, None], o[2][None, None, :]
    q0, q1, q2 = r[0][:, None, None], r[1][None, :, None], r[2][None, None, :]
    picked = wb[i0, i1, i2, :, q0, q1, q2, :]  # (k0, k1, k2, C, F)
    return np.ascontiguousarray(picked.transpose(0, 1, 2, 4, 3), dtype=np.float32)


# ----------------------------------------------------------------------------- chunks and threads

# Most float64 bytes the kernel gradient's partial sums may take (at least one sum).
PARTIAL_SUMS_BYTES = 16 * 2**20
# Most partial sums of the kernel gradient (as the compiled loops' KERNEL_GRAD_CHUNKS).
PARTIAL_SUMS = 8


def _partial_sums(n_blocks: int, shape: tuple[int, int]) -> int:
    """How many float64 partial sums of ``shape`` the kernel gradient keeps: fixed by the
    geometry (never by the threads), within :data:`PARTIAL_SUMS_BYTES`."""
    room = PARTIAL_SUMS_BYTES // (8 * shape[0] * shape[1])
    return max(1, min(n_blocks, PARTIAL_SUMS, room))


def _run_blocks(
    n_blocks: int, work: Callable[[int, int, int], None], chunks: int | None = None
) -> None:
    """``work(k, lo, hi)`` over ``chunks`` contiguous ranges of ``n_blocks`` blocks (default: a
    few per thread), on the CPU kernels' thread pool, BLAS running one thread per call
    meanwhile: its own threads would busy-wait between the many small products and fight ours
    (and any other library's) for the cores."""
    from . import cpu_kernels  # the thread pool (Numba itself is not needed)

    ranges = cpu_kernels.ranges_for(n_blocks) if chunks is None else chunks
    with single_threaded_blas():
        cpu_kernels.run_chunks(work, n_blocks, ranges, lambda k, lo, hi: (k, lo, hi))


@lru_cache(maxsize=1)
def _openblas_threads() -> tuple[Any, Any] | None:
    """(get, set) of the thread count of the OpenBLAS NumPy ships with (its wheels' bundled
    ``scipy_openblas``), through ctypes; None for any other BLAS (left as it is)."""
    import ctypes
    import glob
    import os

    libs = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "*openblas*")
    for path in sorted(glob.glob(libs)):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    get.restype, put.argtypes = ctypes.c_int, [ctypes.c_int]
                    return get, put
    return None


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Within the block, NumPy's OpenBLAS (when found) runs each call on one thread; its
    previous thread count comes back after. The setting is the process's: another thread's
    NumPy products run on one thread meanwhile (correct, only slower)."""
    fns = _openblas_threads()
    if fns is None:
        yield
        return
    get, put = fns
    before = int(get())
    put(1)
    try:
        yield
    finally:
        put(before)


def _sample_chunk(n: int, per_sample: int) -> int:
    return max(1, min(n, PAD_BYTES // max(per_sample, 1)))


def _blocks(n: int, planes: int, plane_bytes: int) -> list[tuple[int, int, int, int]]:
    """(first sample, samples, first plane, planes) blocks over ``n`` samples of ``planes``
    planes of ``plane_bytes``: whole samples together while they fit in :data:`BLOCK_BYTES`,
    else plane ranges of one sample."""
    per = max(1, BLOCK_BYTES // max(plane_bytes, 1))
    if per >= planes:
        step = max(1, per // planes)
        return [(s, min(step, n - s), 0, planes) for s in range(0, n, step)]
    return [(s, 1, a, min(per, planes - a)) for s in range(n) for a in range(0, planes, per)]


def _pad_input(x: np.ndarray, plan: GemmPlan) -> np.ndarray:
    """``x`` (n, C, *in) on zeroed channels-last grids (n, *xlen, C), ``x[i]`` at ``pad + i``."""
    a0, a1, a2 = plan.axes
    xp = np.zeros((x.shape[0], a0.xlen, a1.xlen, a2.xlen, x.shape[1]), np.float32)
    sl = tuple(slice(a.pad, a.pad + a.in_len) for a in plan.axes)
    xp[_ALL + sl] = x.transpose(0, 2, 3, 4, 1)
    return xp


def _padded_chunks(x: np.ndarray, plan: GemmPlan) -> Iterator[tuple[slice, np.ndarray]]:
    """``x`` (n, C, *in) in chunks of samples whose padded grids fit :data:`PAD_BYTES`: each
    chunk's slice of the batch and its :func:`_pad_input`."""
    a0, a1, a2 = plan.axes
    step = _sample_chunk(x.shape[0], 4 * a0.xlen * a1.xlen * a2.xlen * x.shape[1])
    for n0 in range(0, x.shape[0], step):
        sl = slice(n0, n0 + step)
        yield sl, _pad_input(x[sl], plan)


def _plane_bytes(plan: GemmPlan, c: int, f: int) -> int:
    """Bytes of one phase plane's im2col rows and product (the union of phase ranges)."""
    return 4 * plan.axes[1].mlen * plan.axes[2].mlen * (plan.taps * c + plan.phases * f)


def _im2col(xp: np.ndarray, plan: GemmPlan, a: int, b0: int) -> np.ndarray:
    """``cols`` (rows, ``|O| * C``) of the padded samples ``xp`` for phase planes ``[a, a+b0)``
    of axis 0: ``cols[(n, u), (o, c)] = xp[n, u + pad - o, c]``."""
    a1, a2 = plan.axes[1:]
    return _im2col_box(xp, plan, (slice(a, a + b0), slice(0, a1.mlen), slice(0, a2.mlen)))


def _im2col_box(xp: np.ndarray, plan: GemmPlan, box: tuple[slice, ...]) -> np.ndarray:
    """``cols`` (rows, ``|O| * C``) of the padded samples ``xp`` over the phase indices ``u``
    in ``box`` (one slice per axis): ``cols[(n, u), (o, c)] = xp[n, u + pad - o, c]``."""
    a0, a1, a2 = plan.axes
    (u0, b0), (u1, m1), (u2, m2) = ((b.start, b.stop - b.start) for b in box)
    c = xp.shape[-1]
    cols = np.empty(
        (xp.shape[0], b0, m1, m2, len(a0.offsets), len(a1.offsets), len(a2.offsets), c),
        np.float32,
    )
    for i0, o0 in enumerate(a0.offsets):
        s0 = u0 + a0.pad - o0
        for i1, o1 in enumerate(a1.offsets):
            s1 = u1 + a1.pad - o1
            for i2, o2 in enumerate(a2.offsets):
                s2 = u2 + a2.pad - o2
                cols[:, :, :, :, i0, i1, i2, :] = xp[:, s0 : s0 + b0, s1 : s1 + m1, s2 : s2 + m2]
    return cols.reshape(-1, plan.taps * c)


def _phase_windows(plan: GemmPlan, a: int, b0: int) -> list[Window]:
    """Per phase (r0, r1, r2): the output slices (strided) and the block's phase-index slices
    that meet inside the output, for phase planes ``[a, a+b0)`` of axis 0."""
    out: list[Window] = []
    ranges = ((a, b0),) + tuple((0, ax.mlen) for ax in plan.axes[1:])
    for r in np.ndindex(*(ax.stride for ax in plan.axes)):
        ysl, usl = [], []
        for ax, ri, (u0, ub) in zip(plan.axes, r, ranges):
            s, d = ax.stride, ax.shift
            # output index s*u + ri - shift in [0, out_len)
            lo = max(u0, -(-(d - ri) // s))
            hi = min(u0 + ub, -(-(ax.out_len + d - ri) // s))
            if hi <= lo:
                break
            ysl.append(slice(s * lo + ri - d, s * (hi - 1) + ri - d + 1, s))
            usl.append(slice(lo - u0, hi - u0))
        else:
            out.append((tuple(int(v) for v in r), tuple(ysl), tuple(usl)))
    return out


# ----------------------------------------------------------------------------- the three products


def forward(
    x: np.ndarray,
    kernel: np.ndarray,
    geom: Geometry,
    y: np.ndarray,
    bias: np.ndarray | None = None,
    relu: bool = False,
) -> None:
    """``y`` (N, F, *out), any memory layout, = transposed convolution of ``x`` (N, C, *in)
    (``+ bias``, then ``max(., 0)`` when ``relu``: applied to each block while it is in cache)."""
    plan = gemm_plan(geom)
    c, f = x.shape[1], kernel.shape[3]
    wb = weight_matrix(kernel, plan)
    pb = None if bias is None else np.tile(bias.astype(np.float32), plan.phases)
    phased = per_phase(plan, c, f)
    for sl, xp in _padded_chunks(x, plan):
        if phased:
            _forward_phases(xp, plan, wb, bias, relu, y[sl])
        else:
            _forward_chunk(xp, plan, wb, pb, relu, y[sl], _plane_bytes(plan, c, f))


def _forward_chunk(
    xp: np.ndarray,
    plan: GemmPlan,
    wb: np.ndarray,
    pb: np.ndarray | None,
    relu: bool,
    y: np.ndarray,
    plane_bytes: int,
) -> None:
    """:func:`forward` of the padded samples ``xp`` into their ``y``, block by block on the
    threads."""
    blocks = _blocks(xp.shape[0], plan.axes[0].mlen, plane_bytes)

    def work(k: int, lo: int, hi: int) -> None:
        for s, ns, a, b0 in blocks[lo:hi]:
            z = _im2col(xp[s : s + ns], plan, a, b0) @ wb
            if pb is not None:
                z += pb
            if relu:
                np.maximum(z, 0, out=z)
            _scatter(z, plan, y[s : s + ns], a, b0, y.shape[1])

    _run_blocks(len(blocks), work)


# Per-phase products (below) when the union's rows exceed the phases' by this factor or more.
PER_PHASE_WASTE = 1.3
# ... and the layer has at least this many filters (narrower products run too slowly on BLAS).
PER_PHASE_MIN_FILTERS = 64


def per_phase(plan: GemmPlan, c: int, f: int) -> bool:
    """Whether the forward and kernel gradient run one product per phase rather than one over
    the union of phase ranges: only where every phase takes every offset of the union (no zero
    slots in ``Wb``: a phase's weights are ``Wb``'s columns of that phase), the union computes
    many positions no phase keeps (4^3 at stride 2 on 8^3: 9^3 rows for 8^3 per phase, 42 %
    more multiply-adds) and the products stay wide enough for BLAS."""
    if plan.phases == 1 or f < PER_PHASE_MIN_FILTERS:
        return False
    for a in plan.axes:  # some (offset, residue) slot holds no tap
        if sorted(a.tap) != [(i, r) for i in range(len(a.offsets)) for r in range(a.stride)]:
            return False
    union = math.prod(a.mlen for a in plan.axes) * plan.phases
    return union >= PER_PHASE_WASTE * phase_rows(plan)


@lru_cache(maxsize=64)
def phase_rows(plan: GemmPlan) -> int:
    """Phase indices per sample that some output position keeps, over all phases (the rows of
    the per-phase products; the union's are ``prod(mshape) * phases``). Cached: the cost model
    asks at every call of the layer."""
    windows = _phase_windows(plan, 0, plan.axes[0].mlen)
    return sum(math.prod(u.stop - u.start for u in usl) for _, _, usl in windows)


def _phase_blocks(
    plan: GemmPlan, n: int, c: int, f: int
) -> list[tuple[Window, int, int, int, int]]:
    """(phase window, first sample, samples, first plane, planes) over every phase: each
    phase's own range of phase indices, in blocks as :func:`_blocks` (planes of axis 0 counted
    from the phase's first)."""
    out = []
    for win in _phase_windows(plan, 0, plan.axes[0].mlen):
        u0, u1, u2 = win[2]
        plane_bytes = 4 * (u1.stop - u1.start) * (u2.stop - u2.start) * (plan.taps * c + 2 * f)
        for blk in _blocks(n, u0.stop - u0.start, plane_bytes):
            out.append((win, *blk))
    return out


def _phase_box(win: Window, a: int, b0: int) -> tuple[tuple[slice, ...], Index]:
    """The phase indices (one slice per axis) and output slices of planes ``[a, a+b0)`` of a
    phase's window."""
    _, ysl, usl = win
    u0, y0 = usl[0], ysl[0]
    box = (slice(u0.start + a, u0.start + a + b0), *usl[1:])
    first = y0.start + y0.step * a
    return box, (slice(first, first + y0.step * (b0 - 1) + 1, y0.step), *ysl[1:])


def _forward_phases(
    xp: np.ndarray,
    plan: GemmPlan,
    wb: np.ndarray,
    bias: np.ndarray | None,
    relu: bool,
    y: np.ndarray,
) -> None:
    """:func:`forward` of the padded samples ``xp`` into their ``y``, one product per phase and
    block: ``cols`` over the phase's own indices times ``Wb``'s columns of the phase."""
    f = y.shape[1]
    blocks = _phase_blocks(plan, xp.shape[0], xp.shape[-1], f)
    b = None if bias is None else bias.astype(np.float32)

    def work(k: int, lo: int, hi: int) -> None:
        for win, s, ns, a, b0 in blocks[lo:hi]:
            box, ysl = _phase_box(win, a, b0)
            p = int(np.ravel_multi_index(win[0], tuple(ax.stride for ax in plan.axes)))
            z = _im2col_box(xp[s : s + ns], plan, box) @ wb[:, p * f : (p + 1) * f]
            if b is not None:
                z += b
            if relu:
                np.maximum(z, 0, out=z)
            shape = (ns, *(u.stop - u.start for u in box), f)
            y[(slice(s, s + ns), slice(None)) + ysl] = z.reshape(shape).transpose(0, 4, 1, 2, 3)

    _run_blocks(len(blocks), work)


def _slab(plan: GemmPlan, a: int, b0: int) -> slice:
    """The output indices of axis 0 that phase planes ``[a, a+b0)`` reach."""
    a0 = plan.axes[0]
    return slice(max(0, a0.stride * a - a0.shift), min(a0.out_len, a0.stride * (a + b0) - a0.shift))


def _local(windows: list[Window], lo: int) -> list[Window]:
    """``windows`` with their axis-0 output slices counted from ``lo`` (within a slab)."""
    out = []
    for r, ysl, usl in windows:
        first = ysl[0]
        out.append((r, (slice(first.start - lo, first.stop - lo, first.step), *ysl[1:]), usl))
    return out


def _scatter(z: np.ndarray, plan: GemmPlan, y: np.ndarray, a: int, b0: int, f: int) -> None:
    """Block products ``z`` (rows, (p, f)) to their output positions in ``y`` (ns, F, *out).
    The phases are interleaved in a channels-last slab (runs of F contiguous floats), which is
    ``y``'s own memory when ``y`` is laid out channels-last, else copied over once."""
    a0, a1, a2 = plan.axes
    z8 = z.reshape(y.shape[0], b0, a1.mlen, a2.mlen, a0.stride, a1.stride, a2.stride, f)
    sl = _slab(plan, a, b0)
    target = y[:, :, sl].transpose(0, 2, 3, 4, 1)
    slab = target if target.strides[-1] == target.itemsize else np.empty(target.shape, np.float32)
    for r, ysl, usl in _local(_phase_windows(plan, a, b0), sl.start):
        slab[_ALL + ysl] = z8[_ALL + usl + r]
    if slab is not target:
        target[...] = slab


def _gather(dy: np.ndarray, plan: GemmPlan, a: int, b0: int) -> np.ndarray:
    """The block's ``dZ`` (rows, (p, f)) from ``dy`` (ns, F, *out): zero where a phase index
    falls outside the output; read through a channels-last copy of the block's slab (``dy``'s
    own memory when it is laid out so)."""
    a0, a1, a2 = plan.axes
    f = dy.shape[1]
    shape = (dy.shape[0], b0, a1.mlen, a2.mlen, a0.stride, a1.stride, a2.stride, f)
    dz = np.zeros(shape, np.float32)
    sl = _slab(plan, a, b0)
    slab = np.ascontiguousarray(dy[:, :, sl].transpose(0, 2, 3, 4, 1))
    for r, ysl, usl in _local(_phase_windows(plan, a, b0), sl.start):
        dz[_ALL + usl + r] = slab[_ALL + ysl]
    return dz.reshape(-1, plan.phases * f)


def backward_kernel(
    x: np.ndarray, dy: np.ndarray, geom: Geometry, kernel_shape: tuple[int, ...]
) -> np.ndarray:
    """Kernel gradient (Keras layout): ``dWb = sum over blocks of cols^T @ dZ``, each block's
    float32 product added to one of a few float64 partial sums, which are added in order (how
    many, and which blocks each takes, depend on the geometry alone: deterministic for any
    thread count)."""
    plan = gemm_plan(geom)
    c, f = x.shape[1], kernel_shape[3]
    shape = (plan.taps * c, plan.phases * f)
    total = np.zeros(shape, np.float64)
    phased = per_phase(plan, c, f)
    for sl, xp in _padded_chunks(x, plan):
        if phased:
            total += _kernel_grad_phases(xp, dy[sl], plan, shape)
        else:
            total += _kernel_grad_chunk(xp, dy[sl], plan, shape, _plane_bytes(plan, c, f))
    return kernel_from_matrix(total, plan, kernel_shape)


def _kernel_grad_phases(
    xp: np.ndarray, dy: np.ndarray, plan: GemmPlan, shape: tuple[int, int]
) -> np.ndarray:
    """``dWb`` (float64) of the padded samples ``xp`` and their ``dy``, one product per phase
    and block (``cols^T`` times the phase's output gradient, read straight from ``dy``) into
    ``dWb``'s columns of the phase; partial sums as :func:`_kernel_grad_chunk`."""
    f = dy.shape[1]
    blocks = _phase_blocks(plan, xp.shape[0], xp.shape[-1], f)
    acc = np.zeros((_partial_sums(len(blocks), shape), *shape), np.float64)

    def work(k: int, lo: int, hi: int) -> None:
        for win, s, ns, a, b0 in blocks[lo:hi]:
            box, ysl = _phase_box(win, a, b0)
            p = int(np.ravel_multi_index(win[0], tuple(ax.stride for ax in plan.axes)))
            part = dy[(slice(s, s + ns), slice(None)) + ysl]
            dz = np.ascontiguousarray(part.transpose(0, 2, 3, 4, 1)).reshape(-1, f)
            acc[k, :, p * f : (p + 1) * f] += _im2col_box(xp[s : s + ns], plan, box).T @ dz

    _run_blocks(len(blocks), work, acc.shape[0])
    total = acc[0]
    for part in acc[1:]:
        total += part
    return total


def _kernel_grad_chunk(
    xp: np.ndarray, dy: np.ndarray, plan: GemmPlan, shape: tuple[int, int], plane_bytes: int
) -> np.ndarray:
    """``dWb`` (float64) of the padded samples ``xp`` and their ``dy``: the blocks' products
    on the threads, into partial sums added in order."""
    blocks = _blocks(xp.shape[0], plan.axes[0].mlen, plane_bytes)
    acc = np.zeros((_partial_sums(len(blocks), shape), *shape), np.float64)

    def work(k: int, lo: int, hi: int) -> None:
        for s, ns, a, b0 in blocks[lo:hi]:
            cols = _im2col(xp[s : s + ns], plan, a, b0)
            acc[k] += cols.T @ _gather(dy[s : s + ns], plan, a, b0)

    _run_blocks(len(blocks), work, acc.shape[0])
    total = acc[0]
    for part in acc[1:]:
        total += part
    return total


def _pad_output_grad(dy: np.ndarray, plan: GemmPlan) -> np.ndarray:
    """``dZ`` of samples ``dy`` (n, F, *out) laid out by ``u - offsets[0]`` over ``dlen`` per
    axis: (n, *dlen, P*F), zero where no output position is."""
    a0, a1, a2 = plan.axes
    f = dy.shape[1]
    shape = (dy.shape[0], a0.dlen, a1.dlen, a2.dlen, a0.stride, a1.stride, a2.stride, f)
    dz = np.zeros(shape, np.float32)
    for r, ysl, usl in _phase_windows(plan, 0, a0.mlen):
        src, dst = [], []
        for ax, ys, us in zip(plan.axes, ysl, usl):
            lo = max(ax.offsets[0], us.start)
            hi = min(us.stop, ax.dlen + ax.offsets[0])
            if hi <= lo:
                break
            s, first = ax.stride, ys.start + ax.stride * (lo - us.start)
            src.append(slice(first, first + s * (hi - lo - 1) + 1, s))
            dst.append(slice(lo - ax.offsets[0], hi - ax.offsets[0]))
        else:
            dz[_ALL + tuple(dst) + r] = dy[_ALL + _ALL + tuple(src)].transpose(0, 2, 3, 4, 1)
    return dz.reshape(dy.shape[0], a0.dlen, a1.dlen, a2.dlen, plan.phases * f)


def backward_input(dy: np.ndarray, kernel: np.ndarray, geom: Geometry, dx: np.ndarray) -> None:
    """``dx`` (N, C, *in) = ``sum_{(o, p, f)} dZ[(n, i + o), (p, f)] * Wb[(o, c), (p, f)]``."""
    plan = gemm_plan(geom)
    a0, a1, a2 = plan.axes
    c, f = kernel.shape[4], kernel.shape[3]
    pf = plan.phases * f
    wb = weight_matrix(kernel, plan).reshape(plan.taps, c, pf)
    wbt = np.ascontiguousarray(wb.transpose(0, 2, 1)).reshape(plan.taps * pf, c)
    n = dy.shape[0]
    step = _sample_chunk(n, 4 * a0.dlen * a1.dlen * a2.dlen * pf)
    plane_bytes = 4 * a1.in_len * a2.in_len * (plan.taps * pf + c)
    for n0 in range(0, n, step):
        dz = _pad_output_grad(dy[n0 : n0 + step], plan)
        _input_grad_chunk(dz, plan, wbt, dx[n0 : n0 + step], plane_bytes)


def _input_grad_chunk(
    dz: np.ndarray, plan: GemmPlan, wbt: np.ndarray, dx: np.ndarray, plane_bytes: int
) -> None:
    """:func:`backward_input` of the padded ``dz`` of a few samples into their ``dx``, block
    by block on the threads."""
    blocks = _blocks(dz.shape[0], plan.axes[0].in_len, plane_bytes)

    def work(k: int, lo: int, hi: int) -> None:
        for s, ns, a, b0 in blocks[lo:hi]:
            _input_grad_block(dz, s, ns, a, b0, plan, wbt, dx[s : s + ns])

    _run_blocks(len(blocks), work)


def _input_grad_block(
    dz: np.ndarray,
    s: int,
    ns: int,
    a: int,
    b0: int,
    plan: GemmPlan,
    wbt: np.ndarray,
    dx: np.ndarray,
) -> None:
    """Input planes ``[a, a+b0)`` of samples ``[s, s+ns)`` of the padded ``dz`` into ``dx``
    (ns, C, *in): one im2col of ``dZ`` and one product with ``Wb^T``."""
    a0, a1, a2 = plan.axes
    c, pf = wbt.shape[1], dz.shape[-1]
    cols = np.empty((ns, b0, a1.in_len, a2.in_len, len(a0.offsets), len(a1.offsets),
                     len(a2.offsets), pf), np.float32)  # fmt: skip
    for i0, o0 in enumerate(a0.offsets):
        for i1, o1 in enumerate(a1.offsets):
            for i2, o2 in enumerate(a2.offsets):
                d0, d1, d2 = o0 - a0.offsets[0], o1 - a1.offsets[0], o2 - a2.offsets[0]
                cols[:, :, :, :, i0, i1, i2, :] = dz[
                    s : s + ns,
                    a + d0 : a + d0 + b0,
                    d1 : d1 + a1.in_len,
                    d2 : d2 + a2.in_len,
                ]
    d = cols.reshape(-1, plan.taps * pf) @ wbt
    dx[:, :, a : a + b0] = d.reshape(ns, b0, a1.in_len, a2.in_len, c).transpose(0, 4, 1, 2, 3)


def working_bytes(geom: Geometry, c: int, f: int, training: bool = False) -> int:
    """An upper bound of the bytes this module's products allocate beside their inputs and
    outputs: the padded copy of a sample chunk, one block's im2col rows and products, ``Wb``
    (twice while it is built and transposed) and, for the kernel gradient, the float32 product
    and float64 sums of ``dWb``; the largest of forward, kernel gradient and input gradient."""
    from . import cpu_kernels  # the thread count (Numba itself is not needed)

    plan = gemm_plan(geom)
    a0, a1, a2 = plan.axes
    k, pf = plan.taps * c, plan.phases * f
    weights = 4 * k * pf
    kernel = 4 * math.prod(a.size for a in geom.axes) * f * c
    xpad = max(PAD_BYTES, 4 * a0.xlen * a1.xlen * a2.xlen * c)
    threads = int(cpu_kernels.THREADS)
    block = threads * max(BLOCK_BYTES, 4 * a1.mlen * a2.mlen * (k + pf))
    fwd = FIXED_BYTES + xpad + block + 2 * weights + 4 * pf
    if not training:
        return fwd
    sums = 8 * k * pf * (1 + min(PARTIAL_SUMS, max(1, PARTIAL_SUMS_BYTES // (8 * k * pf))))
    grad_kernel = xpad + block + threads * weights + sums + 2 * kernel
    dzpad = max(PAD_BYTES, 4 * a0.dlen * a1.dlen * a2.dlen * pf)
    grad_input = dzpad + threads * max(
        BLOCK_BYTES, 4 * a1.in_len * a2.in_len * (plan.taps * pf + c)
    )
    return max(fwd, FIXED_BYTES + grad_kernel, FIXED_BYTES + grad_input + 3 * weights)
