"""Compiled CPU kernels (Numba) for the transposed 3-D convolution; optional.

Numba is an optional dependency: :data:`AVAILABLE` is False when it does not import (or when the
environment sets ``CONV3DT_NO_NUMBA=1``), and :mod:`compute.conv3d_transpose_ops` then keeps its
NumPy path. Kernels are compiled on first use (about 20 s, once) and cached on disk next to this
file (or in ``NUMBA_CACHE_DIR``). Each kernel has one signature: arrays arrive as flat float32 views
plus element strides, so no axis order or layout triggers another compilation. Samples are split
into ranges run on :data:`THREADS` Python threads (the kernels release the GIL; default: the CPUs
this process may use, or ``CONV3DT_THREADS``).

Every kernel works on a :class:`~compute.conv3d_transpose_ops.PhasePlan` given as plain integer
arrays. The plan splits the transposed convolution into ``stride**3`` dense stride-1 *phases*
(sub-pixel decomposition: no multiplication by inserted zeros) and reorders the spatial axes: the
*outer* one is walked plane by plane, skipping the taps that fall outside the input, and the two
inner ones form a flat plane where every tap is one constant flat offset. The inner loops therefore
run over long contiguous ranges whatever the volume's shape (W1's last axis is 3 long), and
multiply few padding zeros. Work is split over samples (parallel); every temporary is per sample, so
the extra memory is a few samples' planes, never the batch.

The forward has a second decomposition, by rows (:func:`row_forward`, on a
:class:`~compute.conv3d_transpose_ops.RowPlan`), taken where it multiplies less padding: one axis
is held as whole vectors of *input* positions, so a tile multiplies no padding at all; each
output row sums the partial rows of its row-axis taps at their offsets, and is written to ``y``
with the bias and relu (stride 2: both residues' vectors interleaved). A third, by filter vectors
(:func:`filter_forward`), runs layers with stride 1 and 3 taps along the last axis and filters in
sixteens: a tile holds 16 filters (one vector) at 18 output positions, each input position
broadcast once into 3 multiply-adds, so no output pass re-reads partial rows; the block is
transposed in registers as it is written.

Plan arrays (``p`` a phase, ``t`` a tap sorted by phase), axes in plan order; the columns of
``dims`` and ``ph`` are read through the names :mod:`compute.conv3d_transpose_ops` defines:
    dims    int64[DIMS_LEN]: D_C, D_F (channels, filters), D_IN0..2, D_OUT0..2 (input and output
            lengths), D_G2 (plane row length), D_PLANE (plane size), D_LEAD (largest in-plane tap
            offset), D_S0..2 (strides), D_XQ (flat length covering the input in a plane), D_M0
            (most output planes of a phase)
    crop    int64[3]: the Keras crop start per axis
    ph      int64[P, PH_LEN]: PH_FIRST (first tap), PH_COUNT (tap count), PH_R0..2 (residues),
            PH_MLO0..2 (first phase index), PH_N0..2 (count of output positions) per axis
    qlo     int64[P]: flat in-plane index of the phase's first output position
    qlen    int64[P]: flat length covering the phase's output positions in a plane
    toff    int64[T]: in-plane flat offset of each tap
    tout    int64[T]: outer-axis offset of each tap
    tph     int64[T]: phase of each tap
"""

from __future__ import annotations

import collections
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from .conv3d_transpose_ops import (
    A_COUNT,
    A_FIRST,
    A_MLO,
    A_N,
    D_C,
    D_F,
    D_G2,
    D_IN0,
    D_IN1,
    D_IN2,
    D_LEAD,
    D_M0,
    D_PLANE,
    D_S0,
    D_S1,
    D_S2,
    D_XQ,
    PH_COUNT,
    PH_FIRST,
    PH_MLO0,
    PH_MLO1,
    PH_MLO2,
    PH_N0,
    PH_N1,
    PH_N2,
    PH_R0,
    PH_R1,
    PH_R2,
    R_C,
    R_F,
    R_IN0,
    R_IN1,
    R_IN2,
    R_K1,
    R_K2,
    R_KG,
    R_L,
    R_OUT2,
    R_P,
    R_PAD,
    R_PAIRS,
    R_PLANES,
    R_RL,
    R_ROWS,
    R_S0,
    R_S1,
    R_S2,
    R_V,
    V_C,
    V_CROP0,
    V_CROP1,
    V_CROP2,
    V_D0,
    V_D1,
    V_F,
    V_IN0,
    V_IN1,
    V_IN2,
    V_K0,
    V_K1,
    V_OUT0,
    V_OUT1,
    V_OUT2,
    V_S0,
    V_S1,
)
from .simd import (
    LANES,
    fload,
    fstore,
    vadd,
    vadd_f64,
    vfma,
    vgather,
    vload,
    vrelu,
    vsplat,
    vsplat_at,
    vstore,
    vstore_lanes,
    vsub,
    vzero,
    vzip_hi,
    vzip_lo,
)


def _import_numba() -> Any:
    """The ``numba`` module, or None when it is absent or fails to import (with this NumPy, say)."""
    try:
        import numba
    except Exception:  # pragma: no cover - Numba absent, or failing to import with this NumPy
        return None
    return numba


numba = _import_numba()
AVAILABLE = numba is not None and os.environ.get("CONV3DT_NO_NUMBA", "") in ("", "0")

# Flat positions the kernel gradient's dot products take per block (its rows stay in L1).
BLOCK = 512
# Flat positions of one forward tile: two vectors, for 8 (or 4) filters at once.
TILE = 2 * LANES
# (tap, row) pairs a forward tile takes in one pass (their source stretches: ~24 KiB, in L1).
TILE_ROWS = 128
# Floats in one vector register (AVX-512): the kernel gradient's dot products run over whole
# vectors (no scalar tail), so its planes carry this many zero floats of slack after each row.
VECTOR = 16
_F = TypeVar("_F", bound=Callable[..., Any])


def _compiled(
    fn: _F, fastmath: Any = True, inline: str = "never", counts: bool = True, errors: str = "python"
) -> _F:
    """``fn`` compiled by Numba on its first call (cached on disk, no bounds checks, the GIL
    released), or ``fn`` itself, interpreted, without Numba. ``counts=False``: no reference
    counting of its arrays (Numba's ``_nrt=False``); ``errors``: Numba's ``error_model``."""
    if numba is None:
        return fn
    return numba.njit(
        cache=True,
        fastmath=fastmath,
        boundscheck=False,
        nogil=True,
        inline=inline,
        _nrt=counts,
        error_model=errors,
    )(fn)


def _jit(fn: _F) -> _F:
    """:func:`_compiled` with fast maths."""
    return _compiled(fn)


def _jit_exact(fn: _F) -> _F:
    """:func:`_compiled` with no fast maths: every operation rounded as NumPy rounds it (no fused
    multiply-adds, no reordering), for updates that must keep the NumPy path's bits. A division
    by zero gives NumPy's inf or NaN (Numba's "numpy" error model): the check for Python's
    exception kept the loop from being vectorized (Adam's update: 7 times slower)."""
    return _compiled(fn, fastmath=False, errors="numpy")


def _jit_tile(fn: _F) -> _F:
    """:func:`_jit` for the tiles and row passes the kernels call thousands of times a sample:
    no reference counting. They allocate nothing and keep no array (their caller holds every
    one), but Numba counted references to their array arguments and views all the same: each
    call of the forward's filter-vector tile made 18 atomic count updates, spilling its vector
    registers around each, about 6 % of D4's forward."""
    return _compiled(fn, counts=False)


def _jit_inline(fn: _F) -> _F:
    """:func:`_jit`, inlined into its callers by Numba itself (LLVM leaves a small function
    taking arrays as a call: its arguments, 7 words an array, cost more than its work)."""
    return _compiled(fn, inline="always")


def _jit_ieee(fn: _F) -> _F:
    """:func:`_jit` with only the fast maths that keep NaN, infinities and signed zeros (sums
    may be reordered, multiply-adds fused)."""
    return _compiled(fn, fastmath={"reassoc", "contract"})


@_jit_tile
def _tile8(
    dst: np.ndarray,
    ld: int,
    q0: int,
    k: int,
    k_n: int,
    src: np.ndarray,
    offs: np.ndarray,
    wrow: np.ndarray,
    ns: int,
    wr: np.ndarray,
    s_row: int,
    j_from: int,
    j_to: int,
    add: bool,
) -> None:
    """``dst[(k+i)*ld + q0 + b] (+)= sum_u sum_j wr[wrow[u] + j, k+i] * src[offs[u] + j*s_row +
    q0 + b]`` over taps ``u < ns`` and rows ``j`` in ``[j_from, j_to)`` for 8 filters ``i`` and
    32 positions ``b`` (added to what ``dst`` holds when ``add``): sixteen vector sums held in
    registers while every (tap, row) pair passes (two row loads and eight broadcast weights
    feed 16 fused multiply-adds). Filters past ``k_n`` are computed (zero weights), not stored."""
    a0, a1 = _load_pair(dst, k * ld + q0, add)
    b0, b1 = _load_pair(dst, (k + 1) * ld + q0, add and k + 1 < k_n)
    c0, c1 = _load_pair(dst, (k + 2) * ld + q0, add and k + 2 < k_n)
    d0, d1 = _load_pair(dst, (k + 3) * ld + q0, add and k + 3 < k_n)
    e0, e1 = _load_pair(dst, (k + 4) * ld + q0, add and k + 4 < k_n)
    f0, f1 = _load_pair(dst, (k + 5) * ld + q0, add and k + 5 < k_n)
    g0, g1 = _load_pair(dst, (k + 6) * ld + q0, add and k + 6 < k_n)
    h0, h1 = _load_pair(dst, (k + 7) * ld + q0, add and k + 7 < k_n)
    wf = wr.reshape(-1)
    cols = wr.shape[1]
    for u in range(ns):
        o = offs[u] + q0 + j_from * s_row
        i = (wrow[u] + j_from) * cols + k
        for _ in range(j_to - j_from):
            x0 = vload(src, o)
            x1 = vload(src, o + LANES)
            v = vsplat_at(wf, i)
            a0, a1 = vfma(x0, v, a0), vfma(x1, v, a1)
            v = vsplat_at(wf, i + 1)
            b0, b1 = vfma(x0, v, b0), vfma(x1, v, b1)
            v = vsplat_at(wf, i + 2)
            c0, c1 = vfma(x0, v, c0), vfma(x1, v, c1)
            v = vsplat_at(wf, i + 3)
            d0, d1 = vfma(x0, v, d0), vfma(x1, v, d1)
            v = vsplat_at(wf, i + 4)
            e0, e1 = vfma(x0, v, e0), vfma(x1, v, e1)
            v = vsplat_at(wf, i + 5)
            f0, f1 = vfma(x0, v, f0), vfma(x1, v, f1)
            v = vsplat_at(wf, i + 6)
            g0, g1 = vfma(x0, v, g0), vfma(x1, v, g1)
            v = vsplat_at(wf, i + 7)
            h0, h1 = vfma(x0, v, h0), vfma(x1, v, h1)
            o += s_row
            i += cols
    _store_pair(dst, k * ld + q0, a0, a1)
    if k + 1 < k_n:
        _store_pair(dst, (k + 1) * ld + q0, b0, b1)
    if k + 2 < k_n:
        _store_pair(dst, (k + 2) * ld + q0, c0, c1)
    if k + 3 < k_n:
        _store_pair(dst, (k + 3) * ld + q0, d0, d1)
    if k + 4 < k_n:
        _store_pair(dst, (k + 4) * ld + q0, e0, e1)
    if k + 5 < k_n:
        _store_pair(dst, (k + 5) * ld + q0, f0, f1)
    if k + 6 < k_n:
        _store_pair(dst, (k + 6) * ld + q0, g0, g1)
    if k + 7 < k_n:
        _store_pair(dst, (k + 7) * ld + q0, h0, h1)


@_jit_tile
def _tile4(
    dst: np.ndarray,
    ld: int,
    q0: int,
    k: int,
    k_n: int,
    src: np.ndarray,
    offs: np.ndarray,
    wrow: np.ndarray,
    ns: int,
    wr: np.ndarray,
    s_row: int,
    j_from: int,
    j_to: int,
    add: bool,
) -> None:
    """:func:`_tile8` for 4 filters (the last ones, or all of a layer with few)."""
    a0, a1 = _load_pair(dst, k * ld + q0, add)
    b0, b1 = _load_pair(dst, (k + 1) * ld + q0, add and k + 1 < k_n)
    c0, c1 = _load_pair(dst, (k + 2) * ld + q0, add and k + 2 < k_n)
    d0, d1 = _load_pair(dst, (k + 3) * ld + q0, add and k + 3 < k_n)
    wf = wr.reshape(-1)
    cols = wr.shape[1]
    for u in range(ns):
        o = offs[u] + q0 + j_from * s_row
        i = (wrow[u] + j_from) * cols + k
        for _ in range(j_to - j_from):
            x0 = vload(src, o)
            x1 = vload(src, o + LANES)
            v = vsplat_at(wf, i)
            a0, a1 = vfma(x0, v, a0), vfma(x1, v, a1)
            v = vsplat_at(wf, i + 1)
            b0, b1 = vfma(x0, v, b0), vfma(x1, v, b1)
            v = vsplat_at(wf, i + 2)
            c0, c1 = vfma(x0, v, c0), vfma(x1, v, c1)
            v = vsplat_at(wf, i + 3)
            d0, d1 = vfma(x0, v, d0), vfma(x1, v, d1)
            o += s_row
            i += cols
    _store_pair(dst, k * ld + q0, a0, a1)
    if k + 1 < k_n:
        _store_pair(dst, (k + 1) * ld + q0, b0, b1)
    if k + 2 < k_n:
        _store_pair(dst, (k + 2) * ld + q0, c0, c1)
    if k + 3 < k_n:
        _store_pair(dst, (k + 3) * ld + q0, d0, d1)


@_jit_tile
def _tile8_half(
    dst: np.ndarray,
    ld: int,
    q0: int,
    k: int,
    k_n: int,
    src: np.ndarray,
    offs: np.ndarray,
    wrow: np.ndarray,
    ns: int,
    wr: np.ndarray,
    s_row: int,
    j_from: int,
    j_to: int,
    add: bool,
) -> None:
    """:func:`_tile8` for 16 positions: a plane's last stretch when it is one vector or less
    (small planes: D3's 71 positions take 32 + 32 + 16, not 96)."""
    zero = vzero()
    a = vload(dst, k * ld + q0) if add else zero
    b = vload(dst, (k + 1) * ld + q0) if add and k + 1 < k_n else zero
    c = vload(dst, (k + 2) * ld + q0) if add and k + 2 < k_n else zero
    d = vload(dst, (k + 3) * ld + q0) if add and k + 3 < k_n else zero
    e = vload(dst, (k + 4) * ld + q0) if add and k + 4 < k_n else zero
    f = vload(dst, (k + 5) * ld + q0) if add and k + 5 < k_n else zero
    g = vload(dst, (k + 6) * ld + q0) if add and k + 6 < k_n else zero
    h = vload(dst, (k + 7) * ld + q0) if add and k + 7 < k_n else zero
    wf = wr.reshape(-1)
    cols = wr.shape[1]
    for u in range(ns):
        o = offs[u] + q0 + j_from * s_row
        i = (wrow[u] + j_from) * cols + k
        for _ in range(j_to - j_from):
            x = vload(src, o)
            a, b = vfma(x, vsplat_at(wf, i), a), vfma(x, vsplat_at(wf, i + 1), b)
            c, d = vfma(x, vsplat_at(wf, i + 2), c), vfma(x, vsplat_at(wf, i + 3), d)
            e, f = vfma(x, vsplat_at(wf, i + 4), e), vfma(x, vsplat_at(wf, i + 5), f)
            g, h = vfma(x, vsplat_at(wf, i + 6), g), vfma(x, vsplat_at(wf, i + 7), h)
            o += s_row
            i += cols
    vstore(dst, k * ld + q0, a)
    for i, v in enumerate((b, c, d, e, f, g, h)):
        if k + 1 + i < k_n:
            vstore(dst, (k + 1 + i) * ld + q0, v)


@_jit
def _load_pair(dst: np.ndarray, i: int, load: bool) -> tuple[Any, Any]:
    """``dst[i : i + 32]`` as two vectors when ``load``, else zeros."""
    if load:
        return vload(dst, i), vload(dst, i + LANES)
    return vzero(), vzero()


@_jit
def _store_pair(dst: np.ndarray, i: int, v0: Any, v1: Any) -> None:
    vstore(dst, i, v0)
    vstore(dst, i + LANES, v1)


@_jit_tile
def _gather(
    dst: np.ndarray,
    k_n: int,
    ld: int,
    qlen: int,
    src: np.ndarray,
    tsel: np.ndarray,
    tsrc: np.ndarray,
    nsel: int,
    toff: np.ndarray,
    wr: np.ndarray,
    base: int,
    lo: int,
    hi: int,
    offs: np.ndarray,
    wrow: np.ndarray,
) -> None:
    """``dst[k*ld + q] = sum_u sum_j wr[t*J + j, k] * src[tsrc[u], j, base + q + toff[t]]``,
    ``t = tsel[u]``, over the ``nsel`` selected taps, for ``k < k_n`` and ``q`` in ``[0, qlen)``
    rounded up to whole tiles (``dst`` flat, rows of ``ld >= qlen`` rounded up to :data:`TILE`;
    ``src`` (planes, J, row) has a tile of slack after its last element in memory; ``wr`` is
    (T*J, k_n rounded up to 8), zero past ``k_n``; ``offs`` and ``wrow`` scratch of ``nsel``).

    Tile by tile of :data:`TILE` positions, only the taps whose source stretch meets the rows'
    nonzero range ``[lo, hi)`` are summed (the others would add zeros read from the padding)."""
    j_n = src.shape[1]
    s_plane = src.shape[1] * src.shape[2]
    s_row = src.shape[2]
    flat_src = src.reshape(-1)
    for q0 in range(0, qlen, TILE):
        width = LANES if qlen - q0 <= LANES else TILE  # a last stretch of <= 16: one vector
        ns = 0
        for u in range(nsel):
            s = base + toff[tsel[u]] + q0
            if s + width > lo and s < hi:
                offs[ns] = tsrc[u] * s_plane + base + toff[tsel[u]]
                wrow[ns] = tsel[u] * j_n
                ns += 1
        # Rows in passes of about TILE_ROWS (tap, row) pairs, every filter group per pass: the
        # pass's stretches of the source (3 cache lines each) stay in L1 for all the groups.
        step = max(1, min(j_n, TILE_ROWS // max(ns, 1)))
        for j0 in range(0, j_n, step):
            j1 = min(j_n, j0 + step)
            for k in range(0, k_n, 8) if width == LANES else range(0):
                _tile8_half(
                    dst, ld, q0, k, k_n, flat_src, offs, wrow, ns, wr, s_row, j0, j1, j0 > 0
                )
            k = 0
            while k < k_n and width == TILE:
                if k_n - k > 4:
                    _tile8(dst, ld, q0, k, k_n, flat_src, offs, wrow, ns, wr, s_row, j0, j1, j0 > 0)
                    k += 8
                else:
                    _tile4(dst, ld, q0, k, k_n, flat_src, offs, wrow, ns, wr, s_row, j0, j1, j0 > 0)
                    k += 4


# Data movement between the arrays (any axis order, through element strides) and the planes, row
# by row. When the outer (plane) axis varies fastest in the array (W1: planes interleave element by
# element), the plane loop sits just outside the row copy so each stretch of the array stays in L1
# while every plane takes its part; otherwise planes are walked one after the other.


@_jit
def _embed_input(xf: np.ndarray, xs: np.ndarray, n: int, xe: np.ndarray, dims: np.ndarray) -> None:
    """Sample ``n`` of ``x`` (flat ``xf``, element strides ``xs`` of (N, C, *in)) onto the zeroed
    planes ``xe`` (in0, C, lead + plane)."""
    c_n, i0, i1, i2 = dims[D_C], dims[D_IN0], dims[D_IN1], dims[D_IN2]
    g2, lead = dims[D_G2], dims[D_LEAD]
    step = xs[4]
    flat = xe.reshape(-1)
    if xs[2] < xs[3]:
        for c in range(c_n):
            for b in range(i1):
                base = lead + b * g2
                src0 = n * xs[0] + c * xs[1] + b * xs[3]
                for a in range(i0):
                    dst = (a * c_n + c) * xe.shape[2] + base
                    _move_strided(xf, src0 + a * xs[2], step, flat, dst, 1, i2)
    elif step == 1 and i2 >= LANES:  # contiguous rows of whole vectors
        for a in range(i0):
            for c in range(c_n):
                src0 = n * xs[0] + c * xs[1] + a * xs[2]
                dst0 = (a * c_n + c) * xe.shape[2] + lead
                for b in range(i1):
                    _move(xf, src0 + b * xs[3], flat, dst0 + b * g2, i2)
    else:
        for a in range(i0):
            for c in range(c_n):
                src0 = n * xs[0] + c * xs[1] + a * xs[2]
                dst0 = (a * c_n + c) * xe.shape[2] + lead
                for b in range(i1):
                    _move_strided(xf, src0 + b * xs[3], step, flat, dst0 + b * g2, 1, i2)


@_jit
def _move_act(
    src: np.ndarray, s: int, dst: np.ndarray, d: int, n: int, bias: float, relu: bool
) -> None:
    """:func:`_move` plus ``bias``, then relu when asked (NaN kept, as NumPy's ``maximum``):
    the layer's bias and relu fused into the forward's last pass."""
    one, b = vsplat(np.float32(1.0)), vsplat(np.float32(bias))
    w = 0
    while w + LANES < n:
        v = vfma(vload(src, s + w), one, b)  # x * 1 + b: one rounding, the sum's
        vstore(dst, d + w, vrelu(v) if relu else v)
        w += LANES
    v = vfma(vload(src, s + n - LANES), one, b)
    vstore(dst, d + n - LANES, vrelu(v) if relu else v)


@_jit
def _move_strided(
    src: np.ndarray, s: int, s_step: int, dst: np.ndarray, d: int, d_step: int, n: int
) -> None:
    """``dst[d + i*d_step] = src[s + i*s_step]`` for ``i < n`` (flat float32 arrays), element by
    element with no views and no index checks (the rows are short: a view per row cost more
    than the copy)."""
    for i in range(n):
        fstore(dst, d + i * d_step, fload(src, s + i * s_step))


@_jit
def _move_act_strided(
    src: np.ndarray, s: int, dst: np.ndarray, d: int, step: int, n: int, bias: float, relu: bool
) -> None:
    """:func:`_move_act` from ``src[s : s + n]`` to ``dst[d : d + n*step : step]`` (flat float32
    arrays), element by element with no views and no index checks."""
    for i in range(n):
        v = fload(src, s + i) + bias
        fstore(dst, d + i * step, np.float32(0.0) if relu and v < 0 else v)


@_jit
def _move(src: np.ndarray, s: int, dst: np.ndarray, d: int, n: int) -> None:
    """``dst[d : d + n] = src[s : s + n]`` for flat float32 arrays and ``n >= 16``: whole
    vectors, the last one overlapping the one before (no view per row, no scalar tail)."""
    w = 0
    while w + LANES < n:
        vstore(dst, d + w, vload(src, s + w))
        w += LANES
    vstore(dst, d + n - LANES, vload(src, s + n - LANES))


@_jit
def _embed_output(
    df: np.ndarray,
    ds: np.ndarray,
    n: int,
    dye: np.ndarray,
    dims: np.ndarray,
    crop: np.ndarray,
    ph: np.ndarray,
) -> None:
    """Sample ``n`` of ``dy`` (flat ``df``, strides ``ds`` of (N, F, *out)) split into phase planes
    ``dye`` (P*m0, F, plane + lead)."""
    f_n, g2, m0 = dims[D_F], dims[D_G2], dims[D_M0]
    st0, st1, st2 = dims[D_S0], dims[D_S1], dims[D_S2]
    step, step_a = st2 * ds[4], st0 * ds[2]
    flat = dye.reshape(-1)
    for p in range(ph.shape[0]):
        if ph[p, PH_COUNT] == 0:
            continue
        n0, n1, n2 = ph[p, PH_N0], ph[p, PH_N1], ph[p, PH_N2]
        src_p = n * ds[0] + (st0 * ph[p, PH_MLO0] + ph[p, PH_R0] - crop[0]) * ds[2]
        src_p += (st2 * ph[p, PH_MLO2] + ph[p, PH_R2] - crop[2]) * ds[4]
        if ds[2] < ds[3]:
            for f in range(f_n):
                for b in range(n1):
                    mb = ph[p, PH_MLO1] + b
                    base = mb * g2 + ph[p, PH_MLO2]
                    src0 = src_p + f * ds[1] + (st1 * mb + ph[p, PH_R1] - crop[1]) * ds[3]
                    for a in range(n0):
                        dst = ((p * m0 + a) * f_n + f) * dye.shape[2] + base
                        _move_strided(df, src0 + a * step_a, step, flat, dst, 1, n2)
        else:
            for a in range(n0):
                for f in range(f_n):
                    for b in range(n1):
                        mb = ph[p, PH_MLO1] + b
                        base = mb * g2 + ph[p, PH_MLO2]
                        src = src_p + a * step_a + f * ds[1]
                        src += (st1 * mb + ph[p, PH_R1] - crop[1]) * ds[3]
                        dst = ((p * m0 + a) * f_n + f) * dye.shape[2] + base
                        _move_strided(df, src, step, flat, dst, 1, n2)


@_jit_tile
def _scatter_phase(
    buf: np.ndarray,
    yf: np.ndarray,
    ys: np.ndarray,
    n: int,
    p: int,
    dims: np.ndarray,
    crop: np.ndarray,
    ph: np.ndarray,
    qlo: np.ndarray,
    bias: np.ndarray,
    relu: bool,
    a_from: int,
    a_to: int,
) -> None:
    """Phase ``p``'s planes ``buf[a_from:a_to]`` (of (n0, F, qlen)) to their output positions in
    ``y`` (flat ``yf``, strides ``ys`` of (N, F, *out)), plus ``bias[f]`` and through relu when
    asked (``bias`` of length F: zeros when the layer has none)."""
    f_n, g2 = dims[D_F], dims[D_G2]
    st0, st1, st2 = dims[D_S0], dims[D_S1], dims[D_S2]
    n1, n2 = ph[p, PH_N1], ph[p, PH_N2]
    step_a, step_w = st0 * ys[2], st2 * ys[4]
    flat_buf = buf.reshape(-1)
    dst_p = n * ys[0] + (st0 * ph[p, PH_MLO0] + ph[p, PH_R0] - crop[0]) * ys[2]
    dst_p += (st2 * ph[p, PH_MLO2] + ph[p, PH_R2] - crop[2]) * ys[4]
    if ys[2] < ys[3]:
        for f in range(f_n):
            for b in range(n1):
                mb = ph[p, PH_MLO1] + b
                base = mb * g2 + ph[p, PH_MLO2] - qlo[p]
                dst = dst_p + f * ys[1] + (st1 * mb + ph[p, PH_R1] - crop[1]) * ys[3]
                for a in range(a_from, a_to):
                    d = dst + a * step_a
                    if step_w == 1 and n2 >= LANES:
                        off = (a * f_n + f) * buf.shape[2] + base
                        _move_act(flat_buf, off, yf, d, n2, bias[f], relu)
                    else:
                        off = (a * f_n + f) * buf.shape[2] + base
                        _move_act_strided(flat_buf, off, yf, d, step_w, n2, bias[f], relu)
    else:
        for a in range(a_from, a_to):
            for f in range(f_n):
                for b in range(n1):
                    mb = ph[p, PH_MLO1] + b
                    base = mb * g2 + ph[p, PH_MLO2] - qlo[p]
                    d = dst_p + a * step_a + f * ys[1]
                    d += (st1 * mb + ph[p, PH_R1] - crop[1]) * ys[3]
                    if step_w == 1 and n2 >= LANES:
                        off = (a * f_n + f) * buf.shape[2] + base
                        _move_act(flat_buf, off, yf, d, n2, bias[f], relu)
                    else:
                        off = (a * f_n + f) * buf.shape[2] + base
                        _move_act_strided(flat_buf, off, yf, d, step_w, n2, bias[f], relu)


@_jit
def _select_taps(
    ph: np.ndarray, p: int, m: int, tout: np.ndarray, i0: int, tsel: np.ndarray, tsrc: np.ndarray
) -> int:
    """The taps of phase ``p`` that reach its output plane ``m`` from an input plane
    ``i = m - tout[t]`` in ``[0, i0)``: ``t`` in ``tsel``, ``i`` in ``tsrc``; returns how many."""
    nsel = 0
    for t in range(ph[p, PH_FIRST], ph[p, PH_FIRST] + ph[p, PH_COUNT]):
        i = m - tout[t]
        if 0 <= i < i0:
            tsel[nsel] = t
            tsrc[nsel] = i
            nsel += 1
    return nsel


# Output positions a kernel-gradient tile sums in float32 before adding them to the float64
# partial sums (a run of planes; a larger plane alone).
RUN_POSITIONS = 2048


@_jit
def padded(n: int) -> int:
    """``n`` rounded up to whole forward tiles."""
    return -(-n // TILE) * TILE


@_jit
def _planes(shape0: int, shape1: int, shape2: int) -> np.ndarray:
    """Zeroed float32 planes ``(shape0, shape1, shape2)`` with a tile of slack in memory after
    the last element (tiles read up to a tile past a row's end)."""
    size = shape0 * shape1 * shape2
    return np.zeros(size + 2 * TILE, np.float32)[:size].reshape((shape0, shape1, shape2))


@_jit
def forward(
    xf: np.ndarray,
    xs: np.ndarray,
    wr: np.ndarray,
    yf: np.ndarray,
    ys: np.ndarray,
    n_from: int,
    n_to: int,
    dims: np.ndarray,
    crop: np.ndarray,
    ph: np.ndarray,
    qlo: np.ndarray,
    qlen: np.ndarray,
    toff: np.ndarray,
    tout: np.ndarray,
    bias: np.ndarray,
    relu: bool,
    part: int,
    parts: int,
) -> None:
    """Samples ``[n_from, n_to)`` of ``y`` (N, F, *out) = transposed convolution of ``x``
    (N, C, *in), ``+ bias`` (F,), then ``max(., 0)`` when ``relu``; ``wr`` (T*C, F rounded up to
    8) the plan's tap weights, filters last. Only part ``part`` of ``parts`` of each phase's
    output planes (threads share a sample when there are few)."""
    c_n, f_n, i0 = dims[D_C], dims[D_F], dims[D_IN0]
    plane, lead, xq = dims[D_PLANE], dims[D_LEAD], dims[D_XQ]
    ntoff = -toff
    xe = _planes(i0, c_n, lead + plane)
    tsel = np.empty(toff.shape[0], np.int64)
    tsrc = np.empty(toff.shape[0], np.int64)
    offs = np.empty(toff.shape[0], np.int64)
    wrow = np.empty(toff.shape[0], np.int64)
    # One scratch for every phase and sample: a fresh large allocation per sample costs page
    # faults, which serialize the threads.
    most = 0
    for p in range(ph.shape[0]):
        most = max(most, ph[p, PH_N0] * f_n * padded(qlen[p]))
    scratch = np.empty(most, np.float32)
    for n in range(n_from, n_to):
        _embed_input(xf, xs, n, xe, dims)
        for p in range(ph.shape[0]):
            n0, ld = ph[p, PH_N0], padded(qlen[p])
            buf = scratch[: n0 * f_n * ld].reshape((n0, f_n, ld))
            a_from, a_to = n0 * part // parts, n0 * (part + 1) // parts
            for a in range(a_from, a_to):
                nsel = _select_taps(ph, p, ph[p, PH_MLO0] + a, tout, i0, tsel, tsrc)
                dst = buf[a].reshape(-1)
                base = lead + qlo[p]
                _gather(
                    dst, f_n, ld, qlen[p], xe, tsel, tsrc, nsel, ntoff, wr, base, lead, lead + xq,
                    offs, wrow,
                )  # fmt: skip
            _scatter_phase(buf, yf, ys, n, p, dims, crop, ph, qlo, bias, relu, a_from, a_to)


# The forward by rows (:class:`~compute.conv3d_transpose_ops.RowPlan`): a tile holds the sums of
# 8 filters x 1-3 row-axis taps for one vector of input positions while every (tap pair,
# channel) input row passes (one vector load, 8-24 broadcast weights, as many multiply-adds),
# then stores them as partial rows; the output pass adds each tap's partial row at its offset.


@_jit_inline
def _put(part: np.ndarray, o: int, v: Any, p_n: int, ln: int, rstep: int) -> None:
    """A tile's sums to the partial rows at ``part[o:]``: the whole vector, or, with rows
    packed ``p_n`` to a vector, lanes ``k*ln .. k*ln + ln - 1`` to ``part[o + k*rstep:]``."""
    if p_n == 1:
        vstore(part, o, v)
    else:
        for k in range(p_n):
            vstore_lanes(part, o + k * rstep, v, k * ln, ln)


@_jit_tile
def _row_tile3(
    xe: np.ndarray,
    xo: int,
    xstep: int,
    px: np.ndarray,
    pw: np.ndarray,
    npair: int,
    c_n: int,
    wf: np.ndarray,
    wo: int,
    wstep: int,
    part: np.ndarray,
    po: int,
    fstep: int,
    tstep: int,
    p_n: int,
    ln: int,
    rstep: int,
) -> None:
    """``part[po + i*fstep + j*tstep + b] = sum_u sum_c wf[pw[u] + wo + c*wstep + 3*i + j] *
    xe[px[u] + xo + c*xstep + b]`` for 8 filters ``i``, 3 taps ``j`` and 16 positions ``b``
    (rows packed ``p_n`` to a vector: lanes ``k*ln ..`` to ``part[... + k*rstep ..]``)."""
    a0 = a1 = a2 = b0 = b1 = b2 = c0 = c1 = c2 = d0 = d1 = d2 = vzero()
    e0 = e1 = e2 = f0 = f1 = f2 = g0 = g1 = g2 = h0 = h1 = h2 = vzero()
    for u in range(npair):
        o = px[u] + xo
        i = pw[u] + wo
        for _ in range(c_n):
            x = vload(xe, o)
            a0, a1 = vfma(x, vsplat_at(wf, i), a0), vfma(x, vsplat_at(wf, i + 1), a1)
            a2, b0 = vfma(x, vsplat_at(wf, i + 2), a2), vfma(x, vsplat_at(wf, i + 3), b0)
            b1, b2 = vfma(x, vsplat_at(wf, i + 4), b1), vfma(x, vsplat_at(wf, i + 5), b2)
            c0, c1 = vfma(x, vsplat_at(wf, i + 6), c0), vfma(x, vsplat_at(wf, i + 7), c1)
            c2, d0 = vfma(x, vsplat_at(wf, i + 8), c2), vfma(x, vsplat_at(wf, i + 9), d0)
            d1, d2 = vfma(x, vsplat_at(wf, i + 10), d1), vfma(x, vsplat_at(wf, i + 11), d2)
            e0, e1 = vfma(x, vsplat_at(wf, i + 12), e0), vfma(x, vsplat_at(wf, i + 13), e1)
            e2, f0 = vfma(x, vsplat_at(wf, i + 14), e2), vfma(x, vsplat_at(wf, i + 15), f0)
            f1, f2 = vfma(x, vsplat_at(wf, i + 16), f1), vfma(x, vsplat_at(wf, i + 17), f2)
            g0, g1 = vfma(x, vsplat_at(wf, i + 18), g0), vfma(x, vsplat_at(wf, i + 19), g1)
            g2, h0 = vfma(x, vsplat_at(wf, i + 20), g2), vfma(x, vsplat_at(wf, i + 21), h0)
            h1, h2 = vfma(x, vsplat_at(wf, i + 22), h1), vfma(x, vsplat_at(wf, i + 23), h2)
            o += xstep
            i += wstep
    for k, (v0, v1, v2) in enumerate(
        ((a0, a1, a2), (b0, b1, b2), (c0, c1, c2), (d0, d1, d2)),
    ):
        _put(part, po + k * fstep, v0, p_n, ln, rstep)
        _put(part, po + k * fstep + tstep, v1, p_n, ln, rstep)
        _put(part, po + k * fstep + 2 * tstep, v2, p_n, ln, rstep)
    for k, (v0, v1, v2) in enumerate(
        ((e0, e1, e2), (f0, f1, f2), (g0, g1, g2), (h0, h1, h2)),
    ):
        _put(part, po + (k + 4) * fstep, v0, p_n, ln, rstep)
        _put(part, po + (k + 4) * fstep + tstep, v1, p_n, ln, rstep)
        _put(part, po + (k + 4) * fstep + 2 * tstep, v2, p_n, ln, rstep)


@_jit_tile
def _row_tile2(
    xe: np.ndarray,
    xo: int,
    xstep: int,
    px: np.ndarray,
    pw: np.ndarray,
    npair: int,
    c_n: int,
    wf: np.ndarray,
    wo: int,
    wstep: int,
    part: np.ndarray,
    po: int,
    fstep: int,
    tstep: int,
    p_n: int,
    ln: int,
    rstep: int,
) -> None:
    """:func:`_row_tile3` for 2 taps (weights ``2*i + j``)."""
    a0 = a1 = b0 = b1 = c0 = c1 = d0 = d1 = vzero()
    e0 = e1 = f0 = f1 = g0 = g1 = h0 = h1 = vzero()
    for u in range(npair):
        o = px[u] + xo
        i = pw[u] + wo
        for _ in range(c_n):
            x = vload(xe, o)
            a0, a1 = vfma(x, vsplat_at(wf, i), a0), vfma(x, vsplat_at(wf, i + 1), a1)
            b0, b1 = vfma(x, vsplat_at(wf, i + 2), b0), vfma(x, vsplat_at(wf, i + 3), b1)
            c0, c1 = vfma(x, vsplat_at(wf, i + 4), c0), vfma(x, vsplat_at(wf, i + 5), c1)
            d0, d1 = vfma(x, vsplat_at(wf, i + 6), d0), vfma(x, vsplat_at(wf, i + 7), d1)
            e0, e1 = vfma(x, vsplat_at(wf, i + 8), e0), vfma(x, vsplat_at(wf, i + 9), e1)
            f0, f1 = vfma(x, vsplat_at(wf, i + 10), f0), vfma(x, vsplat_at(wf, i + 11), f1)
            g0, g1 = vfma(x, vsplat_at(wf, i + 12), g0), vfma(x, vsplat_at(wf, i + 13), g1)
            h0, h1 = vfma(x, vsplat_at(wf, i + 14), h0), vfma(x, vsplat_at(wf, i + 15), h1)
            o += xstep
            i += wstep
    for k, (v0, v1) in enumerate(((a0, a1), (b0, b1), (c0, c1), (d0, d1))):
        _put(part, po + k * fstep, v0, p_n, ln, rstep)
        _put(part, po + k * fstep + tstep, v1, p_n, ln, rstep)
    for k, (v0, v1) in enumerate(((e0, e1), (f0, f1), (g0, g1), (h0, h1))):
        _put(part, po + (k + 4) * fstep, v0, p_n, ln, rstep)
        _put(part, po + (k + 4) * fstep + tstep, v1, p_n, ln, rstep)


@_jit_tile
def _row_tile1(
    xe: np.ndarray,
    xo: int,
    xstep: int,
    px: np.ndarray,
    pw: np.ndarray,
    npair: int,
    c_n: int,
    wf: np.ndarray,
    wo: int,
    wstep: int,
    part: np.ndarray,
    po: int,
    fstep: int,
    tstep: int,
    p_n: int,
    ln: int,
    rstep: int,
) -> None:
    """:func:`_row_tile3` for 1 tap (weights ``i``)."""
    a = b = c = d = e = f = g = h = vzero()
    for u in range(npair):
        o = px[u] + xo
        i = pw[u] + wo
        for _ in range(c_n):
            x = vload(xe, o)
            a, b = vfma(x, vsplat_at(wf, i), a), vfma(x, vsplat_at(wf, i + 1), b)
            c, d = vfma(x, vsplat_at(wf, i + 2), c), vfma(x, vsplat_at(wf, i + 3), d)
            e, f = vfma(x, vsplat_at(wf, i + 4), e), vfma(x, vsplat_at(wf, i + 5), f)
            g, h = vfma(x, vsplat_at(wf, i + 6), g), vfma(x, vsplat_at(wf, i + 7), h)
            o += xstep
            i += wstep
    for k, v in enumerate((a, b, c, d, e, f, g, h)):
        _put(part, po + k * fstep, v, p_n, ln, rstep)


@_jit
def _embed_rows(xf: np.ndarray, xs: np.ndarray, n: int, xe: np.ndarray, dims: np.ndarray) -> None:
    """Sample ``n`` of ``x`` (flat ``xf``, element strides ``xs`` of (N, C, *in), plan order)
    onto the zeroed ``xe`` (in0, C, R_ROWS, L): rows of the row axis, from row ``R_P - 1``
    (zero rows before and after, for packed vectors that reach past the first or last)."""
    c_n, i0, i1, i2 = dims[R_C], dims[R_IN0], dims[R_IN1], dims[R_IN2]
    ln, rows, first = dims[R_L], dims[R_ROWS], dims[R_P] - 1
    flat = xe.reshape(-1)
    step = xs[4]
    for a in range(i0):
        for c in range(c_n):
            src = n * xs[0] + a * xs[2] + c * xs[1]
            dst = ((a * c_n + c) * rows + first) * ln
            for b in range(i1):
                if step == 1 and i2 >= LANES:
                    _move(xf, src + b * xs[3], flat, dst + b * ln, i2)
                else:
                    _move_strided(xf, src + b * xs[3], step, flat, dst + b * ln, 1, i2)


@_jit_inline
def _residue_sum(part: np.ndarray, at: int, offs: Any, n_taps: int, b: Any) -> Any:
    """``sum_j part[at + offs[j] : ... + 16] + b`` over one residue's ``n_taps`` taps (``offs``
    a tuple of 4; more taps: the rest at ``offs[3] + k*(offs[3] - offs[2])``, even spacing);
    the bias added last, as an unfused ``+= bias`` would (the same bits)."""
    if n_taps == 0:
        return b
    v = vload(part, at + offs[0])
    if n_taps > 1:
        v = vadd(v, vload(part, at + offs[1]))
    if n_taps > 2:
        v = vadd(v, vload(part, at + offs[2]))
    if n_taps > 3:
        step = offs[3] - offs[2]
        for k in range(n_taps - 3):
            v = vadd(v, vload(part, at + offs[3] + k * step))
    return vadd(v, b)


@_jit_inline
def _residue_offsets(dims: np.ndarray, res: np.ndarray, r: int, taps: np.ndarray) -> Any:
    """Where residue ``r``'s taps' partial rows hold its first output position, from the start
    of a filter's partial rows (the row-axis taps of one residue are evenly spaced, in the
    rows and in offset, so a fourth and later ones follow from the third and fourth)."""
    first, n_taps = res[r, A_FIRST], res[r, A_COUNT]
    step, base = dims[R_P] * dims[R_RL], dims[R_PAD] + res[r, A_MLO]
    o0 = first * step + base - taps[first, 1] if n_taps > 0 else 0
    o1 = (first + 1) * step + base - taps[first + 1, 1] if n_taps > 1 else 0
    o2 = (first + 2) * step + base - taps[first + 2, 1] if n_taps > 2 else 0
    o3 = (first + 3) * step + base - taps[first + 3, 1] if n_taps > 3 else 0
    return o0, o1, o2, o3


@_jit_inline
def _transpose16(r: Any) -> Any:
    """The 16 vectors ``r`` (16 x 16 floats) transposed: 4 rounds of interleaving row ``i``
    with row ``i + 8`` (each round a perfect shuffle of the element indices' bits)."""
    r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12, r13, r14, r15 = r
    for _ in range(4):
        r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12, r13, r14, r15 = (
            vzip_lo(r0, r8), vzip_hi(r0, r8), vzip_lo(r1, r9), vzip_hi(r1, r9),
            vzip_lo(r2, r10), vzip_hi(r2, r10), vzip_lo(r3, r11), vzip_hi(r3, r11),
            vzip_lo(r4, r12), vzip_hi(r4, r12), vzip_lo(r5, r13), vzip_hi(r5, r13),
            vzip_lo(r6, r14), vzip_hi(r6, r14), vzip_lo(r7, r15), vzip_hi(r7, r15),
        )  # fmt: skip
    return r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12, r13, r14, r15


@_jit_inline
def _block16(a: np.ndarray, i: int, step: int) -> Any:
    """The 16 vectors ``a[i + k*step : ... + 16]``, ``k < 16``."""
    return (
        vload(a, i), vload(a, i + step), vload(a, i + 2 * step), vload(a, i + 3 * step),
        vload(a, i + 4 * step), vload(a, i + 5 * step), vload(a, i + 6 * step),
        vload(a, i + 7 * step), vload(a, i + 8 * step), vload(a, i + 9 * step),
        vload(a, i + 10 * step), vload(a, i + 11 * step), vload(a, i + 12 * step),
        vload(a, i + 13 * step), vload(a, i + 14 * step), vload(a, i + 15 * step),
    )  # fmt: skip


@_jit_inline
def _transpose_block(
    src: np.ndarray, s: int, s_step: int, dst: np.ndarray, d: int, d_step: int
) -> None:
    """``dst[d + j*d_step + k] = src[s + k*s_step + j]`` for ``j, k < 16``: a 16 x 16 block
    transposed in registers."""
    for j, v in enumerate(_transpose16(_block16(src, s, s_step))):
        vstore(dst, d + j * d_step, v)


@_jit_tile
def _row_write(
    part: np.ndarray,
    at: int,
    tmp: np.ndarray,
    yf: np.ndarray,
    d: int,
    ys: np.ndarray,
    dims: np.ndarray,
    crop: int,
    res: np.ndarray,
    taps: np.ndarray,
    bias: np.ndarray,
    relu: bool,
) -> None:
    """The output row at ``y[d + f*ys[1] + o*ys[4]]``, every filter ``f`` and position ``o``:
    ``bias[f]`` plus each row-axis tap's partial row (``part[at:]``) at its offset, through
    relu when asked. Whole vectors when the row is contiguous (stride 1, or stride 2 with its
    two residues' vectors interleaved), else element by element from ``tmp``."""
    f_n, s2, o_n = dims[R_F], dims[R_S2], dims[R_OUT2]
    fstep = dims[R_K2] * dims[R_P] * dims[R_RL]
    pairs = o_n // 2
    if ys[4] == 1 and s2 == 1:
        offs, n_taps = _residue_offsets(dims, res, 0, taps), res[0, A_COUNT]
        for f in range(f_n):
            b, base, dst = vsplat(bias[f]), at + f * fstep, d + f * ys[1]
            if o_n < LANES:  # a short row: one vector, the lanes past its end not stored
                v = _residue_sum(part, base, offs, n_taps, b)
                vstore_lanes(yf, dst, vrelu(v) if relu else v, 0, o_n)
                continue
            for w in range(0, o_n, LANES):
                w0 = min(w, o_n - LANES)
                v = _residue_sum(part, base + w0, offs, n_taps, b)
                vstore(yf, dst + w0, vrelu(v) if relu else v)
        return
    if ys[4] == 1 and s2 == 2 and 1 < o_n < 2 * LANES:  # a short row: one pair of vectors
        ra, rb = crop % 2, (crop + 1) % 2
        offa, na = _residue_offsets(dims, res, ra, taps), res[ra, A_COUNT]
        offb, nb = _residue_offsets(dims, res, rb, taps), res[rb, A_COUNT]
        for f in range(f_n):
            b, base, dst = vsplat(bias[f]), at + f * fstep, d + f * ys[1]
            va = _residue_sum(part, base, offa, na, b)
            vb = _residue_sum(part, base, offb, nb, b)
            if relu:
                va, vb = vrelu(va), vrelu(vb)
            vstore_lanes(yf, dst, vzip_lo(va, vb), 0, min(o_n, LANES))
            if o_n > LANES:
                vstore_lanes(yf, dst + LANES, vzip_hi(va, vb), 0, o_n - LANES)
        return
    if ys[4] == 1 and s2 == 2 and pairs >= LANES:
        # o = 2q + e comes from residue (e + crop) % 2 at its (q + 1)-th phase index
        ra, rb = crop % 2, (crop + 1) % 2
        offa, na = _residue_offsets(dims, res, ra, taps), res[ra, A_COUNT]
        offb, nb = _residue_offsets(dims, res, rb, taps), res[rb, A_COUNT]
        for f in range(f_n):
            b, base, dst = vsplat(bias[f]), at + f * fstep, d + f * ys[1]
            for q in range(0, pairs, LANES):
                q0 = min(q, pairs - LANES)
                va = _residue_sum(part, base + q0, offa, na, b)
                vb = _residue_sum(part, base + q0, offb, nb, b)
                if relu:
                    va, vb = vrelu(va), vrelu(vb)
                vstore(yf, dst + 2 * q0, vzip_lo(va, vb))
                vstore(yf, dst + 2 * q0 + LANES, vzip_hi(va, vb))
            if o_n % 2:  # the last, unpaired position: lane 15 of residue ra's last vector
                v = _residue_sum(part, base + pairs - LANES + 1, offa, na, b)
                vstore(tmp, 0, vrelu(v) if relu else v)
                fstore(yf, dst + o_n - 1, fload(tmp, LANES - 1))
        return
    tl = dims[R_RL] + LANES  # tmp's row per filter
    for r in range(s2):
        count = res[r, A_N]
        if count == 0:
            continue
        offs, n_taps = _residue_offsets(dims, res, r, taps), res[r, A_COUNT]
        dr = d + (s2 * res[r, A_MLO] + r - crop) * ys[4]
        if ys[1] == 1 and f_n >= LANES:  # channels-last: a position's filters side by side
            for f in range(f_n):
                b, base = vsplat(bias[f]), at + f * fstep
                for w in range(0, count, LANES):
                    v = _residue_sum(part, base + w, offs, n_taps, b)
                    vstore(tmp, f * tl + w, vrelu(v) if relu else v)
            if count < LANES:
                for w in range(count):
                    dw = dr + w * s2 * ys[4]
                    for f in range(0, f_n, LANES):
                        f0 = min(f, f_n - LANES)
                        vstore(yf, dw + f0, vgather(tmp, f0 * tl + w, tl))
                continue
            for f in range(0, f_n, LANES):  # blocks of 16 filters x 16 positions, transposed
                f0 = min(f, f_n - LANES)
                for w in range(0, count, LANES):
                    w0 = min(w, count - LANES)
                    dw = s2 * ys[4]
                    _transpose_block(tmp, f0 * tl + w0, tl, yf, dr + w0 * dw + f0, dw)
            continue
        for f in range(f_n):
            b, base = vsplat(bias[f]), at + f * fstep
            for w in range(0, count, LANES):
                v = _residue_sum(part, base + w, offs, n_taps, b)
                vstore(tmp, w, vrelu(v) if relu else v)
            _move_strided(tmp, 0, 1, yf, dr + f * ys[1], s2 * ys[4], count)


@_jit
def row_weights(k: np.ndarray, taps: np.ndarray, groups: np.ndarray, out: np.ndarray) -> None:
    """``out[u0*k1 + u1, f // 8, c, 8*a + (f % 8)*n + j] = k[u0, u1, taps[a + j, 0], f, c]``
    for each row tile ``(a, n)`` of ``groups``: :func:`row_forward`'s weights from the kernel
    ``k`` (k0, k1, k2, F, C) in plan axis order (any strides); ``out`` zeroed."""
    k0, k1, _, f_n, c_n = k.shape
    for u0 in range(k0):
        for u1 in range(k1):
            p = u0 * k1 + u1
            for gi in range(groups.shape[0]):
                a, n = groups[gi, 0], groups[gi, 1]
                for j in range(n):
                    t = taps[a + j, 0]
                    for f in range(f_n):
                        col = 8 * a + (f % 8) * n + j
                        for c in range(c_n):
                            out[p, f // 8, c, col] = k[u0, u1, t, f, c]


@_jit
def row_forward(
    xf: np.ndarray,
    xs: np.ndarray,
    wr: np.ndarray,
    yf: np.ndarray,
    ys: np.ndarray,
    n_from: int,
    n_to: int,
    dims: np.ndarray,
    crop: np.ndarray,
    res0: np.ndarray,
    res1: np.ndarray,
    res2: np.ndarray,
    taps0: np.ndarray,
    taps1: np.ndarray,
    taps2: np.ndarray,
    groups: np.ndarray,
    bias: np.ndarray,
    relu: bool,
    part_k: int,
    parts: int,
) -> None:
    """Samples ``[n_from, n_to)`` of ``y`` (N, F, *out, plan order) = transposed convolution of
    ``x`` (N, C, *in), ``+ bias``, then relu when asked, by rows
    (:class:`~compute.conv3d_transpose_ops.RowPlan`); ``wr`` from ``_row_weights``. Only part
    ``part_k`` of ``parts`` of the output planes along axis 0 (threads share a sample)."""
    c_n, i0, i1 = dims[R_C], dims[R_IN0], dims[R_IN1]
    ln, v_n, kg_n, k1, k2 = dims[R_L], dims[R_V], dims[R_KG], dims[R_K1], dims[R_K2]
    pad, rl, p_n, rows = dims[R_PAD], dims[R_RL], dims[R_P], dims[R_ROWS]
    s0, s1 = dims[R_S0], dims[R_S1]
    planes = dims[R_PLANES]
    xe = np.zeros(i0 * c_n * rows * ln + LANES, np.float32)
    # Two sets of partial rows: a row's output pass runs after the next row's tiles, when its
    # tiles' stores have long reached the cache (loading a vector that straddles two recent
    # stores stalls until they have: 70 cycles a vector on D4, a third of its time).
    size = kg_n * 8 * k2 * p_n * rl
    fstep, tstep = k2 * p_n * rl, p_n * rl
    part = np.zeros(2 * size + LANES, np.float32)
    pending = np.empty(p_n, np.int64)  # the output rows whose partial rows wait
    n_pending = 0
    tmp = np.empty(dims[R_F] * (dims[R_RL] + LANES) + LANES, np.float32)
    px = np.empty(dims[R_PAIRS], np.int64)
    pw = np.empty(dims[R_PAIRS], np.int64)
    wf = wr.reshape(-1)
    wstep = 8 * k2
    pair_w = kg_n * c_n * wstep
    p_from, p_to = planes * part_k // parts, planes * (part_k + 1) // parts
    cur = 0  # where this row's partial rows go: part[cur : cur + size]
    for n in range(n_from, n_to):
        _embed_rows(xf, xs, n, xe, dims)
        g = 0
        for r0 in range(s0):
            for a in range(res0[r0, A_N]):
                g += 1
                if not p_from <= g - 1 < p_to:
                    continue
                m0 = res0[r0, A_MLO] + a
                d0 = n * ys[0] + (s0 * m0 + r0 - crop[0]) * ys[2]
                for r1 in range(s1):
                    for b in range(0, res1[r1, A_N], p_n):  # output rows m1 .. m1 + p_n - 1
                        m1 = res1[r1, A_MLO] + b
                        npair = 0
                        for u0 in range(res0[r0, A_FIRST], res0[r0, A_FIRST] + res0[r0, A_COUNT]):
                            j0 = m0 - taps0[u0, 1]
                            if not 0 <= j0 < i0:
                                continue
                            for u1 in range(
                                res1[r1, A_FIRST], res1[r1, A_FIRST] + res1[r1, A_COUNT]
                            ):
                                j1 = m1 - taps1[u1, 1]  # the first of p_n input rows
                                if j1 + p_n > 0 and j1 < i1:
                                    px[npair] = ((j0 * c_n) * rows + j1 + p_n - 1) * ln
                                    pw[npair] = (taps0[u0, 0] * k1 + taps1[u1, 0]) * pair_w
                                    npair += 1
                        for kg in range(kg_n):
                            for gi in range(groups.shape[0]):
                                first, count = groups[gi, 0], groups[gi, 1]
                                wo = kg * c_n * wstep + 8 * first
                                po = (kg * 8 * k2 + first) * p_n * rl + pad + cur
                                for v in range(v_n):
                                    o = po + v * LANES
                                    if count == 3:
                                        _row_tile3(
                                            xe, v * LANES, rows * ln, px, pw, npair, c_n, wf, wo,
                                            wstep, part, o, fstep, tstep, p_n, ln, rl,
                                        )  # fmt: skip
                                    elif count == 2:
                                        _row_tile2(
                                            xe, v * LANES, rows * ln, px, pw, npair, c_n, wf, wo,
                                            wstep, part, o, fstep, tstep, p_n, ln, rl,
                                        )  # fmt: skip
                                    else:
                                        _row_tile1(
                                            xe, v * LANES, rows * ln, px, pw, npair, c_n, wf, wo,
                                            wstep, part, o, fstep, tstep, p_n, ln, rl,
                                        )  # fmt: skip
                        for k in range(n_pending):
                            _row_write(
                                part, size - cur + k * rl, tmp, yf, pending[k], ys, dims, crop[2],
                                res2, taps2, bias, relu,
                            )  # fmt: skip
                        n_pending = min(p_n, res1[r1, A_N] - b)
                        for k in range(n_pending):
                            pending[k] = d0 + (s1 * (m1 + k) + r1 - crop[1]) * ys[3]
                        cur = size - cur
    for k in range(n_pending):
        _row_write(
            part, size - cur + k * rl, tmp, yf, pending[k], ys, dims, crop[2], res2, taps2, bias,
            relu,
        )  # fmt: skip


# The forward by filter vectors (stride 1 and 3 taps along the last axis, filters in multiples of
# 16): a tile holds one output row's sums for 16 filters (one vector) at 18 consecutive positions
# (16 input positions times 3 taps) while every (tap pair, channel) input row passes: per input
# position one broadcast and 3 multiply-adds with the 3 taps' filter vectors, no padding, no
# partial rows; the output pass transposes the 16 x 16 block in registers (channels-first) or
# stores it as is (channels-last).


@_jit_inline
def _finish(v: Any, b: Any, relu: bool) -> Any:
    """``v + b``, through relu when asked (the bias added last: the bits of ``+= bias``)."""
    v = vadd(v, b)
    return vrelu(v) if relu else v


@_jit_inline
def _filter_scatter(yf: np.ndarray, d: int, fs: int, v: Any, tmp: np.ndarray) -> None:
    """The 16 filters of one output position, ``v``, to ``yf[d + f*fs]``."""
    if fs == 1:
        vstore(yf, d, v)
        return
    vstore(tmp, 0, v)
    for f in range(LANES):
        fstore(yf, d + f * fs, fload(tmp, f))


@_jit_inline
def _row_sums(
    src: np.ndarray,
    px: np.ndarray,
    pw: np.ndarray,
    npair: int,
    c_n: int,
    cstep: int,
    xo: int,
    wf: np.ndarray,
    wo: int,
    a0: Any,
    a1: Any,
) -> Any:
    """18 vectors of 16 filters' sums at full positions 0-17: ``a0`` and ``a1`` at positions
    0 and 1, plus ``wf[pw[u] + wo + c*48 + 16*j : +16] * src[px[u] + xo + c*cstep + e]`` at
    position ``e + j`` (``e < 16``) for every row ``u < npair``, channel ``c`` and tap
    ``j < 3``: per channel 3 filter vectors loaded, 16 values broadcast and 48 multiply-adds,
    the sums in registers."""
    a2 = a3 = a4 = a5 = a6 = a7 = a8 = a9 = a10 = a11 = a12 = a13 = a14 = a15 = a16 = a17 = vzero()
    for u in range(npair):
        o = px[u] + xo
        i = pw[u] + wo
        for _ in range(c_n):
            w0, w1, w2 = vload(wf, i), vload(wf, i + LANES), vload(wf, i + 2 * LANES)
            x = vsplat_at(src, o + 0)
            a0, a1, a2 = vfma(w0, x, a0), vfma(w1, x, a1), vfma(w2, x, a2)
            x = vsplat_at(src, o + 1)
            a1, a2, a3 = vfma(w0, x, a1), vfma(w1, x, a2), vfma(w2, x, a3)
            x = vsplat_at(src, o + 2)
            a2, a3, a4 = vfma(w0, x, a2), vfma(w1, x, a3), vfma(w2, x, a4)
            x = vsplat_at(src, o + 3)
            a3, a4, a5 = vfma(w0, x, a3), vfma(w1, x, a4), vfma(w2, x, a5)
            x = vsplat_at(src, o + 4)
            a4, a5, a6 = vfma(w0, x, a4), vfma(w1, x, a5), vfma(w2, x, a6)
            x = vsplat_at(src, o + 5)
            a5, a6, a7 = vfma(w0, x, a5), vfma(w1, x, a6), vfma(w2, x, a7)
            x = vsplat_at(src, o + 6)
            a6, a7, a8 = vfma(w0, x, a6), vfma(w1, x, a7), vfma(w2, x, a8)
            x = vsplat_at(src, o + 7)
            a7, a8, a9 = vfma(w0, x, a7), vfma(w1, x, a8), vfma(w2, x, a9)
            x = vsplat_at(src, o + 8)
            a8, a9, a10 = vfma(w0, x, a8), vfma(w1, x, a9), vfma(w2, x, a10)
            x = vsplat_at(src, o + 9)
            a9, a10, a11 = vfma(w0, x, a9), vfma(w1, x, a10), vfma(w2, x, a11)
            x = vsplat_at(src, o + 10)
            a10, a11, a12 = vfma(w0, x, a10), vfma(w1, x, a11), vfma(w2, x, a12)
            x = vsplat_at(src, o + 11)
            a11, a12, a13 = vfma(w0, x, a11), vfma(w1, x, a12), vfma(w2, x, a13)
            x = vsplat_at(src, o + 12)
            a12, a13, a14 = vfma(w0, x, a12), vfma(w1, x, a13), vfma(w2, x, a14)
            x = vsplat_at(src, o + 13)
            a13, a14, a15 = vfma(w0, x, a13), vfma(w1, x, a14), vfma(w2, x, a15)
            x = vsplat_at(src, o + 14)
            a14, a15, a16 = vfma(w0, x, a14), vfma(w1, x, a15), vfma(w2, x, a16)
            x = vsplat_at(src, o + 15)
            a15, a16, a17 = vfma(w0, x, a15), vfma(w1, x, a16), vfma(w2, x, a17)
            o += cstep
            i += 3 * LANES
    return a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, a16, a17


@_jit_tile
def _filter_tile3(
    src: np.ndarray,
    px: np.ndarray,
    pw: np.ndarray,
    npair: int,
    c_n: int,
    cstep: int,
    xo: int,
    wf: np.ndarray,
    wo: int,
    carry: np.ndarray,
    last: bool,
    bias: np.ndarray,
    bo: int,
    relu: bool,
    yf: np.ndarray,
    dst: int,
    fs: int,
    ps: int,
    o_lo: int,
    o_n: int,
    tmp: np.ndarray,
) -> None:
    """One block of an output row for 16 filters: ``sum_u sum_c sum_j wf[pw[u] + wo + c*48 +
    16*j : +16] * src[px[u] + xo + c*cstep + e]`` at full position ``e + j`` (``e < 16``), plus
    ``carry`` (the previous block's last two positions) at positions 0 and 1. Positions 0-15
    (output positions ``o_lo ..``, those in ``[0, o_n)``) get the bias (``bias[bo:]``) and relu
    and go to ``yf[dst + f*fs + o*ps]``; positions 16 and 17 to ``carry``, or, for the row's
    ``last`` block, to the output too."""
    a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, a16, a17 = _row_sums(
        src, px, pw, npair, c_n, cstep, xo, wf, wo, vload(carry, 0), vload(carry, LANES)
    )
    b = vload(bias, bo)
    lo, hi = max(0, -o_lo), min(LANES, o_n - o_lo)  # the block's positions inside the output
    block = (a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15)
    if ps == 1 and hi > lo:  # channels-first: 16 filter rows of 16 positions
        t = _transpose16(
            (
                _finish(a0, b, relu), _finish(a1, b, relu), _finish(a2, b, relu),
                _finish(a3, b, relu), _finish(a4, b, relu), _finish(a5, b, relu),
                _finish(a6, b, relu), _finish(a7, b, relu), _finish(a8, b, relu),
                _finish(a9, b, relu), _finish(a10, b, relu), _finish(a11, b, relu),
                _finish(a12, b, relu), _finish(a13, b, relu), _finish(a14, b, relu),
                _finish(a15, b, relu),
            )
        )  # fmt: skip
        for f, v in enumerate(t):
            if lo == 0 and hi == LANES:
                vstore(yf, dst + f * fs + o_lo, v)
            else:
                vstore_lanes(yf, dst + f * fs + o_lo + lo, v, lo, hi - lo)
    elif hi > lo:
        for j, v in enumerate(block):
            if lo <= j < hi:
                _filter_scatter(yf, dst + (o_lo + j) * ps, fs, _finish(v, b, relu), tmp)
    if not last:
        vstore(carry, 0, a16)
        vstore(carry, LANES, a17)
        return
    for j, v in enumerate((a16, a17)):
        if 0 <= o_lo + LANES + j < o_n:
            _filter_scatter(yf, dst + (o_lo + LANES + j) * ps, fs, _finish(v, b, relu), tmp)


@_jit
def _copy_rows(
    xf: np.ndarray,
    xs: np.ndarray,
    n: int,
    xe: np.ndarray,
    d: int,
    sa: int,
    sb: int,
    sc: int,
    dims: np.ndarray,
) -> None:
    """Sample ``n`` of ``x`` (flat ``xf``, strides ``xs`` of (N, C, *in); lengths from the
    forward by filter vectors' dims) to ``xe``: row ``(a, b)`` of channel ``c`` at ``d + a*sa +
    b*sb + c*sc``, contiguous."""
    c_n, i0, i1, i2 = dims[V_C], dims[V_IN0], dims[V_IN1], dims[V_IN2]
    for a in range(i0):
        for b in range(i1):
            for c in range(c_n):
                s = n * xs[0] + c * xs[1] + a * xs[2] + b * xs[3]
                at = d + a * sa + b * sb + c * sc
                if xs[4] == 1 and i2 >= LANES:
                    _move(xf, s, xe, at, i2)
                else:
                    _move_strided(xf, s, xs[4], xe, at, 1, i2)


@_jit
def filter_forward(
    xf: np.ndarray,
    xs: np.ndarray,
    wv: np.ndarray,
    yf: np.ndarray,
    ys: np.ndarray,
    n_from: int,
    n_to: int,
    dims: np.ndarray,
    bias: np.ndarray,
    relu: bool,
    part_k: int,
    parts: int,
) -> None:
    """Samples ``[n_from, n_to)`` of ``y`` (N, F, *out) = transposed convolution of ``x``
    (N, C, *in), ``+ bias``, then relu when asked, by filter vectors (stride 1, 3 taps and
    dilation 1 along the last axis; ``F`` a multiple of 16); ``wv`` from ``_filter_weights``.
    Only part ``part_k`` of ``parts`` of the output planes along axis 0."""
    c_n, f_n = dims[V_C], dims[V_F]
    i0, i1, i2 = dims[V_IN0], dims[V_IN1], dims[V_IN2]
    o0, o1, o2 = dims[V_OUT0], dims[V_OUT1], dims[V_OUT2]
    k0, k1, s0, s1, d0, d1 = dims[V_K0], dims[V_K1], dims[V_S0], dims[V_S1], dims[V_D0], dims[V_D1]
    c0, c1, c2 = dims[V_CROP0], dims[V_CROP1], dims[V_CROP2]
    nb = -(-i2 // LANES)
    rw = nb * LANES  # a row of the sample's copy: whole vectors, zero past the input
    # zero past the input in each row's last vector; rows of whole vectors are all written
    xe = np.empty(i0 * i1 * c_n * rw + LANES, np.float32)
    if rw != i2:
        xe[:] = 0.0
    carry = np.zeros(2 * LANES, np.float32)
    tmp = np.empty(LANES, np.float32)
    px = np.empty(k0 * k1, np.int64)
    pw = np.empty(k0 * k1, np.int64)
    wf = wv.reshape(-1)
    gstep = k0 * k1 * c_n * 3 * LANES
    p_from, p_to = o0 * part_k // parts, o0 * (part_k + 1) // parts
    for n in range(n_from, n_to):
        # the sample, (in0, in1, C, rw): a pair's channels side by side
        _copy_rows(xf, xs, n, xe, 0, i1 * c_n * rw, c_n * rw, rw, dims)
        for m0 in range(p_from, p_to):
            for m1 in range(o1):
                npair = 0  # the (axis-0, axis-1) taps that reach the input
                for u0 in range(k0):
                    t0 = m0 + c0 - u0 * d0
                    if t0 < 0 or t0 % s0 != 0 or t0 // s0 >= i0:
                        continue
                    for u1 in range(k1):
                        t1 = m1 + c1 - u1 * d1
                        if t1 < 0 or t1 % s1 != 0 or t1 // s1 >= i1:
                            continue
                        px[npair] = ((t0 // s0) * i1 + t1 // s1) * c_n * rw
                        pw[npair] = (u0 * k1 + u1) * c_n * 3 * LANES
                        npair += 1
                for g in range(f_n // LANES):
                    dst = n * ys[0] + g * LANES * ys[1] + m0 * ys[2] + m1 * ys[3]
                    vstore(carry, 0, vzero())
                    vstore(carry, LANES, vzero())
                    for blk in range(nb):
                        _filter_tile3(
                            xe, px, pw, npair, c_n, rw, blk * LANES, wf, g * gstep, carry,
                            blk == nb - 1, bias, g * LANES, relu, yf, dst, ys[1], ys[4],
                            blk * LANES - c2, o2, tmp,
                        )  # fmt: skip


# The forward by Winograd tiles (3 taps, stride 1 and dilation 1 on every axis, filters in
# multiples of 16): F(2 x 2, 3 x 3) over axes 0 and 1 (Lavin & Gray, 2016), the filter-vector
# rows of :func:`_row_sums` along the last axis. A 2 x 2 block of output rows is A^T M A, where
# each of the 16 rows of M is one row of the filter-vector forward with a single (tap pair) row:
# the transformed input row V = B^T d B (d: the 4 x 4 input rows the block reads) against the
# transformed taps U = G g G^T (computed once per call, in float64, rounded once). 16 row passes
# per 4 output rows where the filter-vector forward makes up to 36 (9 tap pairs per row); the
# input and output transforms are additions and subtractions only.


@_jit_inline
def _winograd_bt(d0: Any, d1: Any, d2: Any, d3: Any) -> tuple[Any, Any, Any, Any]:
    """B^T d of F(2, 3) for four vectors ``d``."""
    return vsub(d0, d2), vadd(d1, d2), vsub(d2, d1), vsub(d1, d3)


@_jit_inline
def _winograd_bt4(xe: np.ndarray, b: int, s1: int) -> tuple[Any, Any, Any, Any]:
    """:func:`_winograd_bt` of the vectors ``xe[b + k*s1 : +16]``, ``k < 4``."""
    return _winograd_bt(
        vload(xe, b), vload(xe, b + s1), vload(xe, b + 2 * s1), vload(xe, b + 3 * s1)
    )


@_jit_tile
def _winograd_input(
    xe: np.ndarray, e0: int, s0: int, s1: int, n: int, v: np.ndarray, vs: int
) -> None:
    """``v[q*vs : +n]`` (``q = 4*q0 + q1``) = B^T d B, where ``d[m0][m1]`` is the row
    ``xe[e0 + m0*s0 + m1*s1 : +n]`` (``m0, m1 < 4``), vector by vector in registers."""
    for k in range(0, n, LANES):
        r00, r01, r02, r03 = _winograd_bt4(xe, e0 + k, s1)
        r10, r11, r12, r13 = _winograd_bt4(xe, e0 + s0 + k, s1)
        r20, r21, r22, r23 = _winograd_bt4(xe, e0 + 2 * s0 + k, s1)
        r30, r31, r32, r33 = _winograd_bt4(xe, e0 + 3 * s0 + k, s1)
        columns = (
            (r00, r10, r20, r30), (r01, r11, r21, r31), (r02, r12, r22, r32), (r03, r13, r23, r33)
        )  # fmt: skip
        for q1, (t0, t1, t2, t3) in enumerate(columns):
            u0, u1, u2, u3 = _winograd_bt(t0, t1, t2, t3)
            vstore(v, q1 * vs + k, u0)
            vstore(v, (4 + q1) * vs + k, u1)
            vstore(v, (8 + q1) * vs + k, u2)
            vstore(v, (12 + q1) * vs + k, u3)


@_jit_tile
def _winograd_rows(
    v: np.ndarray,
    vs: int,
    c_n: int,
    rw: int,
    nb: int,
    wf: np.ndarray,
    wo: int,
    zero: np.ndarray,
    m: np.ndarray,
    ml: int,
) -> None:
    """The 16 rows of M for 16 filters: ``m[q*ml + p*16 : +16]`` at every full position ``p <
    nb*16 + 2``, from ``v``'s rows (``v[q*vs + c*rw :]``, ``nb`` vectors each) and the
    transformed taps ``wf[wo + q*C*48 :]``; ``zero`` holds one 0 (a row offset for
    :func:`_row_sums`)."""
    for q in range(16):
        a0 = a1 = vzero()
        for blk in range(nb):
            sums = _row_sums(
                v, zero, zero, 1, c_n, rw, q * vs + blk * LANES, wf, wo + q * c_n * 3 * LANES,
                a0, a1,
            )  # fmt: skip
            d = q * ml + blk * LANES * LANES
            for j, a in enumerate(sums[:LANES]):
                vstore(m, d + j * LANES, a)
            a0, a1 = sums[LANES], sums[LANES + 1]
        vstore(m, q * ml + nb * LANES * LANES, a0)
        vstore(m, q * ml + (nb * LANES + 1) * LANES, a1)


@_jit_inline
def _winograd_at(m: np.ndarray, b: int, ml: int) -> tuple[Any, Any]:
    """A^T a of F(2, 3) for the four vectors ``a[k] = m[b + k*ml : +16]``."""
    a0, a1, a2, a3 = vload(m, b), vload(m, b + ml), vload(m, b + 2 * ml), vload(m, b + 3 * ml)
    return vadd(vadd(a0, a1), a2), vsub(vsub(a1, a2), a3)


@_jit_tile
def _winograd_output(m: np.ndarray, ml: int, n: int, y: np.ndarray, yl: int) -> None:
    """``y[(2*r0 + r1)*yl : +n]`` (``r0, r1 < 2``) = A^T M A of ``m``'s 16 rows (``ml`` apart):
    ``A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]``, vector by vector."""
    for p in range(0, n, LANES):
        z00, z01 = _winograd_at(m, p, ml)
        z10, z11 = _winograd_at(m, p + 4 * ml, ml)
        z20, z21 = _winograd_at(m, p + 8 * ml, ml)
        z30, z31 = _winograd_at(m, p + 12 * ml, ml)
        vstore(y, p, vadd(vadd(z00, z10), z20))
        vstore(y, yl + p, vadd(vadd(z01, z11), z21))
        vstore(y, 2 * yl + p, vsub(vsub(z10, z20), z30))
        vstore(y, 3 * yl + p, vsub(vsub(z11, z21), z31))


@_jit_tile
def _winograd_write(
    y: np.ndarray,
    r: int,
    c2: int,
    o2: int,
    bias: np.ndarray,
    bo: int,
    relu: bool,
    yf: np.ndarray,
    dst: int,
    fs: int,
    ps: int,
    tmp: np.ndarray,
) -> None:
    """One output row for 16 filters from ``y[r + (o + c2)*16 : +16]`` (output position
    ``o < o2``), plus ``bias[bo:]`` and relu, to ``yf[dst + f*fs + o*ps]``: channels-first, 16
    positions at a time transposed in registers (a block of 4 or fewer position by position);
    channels-last, each position's vector as it is."""
    b = vload(bias, bo)
    for o_lo in range(0, o2, LANES):
        hi = min(LANES, o2 - o_lo)
        at = r + (o_lo + c2) * LANES
        if ps == 1 and hi > 4:
            block = _block16(y, at, LANES)
            t = _transpose16(
                (
                    _finish(block[0], b, relu), _finish(block[1], b, relu),
                    _finish(block[2], b, relu), _finish(block[3], b, relu),
                    _finish(block[4], b, relu), _finish(block[5], b, relu),
                    _finish(block[6], b, relu), _finish(block[7], b, relu),
                    _finish(block[8], b, relu), _finish(block[9], b, relu),
                    _finish(block[10], b, relu), _finish(block[11], b, relu),
                    _finish(block[12], b, relu), _finish(block[13], b, relu),
                    _finish(block[14], b, relu), _finish(block[15], b, relu),
                )
            )  # fmt: skip
            for f, w in enumerate(t):
                if hi == LANES:
                    vstore(yf, dst + f * fs + o_lo, w)
                else:
                    vstore_lanes(yf, dst + f * fs + o_lo, w, 0, hi)
        else:
            for j in range(hi):
                w = _finish(vload(y, at + j * LANES), b, relu)
                _filter_scatter(yf, dst + (o_lo + j) * ps, fs, w, tmp)


@_jit
def winograd_forward(
    xf: np.ndarray,
    xs: np.ndarray,
    wu: np.ndarray,
    yf: np.ndarray,
    ys: np.ndarray,
    n_from: int,
    n_to: int,
    dims: np.ndarray,
    bias: np.ndarray,
    relu: bool,
    part_k: int,
    parts: int,
) -> None:
    """Samples ``[n_from, n_to)`` of ``y`` (N, F, *out) = transposed convolution of ``x``
    (N, C, *in), ``+ bias``, then relu when asked, by Winograd tiles (3 taps, stride 1 and
    dilation 1 on every axis; ``F`` a multiple of 16); ``wu`` from ``_winograd_weights``, the
    dims those of the forward by filter vectors. Only part ``part_k`` of ``parts`` of the
    tiles' rows along axis 0."""
    c_n, f_n = dims[V_C], dims[V_F]
    i0, i1, i2 = dims[V_IN0], dims[V_IN1], dims[V_IN2]
    o0, o1, o2 = dims[V_OUT0], dims[V_OUT1], dims[V_OUT2]
    c0, c1, c2 = dims[V_CROP0], dims[V_CROP1], dims[V_CROP2]
    nb = -(-i2 // LANES)
    rw = nb * LANES  # a row of the sample's copy: whole vectors, zero past the input
    # the tiles (2 x 2 full rows) that hold the output along axes 0 and 1
    ta0, tb0 = c0 // 2, (c0 + o0 - 1) // 2 + 1
    ta1, tb1 = c1 // 2, (c1 + o1 - 1) // 2 + 1
    # the sample's copy (rows of axes 0 and 1 with 2 zero rows before the input, C, rw); a row
    # of every channel one vector longer, a plane one vector more: rows 4 KiB apart shared
    # their cache sets (the input transform ran 1.7 times longer)
    # (rows past those the tiles read are copied too: an input gradient's dual layer reads
    # none of the positions an output padding added)
    s1 = c_n * rw + LANES
    s0 = max(2 * tb1 + 2, i1 + 2) * s1 + LANES
    xe = np.zeros(max(2 * tb0 + 2, i0 + 2) * s0 + LANES, np.float32)
    v = np.empty(16 * s1 + LANES, np.float32)
    ml = (rw + 2) * LANES  # a row of M: full positions x 16 filters
    yl = (rw + LANES) * LANES  # of the output block: whole blocks of 16 positions
    m = np.zeros(16 * ml, np.float32)
    y = np.zeros(4 * yl, np.float32)
    zero = np.zeros(1, np.int64)
    tmp = np.empty(LANES, np.float32)
    wf = wu.reshape(-1)
    gstep = 16 * c_n * 3 * LANES
    tiles = tb0 - ta0
    t_from, t_to = ta0 + tiles * part_k // parts, ta0 + tiles * (part_k + 1) // parts
    for n in range(n_from, n_to):
        _copy_rows(xf, xs, n, xe, 2 * s0 + 2 * s1, s0, s1, rw, dims)
        for t0 in range(t_from, t_to):
            for t1 in range(ta1, tb1):
                _winograd_input(xe, 2 * t0 * s0 + 2 * t1 * s1, s0, s1, c_n * rw, v, s1)
                for g in range(f_n // LANES):
                    _winograd_rows(v, s1, c_n, rw, nb, wf, g * gstep, zero, m, ml)
                    _winograd_output(m, ml, (i2 + 2) * LANES, y, yl)
                    for r0 in range(2):
                        m0 = 2 * t0 + r0 - c0
                        for r1 in range(2):
                            m1 = 2 * t1 + r1 - c1
                            if 0 <= m0 < o0 and 0 <= m1 < o1:
                                dst = n * ys[0] + g * LANES * ys[1] + m0 * ys[2] + m1 * ys[3]
                                _winograd_write(
                                    y, (2 * r0 + r1) * yl, c2, o2, bias, g * LANES, relu, yf,
                                    dst, ys[1], ys[4], tmp,
                                )  # fmt: skip


# The kernel gradient by filter vectors (the same layers as the forward by filter vectors): the
# sample's output gradient is laid out channels-last by rows of the full result along the last
# axis, zero where the output is cropped, ``dyt`` (out0 * out1, in2 + 2, F); a tile keeps 3 taps
# x 8 channels' sums for 16 filters (24 vectors) in registers while one (axis-0, axis-1) tap
# pair's input rows pass: per input position 3 loads of gradient vectors, 8 broadcasts of input
# values and 24 multiply-adds, no padding and no horizontal sums.


@_jit
def _filter_grad_layout(
    df: np.ndarray, ds: np.ndarray, n: int, dyt: np.ndarray, dims: np.ndarray
) -> None:
    """Sample ``n`` of ``dy`` (flat ``df``, strides ``ds`` of (N, F, *out)) into ``dyt`` flat
    (out0 * out1, in2 + 2, F): position ``p`` of a row holds output position ``p - crop2``, zero
    outside the output. Blocks of 16 positions x 16 filters are transposed in registers when
    ``dy``'s rows are contiguous; channels-last, its vectors are copied as they are."""
    f_n, i2, o0, o1, o2 = dims[V_F], dims[V_IN2], dims[V_OUT0], dims[V_OUT1], dims[V_OUT2]
    c2 = dims[V_CROP2]
    ln = i2 + 2
    p_lo, p_hi = c2, min(ln, o2 + c2)  # the row's positions inside the output (c2 <= 2 < ln)
    for m0 in range(o0):
        for m1 in range(o1):
            row = (m0 * o1 + m1) * ln * f_n
            src = n * ds[0] + m0 * ds[2] + m1 * ds[3] - c2 * ds[4]
            for p in range(ln):
                if p < p_lo or p >= p_hi:
                    for f in range(0, f_n, LANES):
                        vstore(dyt, row + p * f_n + f, vzero())
            p = p_lo
            if ds[4] == 1:
                while p + LANES <= p_hi:
                    for f in range(0, f_n, LANES):
                        _transpose_block(
                            df, src + f * ds[1] + p, ds[1], dyt, row + p * f_n + f, f_n
                        )
                    p += LANES
            elif ds[1] == 1:  # channels-last: a position's filters side by side already
                while p < p_hi:
                    for f in range(0, f_n, LANES):
                        vstore(dyt, row + p * f_n + f, vload(df, src + p * ds[4] + f))
                    p += 1
            for q in range(p, p_hi):
                for f in range(f_n):
                    fstore(dyt, row + q * f_n + f, fload(df, src + f * ds[1] + q * ds[4]))


@_jit_inline
def _fma3(x: Any, d0: Any, d1: Any, d2: Any, a: Any, b: Any, c: Any) -> tuple[Any, Any, Any]:
    """``x*d0 + a, x*d1 + b, x*d2 + c``: one input value's products with 3 taps' vectors."""
    return vfma(x, d0, a), vfma(x, d1, b), vfma(x, d2, c)


@_jit_tile
def _filter_grad_tile(
    xf: np.ndarray,
    xo: np.ndarray,
    xstep: int,
    dyt: np.ndarray,
    rx: np.ndarray,
    rd: np.ndarray,
    goff: int,
    nrows: int,
    i2: int,
    f_n: int,
    acc: np.ndarray,
    at: np.ndarray,
    valid: int,
) -> None:
    """``acc[at[j*8 + k] : +16] += sum_r sum_e xf[rx[r] + xo[k] + e*xstep] * dyt[rd[r] + goff + (e
    + j)*f_n : +16]`` for taps ``j < 3`` and channels ``k < valid`` (8 channels' offsets ``xo``;
    past ``valid``, repeats), over rows ``r < nrows`` and positions ``e < i2``: float32 sums of
    at most RUN_POSITIONS positions, each then added in float64."""
    o0, o1, o2, o3, o4, o5, o6, o7 = xo[0], xo[1], xo[2], xo[3], xo[4], xo[5], xo[6], xo[7]
    per_run = max(1, RUN_POSITIONS // i2)
    for start in range(0, nrows, per_run):
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = vzero()
        b0 = b1 = b2 = b3 = b4 = b5 = b6 = b7 = vzero()
        c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = vzero()
        for r in range(start, min(nrows, start + per_run)):
            xi, di = rx[r], rd[r] + goff
            for _ in range(i2):
                d0, d1, d2 = vload(dyt, di), vload(dyt, di + f_n), vload(dyt, di + 2 * f_n)
                a0, b0, c0 = _fma3(vsplat_at(xf, xi + o0), d0, d1, d2, a0, b0, c0)
                a1, b1, c1 = _fma3(vsplat_at(xf, xi + o1), d0, d1, d2, a1, b1, c1)
                a2, b2, c2 = _fma3(vsplat_at(xf, xi + o2), d0, d1, d2, a2, b2, c2)
                a3, b3, c3 = _fma3(vsplat_at(xf, xi + o3), d0, d1, d2, a3, b3, c3)
                a4, b4, c4 = _fma3(vsplat_at(xf, xi + o4), d0, d1, d2, a4, b4, c4)
                a5, b5, c5 = _fma3(vsplat_at(xf, xi + o5), d0, d1, d2, a5, b5, c5)
                a6, b6, c6 = _fma3(vsplat_at(xf, xi + o6), d0, d1, d2, a6, b6, c6)
                a7, b7, c7 = _fma3(vsplat_at(xf, xi + o7), d0, d1, d2, a7, b7, c7)
                xi += xstep
                di += f_n
        for k, (va, vb, vc) in enumerate(
            ((a0, b0, c0), (a1, b1, c1), (a2, b2, c2), (a3, b3, c3),
             (a4, b4, c4), (a5, b5, c5), (a6, b6, c6), (a7, b7, c7))
        ):  # fmt: skip
            if k < valid:
                vadd_f64(acc, at[k], va)
                vadd_f64(acc, at[LANES // 2 + k], vb)
                vadd_f64(acc, at[LANES + k], vc)


@_jit
def filter_kernel_gradient(
    xf: np.ndarray,
    xs: np.ndarray,
    df: np.ndarray,
    ds: np.ndarray,
    acc: np.ndarray,
    n_from: int,
    n_to: int,
    dims: np.ndarray,
) -> None:
    """``acc`` flat (k0, k1, 3, C, F) float64 = kernel gradient of samples ``[n_from, n_to)``
    of ``x`` (N, C, *in) and ``dy`` (N, F, *out), by filter vectors (the layers of
    :func:`filter_forward`)."""
    c_n, f_n = dims[V_C], dims[V_F]
    i0, i1, i2 = dims[V_IN0], dims[V_IN1], dims[V_IN2]
    o0, o1 = dims[V_OUT0], dims[V_OUT1]
    k0, k1, s0, s1, d0, d1 = dims[V_K0], dims[V_K1], dims[V_S0], dims[V_S1], dims[V_D0], dims[V_D1]
    c0, c1 = dims[V_CROP0], dims[V_CROP1]
    acc[:] = 0.0
    ln = i2 + 2
    dyt = np.empty(o0 * o1 * ln * f_n + LANES, np.float32)
    rx = np.empty(i0 * i1, np.int64)
    rd = np.empty(i0 * i1, np.int64)
    xo = np.empty(LANES // 2, np.int64)
    at = np.empty(3 * LANES // 2, np.int64)
    for n in range(n_from, n_to):
        _filter_grad_layout(df, ds, n, dyt, dims)
        for u0 in range(k0):
            for u1 in range(k1):
                nrows = 0  # the input rows whose (u0, u1) output row is in the output
                for a in range(i0):
                    m0 = a * s0 + u0 * d0 - c0
                    if m0 < 0 or m0 >= o0:
                        continue
                    for b in range(i1):
                        m1 = b * s1 + u1 * d1 - c1
                        if 0 <= m1 < o1:
                            rx[nrows] = n * xs[0] + a * xs[2] + b * xs[3]
                            rd[nrows] = (m0 * o1 + m1) * ln * f_n
                            nrows += 1
                if nrows == 0:
                    continue
                for g in range(0, f_n, LANES):
                    for cg in range(0, c_n, LANES // 2):
                        valid = min(LANES // 2, c_n - cg)
                        for k in range(LANES // 2):
                            xo[k] = min(cg + k, c_n - 1) * xs[1]
                            for j in range(3):
                                t = (u0 * k1 + u1) * 3 + j
                                at[j * LANES // 2 + k] = (t * c_n + cg + k) * f_n + g
                        _filter_grad_tile(
                            xf, xo, xs[4], dyt, rx, rd, g, nrows, i2, f_n, acc, at, valid
                        )


@_jit
def backward_input(
    df: np.ndarray,
    ds: np.ndarray,
    wr: np.ndarray,
    dxf: np.ndarray,
    dxs: np.ndarray,
    n_from: int,
    n_to: int,
    dims: np.ndarray,
    crop: np.ndarray,
    ph: np.ndarray,
    toff: np.ndarray,
    tout: np.ndarray,
    tph: np.ndarray,
) -> None:
    """Samples ``[n_from, n_to)`` of ``dx`` (N, C, *in) = input gradient from ``dy``
    (N, F, *out); ``wr`` (T*F, C rounded up to 8) the plan's tap weights, channels last."""
    c_n, f_n, i0, i1, i2 = dims[D_C], dims[D_F], dims[D_IN0], dims[D_IN1], dims[D_IN2]
    g2, plane, lead, xq, m0 = dims[D_G2], dims[D_PLANE], dims[D_LEAD], dims[D_XQ], dims[D_M0]
    dye = _planes(ph.shape[0] * m0, f_n, plane + lead)
    ld = padded(xq)
    buf = np.empty((i0, c_n, ld), np.float32)
    flat_buf = buf.reshape(-1)
    tsel = np.empty(toff.shape[0], np.int64)
    tsrc = np.empty(toff.shape[0], np.int64)
    offs = np.empty(toff.shape[0], np.int64)
    wrow = np.empty(toff.shape[0], np.int64)
    for n in range(n_from, n_to):
        _embed_output(df, ds, n, dye, dims, crop, ph)
        for i in range(i0):
            nsel = 0
            for t in range(toff.shape[0]):
                p = tph[t]
                a = i + tout[t] - ph[p, PH_MLO0]
                if 0 <= a < ph[p, PH_N0]:
                    tsel[nsel] = t
                    tsrc[nsel] = p * m0 + a
                    nsel += 1
            dst = buf[i].reshape(-1)
            _gather(dst, c_n, ld, xq, dye, tsel, tsrc, nsel, toff, wr, 0, 0, plane, offs, wrow)
        for c in range(c_n):
            for b in range(i1):
                base = b * g2
                dst0 = n * dxs[0] + c * dxs[1] + b * dxs[3]
                for i in range(i0):  # (dx is written once: the order matters little)
                    src = (i * c_n + c) * ld + base
                    _move_strided(flat_buf, src, 1, dxf, dst0 + i * dxs[2], dxs[4], i2)


@_jit_tile
def _tap_dots(
    g: np.ndarray,
    xs: np.ndarray,
    tsel: np.ndarray,
    tsrc: np.ndarray,
    nsel: int,
    toff: np.ndarray,
    q_from: int,
    q_to: int,
    lead: int,
    acc: np.ndarray,
) -> None:
    """``acc[t, f, c] += sum_q g[f, q] * xs[tsrc[u], c, lead + q - toff[t]]`` over ``[q_from,
    q_to)`` for the ``nsel`` selected taps ``t = tsel[u]``.

    Three (tap, channel) rows times four filters per pass: twelve independent sums in registers,
    enough to hide the multiply-add latency (eight, two filters by four rows, wait on it: W4's
    kernel gradient ran 17% slower). Rows and filters past the end repeat the last one; their
    sums are not added."""
    f_n = g.shape[0]
    c_n = xs.shape[1]
    r_n = nsel * c_n
    for q0 in range(q_from, q_to, BLOCK):
        nb = min(BLOCK, q_to - q0)
        nb = -(-nb // VECTOR) * VECTOR  # past q_to, g is zero (slack or no output position)
        for r in range(0, r_n, 3):
            u0, c0 = divmod(r, c_n)
            u1, c1 = divmod(min(r + 1, r_n - 1), c_n)
            u2, c2 = divmod(min(r + 2, r_n - 1), c_n)
            t0, t1, t2 = tsel[u0], tsel[u1], tsel[u2]
            s0, s1, s2 = lead + q0 - toff[t0], lead + q0 - toff[t1], lead + q0 - toff[t2]
            x0 = xs[tsrc[u0], c0, s0 : s0 + nb]
            x1 = xs[tsrc[u1], c1, s1 : s1 + nb]
            x2 = xs[tsrc[u2], c2, s2 : s2 + nb]
            n_r = min(3, r_n - r)
            for f in range(0, f_n, 4):
                g0 = g[f, q0 : q0 + nb]
                g1 = g[min(f + 1, f_n - 1), q0 : q0 + nb]
                g2 = g[min(f + 2, f_n - 1), q0 : q0 + nb]
                g3 = g[min(f + 3, f_n - 1), q0 : q0 + nb]
                a0 = a1 = a2 = b0 = b1 = b2 = d0 = d1 = d2 = h0 = h1 = h2 = np.float32(0.0)
                for b in range(nb):
                    e0, e1, e2 = x0[b], x1[b], x2[b]
                    v, w, y, z = g0[b], g1[b], g2[b], g3[b]
                    a0, a1, a2 = a0 + v * e0, a1 + v * e1, a2 + v * e2
                    b0, b1, b2 = b0 + w * e0, b1 + w * e1, b2 + w * e2
                    d0, d1, d2 = d0 + y * e0, d1 + y * e1, d2 + y * e2
                    h0, h1, h2 = h0 + z * e0, h1 + z * e1, h2 + z * e2
                sums = ((a0, a1, a2), (b0, b1, b2), (d0, d1, d2), (h0, h1, h2))
                for i in range(min(4, f_n - f)):
                    acc[t0, f + i, c0] += sums[i][0]
                    if n_r > 1:
                        acc[t1, f + i, c1] += sums[i][1]
                    if n_r > 2:
                        acc[t2, f + i, c2] += sums[i][2]


@_jit
def backward_kernel(
    xf: np.ndarray,
    xs: np.ndarray,
    df: np.ndarray,
    ds: np.ndarray,
    acc: np.ndarray,
    n_from: int,
    n_to: int,
    dims: np.ndarray,
    crop: np.ndarray,
    ph: np.ndarray,
    qlo: np.ndarray,
    qlen: np.ndarray,
    toff: np.ndarray,
    tout: np.ndarray,
) -> None:
    """``acc[t, f, c]`` (float64) = kernel gradient of samples ``[n_from, n_to)``."""
    acc[:] = 0.0
    c_n, f_n, i0 = dims[D_C], dims[D_F], dims[D_IN0]
    plane, lead, m0 = dims[D_PLANE], dims[D_LEAD], dims[D_M0]
    xe = np.zeros((i0, c_n, lead + plane + VECTOR), np.float32)
    dye = np.zeros((ph.shape[0] * m0, f_n, plane + lead + VECTOR), np.float32)
    tsel = np.empty(toff.shape[0], np.int64)
    tsrc = np.empty(toff.shape[0], np.int64)
    for n in range(n_from, n_to):
        _embed_input(xf, xs, n, xe, dims)
        _embed_output(df, ds, n, dye, dims, crop, ph)
        for p in range(ph.shape[0]):
            for a in range(ph[p, PH_N0]):
                nsel = _select_taps(ph, p, ph[p, PH_MLO0] + a, tout, i0, tsel, tsrc)
                _tap_dots(
                    dye[p * m0 + a], xe, tsel, tsrc, nsel, toff, qlo[p], qlo[p] + qlen[p], lead, acc
                )


@_jit
def _embed_input_channels_last(
    xf: np.ndarray, xs: np.ndarray, n: int, xe: np.ndarray, dims: np.ndarray
) -> None:
    """Sample ``n`` of ``x`` (flat ``xf``, element strides ``xs`` of (N, C, *in)) onto the zeroed
    channels-last planes ``xe`` (in0, lead + plane, CP): position ``lead + b*g2 + w``."""
    c_n, i0, i1, i2 = dims[D_C], dims[D_IN0], dims[D_IN1], dims[D_IN2]
    g2, lead = dims[D_G2], dims[D_LEAD]
    flat, cp = xe.reshape(-1), xe.shape[2]
    for a in range(i0):
        for c in range(c_n):
            for b in range(i1):
                src = n * xs[0] + c * xs[1] + a * xs[2] + b * xs[3]
                dst = (a * xe.shape[1] + lead + b * g2) * cp + c
                _move_strided(xf, src, xs[4], flat, dst, cp, i2)


@_jit_tile
def _tap_filter_tile(
    acc: np.ndarray,
    g: np.ndarray,
    gl: int,
    f: int,
    f_n: int,
    xe: np.ndarray,
    offs: np.ndarray,
    taps: np.ndarray,
    rows: Any,
    cb: int,
    cp: int,
    planes: Any,
) -> None:
    """``acc[taps[i], f + k, cb : cb + 16] += sum_q g[gb + (f+k)*gl + q] * xe[offs[i] + q*cp +
    cb : ... + 16]`` for 4 taps ``i`` (``taps[i] < 0``: padding, not added) and 4 filters ``k``
    (past ``f_n``: not added), ``q`` over ``rows`` = ``(b_from, b_to, w_from, w_to, g2)``:
    ``b*g2 + w`` for rows ``b`` and columns ``w`` in those ranges (the plane's gap columns
    skipped), summed over ``planes`` = ``(count, gb, g_step, x_step)``: plane ``j`` reads ``g``
    from ``gb + j*g_step`` and ``xe`` from ``offs[i] + j*x_step``; ``acc`` flat (T, F, CP)
    float64.

    Sixteen vectors of 16 channels' sums stay in registers over the whole range (four input
    vectors and four broadcast gradients feed 16 fused multiply-adds per position); no
    horizontal sums, one float64 addition per vector at the end (per run of planes: the
    float64 sums are megabytes, read and written back from beyond L2)."""
    a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = vzero()
    c0 = c1 = c2 = c3 = d0 = d1 = d2 = d3 = vzero()
    count, gb, g_step, x_step = planes
    b_from, b_to, w_from, w_to, g2 = rows
    for j in range(count):
        r0 = gb + j * g_step + f * gl
        r1 = gb + j * g_step + min(f + 1, f_n - 1) * gl
        r2 = gb + j * g_step + min(f + 2, f_n - 1) * gl
        r3 = gb + j * g_step + min(f + 3, f_n - 1) * gl
        xo = cb + j * x_step
        o0, o1, o2, o3 = offs[0] + xo, offs[1] + xo, offs[2] + xo, offs[3] + xo
        for row in range(b_from, b_to):
            for q in range(row * g2 + w_from, row * g2 + w_to):
                p = q * cp
                x0, x1 = vload(xe, o0 + p), vload(xe, o1 + p)
                x2, x3 = vload(xe, o2 + p), vload(xe, o3 + p)
                v = vsplat_at(g, r0 + q)
                a0, a1 = vfma(x0, v, a0), vfma(x1, v, a1)
                a2, a3 = vfma(x2, v, a2), vfma(x3, v, a3)
                v = vsplat_at(g, r1 + q)
                b0, b1 = vfma(x0, v, b0), vfma(x1, v, b1)
                b2, b3 = vfma(x2, v, b2), vfma(x3, v, b3)
                v = vsplat_at(g, r2 + q)
                c0, c1 = vfma(x0, v, c0), vfma(x1, v, c1)
                c2, c3 = vfma(x2, v, c2), vfma(x3, v, c3)
                v = vsplat_at(g, r3 + q)
                d0, d1 = vfma(x0, v, d0), vfma(x1, v, d1)
                d2, d3 = vfma(x2, v, d2), vfma(x3, v, d3)
    _add_filters(acc, taps[0], f, f_n, cb, cp, a0, b0, c0, d0)
    _add_filters(acc, taps[1], f, f_n, cb, cp, a1, b1, c1, d1)
    _add_filters(acc, taps[2], f, f_n, cb, cp, a2, b2, c2, d2)
    _add_filters(acc, taps[3], f, f_n, cb, cp, a3, b3, c3, d3)


@_jit_tile
def _two_taps_tile(
    acc: np.ndarray,
    g: np.ndarray,
    gl: int,
    f: int,
    f_n: int,
    xe: np.ndarray,
    offs: np.ndarray,
    taps: np.ndarray,
    rows: Any,
    cb: int,
    cp: int,
    planes: Any,
) -> None:
    """:func:`_tap_filter_tile` for 2 taps (``taps[0:2]``) by 8 filters ``f .. f+7``."""
    a0 = a1 = b0 = b1 = c0 = c1 = d0 = d1 = vzero()
    e0 = e1 = h0 = h1 = k0 = k1 = m0 = m1 = vzero()
    count, gb, g_step, x_step = planes
    b_from, b_to, w_from, w_to, g2 = rows
    for j in range(count):
        gj = gb + j * g_step
        r0, r1 = gj + f * gl, gj + min(f + 1, f_n - 1) * gl
        r2, r3 = gj + min(f + 2, f_n - 1) * gl, gj + min(f + 3, f_n - 1) * gl
        r4, r5 = gj + min(f + 4, f_n - 1) * gl, gj + min(f + 5, f_n - 1) * gl
        r6, r7 = gj + min(f + 6, f_n - 1) * gl, gj + min(f + 7, f_n - 1) * gl
        o0, o1 = offs[0] + cb + j * x_step, offs[1] + cb + j * x_step
        for row in range(b_from, b_to):
            for q in range(row * g2 + w_from, row * g2 + w_to):
                x0, x1 = vload(xe, o0 + q * cp), vload(xe, o1 + q * cp)
                v = vsplat_at(g, r0 + q)
                a0, a1 = vfma(x0, v, a0), vfma(x1, v, a1)
                v = vsplat_at(g, r1 + q)
                b0, b1 = vfma(x0, v, b0), vfma(x1, v, b1)
                v = vsplat_at(g, r2 + q)
                c0, c1 = vfma(x0, v, c0), vfma(x1, v, c1)
                v = vsplat_at(g, r3 + q)
                d0, d1 = vfma(x0, v, d0), vfma(x1, v, d1)
                v = vsplat_at(g, r4 + q)
                e0, e1 = vfma(x0, v, e0), vfma(x1, v, e1)
                v = vsplat_at(g, r5 + q)
                h0, h1 = vfma(x0, v, h0), vfma(x1, v, h1)
                v = vsplat_at(g, r6 + q)
                k0, k1 = vfma(x0, v, k0), vfma(x1, v, k1)
                v = vsplat_at(g, r7 + q)
                m0, m1 = vfma(x0, v, m0), vfma(x1, v, m1)
    _add_filters(acc, taps[0], f, f_n, cb, cp, a0, b0, c0, d0)
    _add_filters(acc, taps[1], f, f_n, cb, cp, a1, b1, c1, d1)
    if f + 4 < f_n:
        _add_filters(acc, taps[0], f + 4, f_n, cb, cp, e0, h0, k0, m0)
        _add_filters(acc, taps[1], f + 4, f_n, cb, cp, e1, h1, k1, m1)


@_jit
def _add_filters(
    acc: np.ndarray, t: int, f: int, f_n: int, cb: int, cp: int, v0: Any, v1: Any, v2: Any, v3: Any
) -> None:
    """``acc[t, f + k, cb : cb + 16] += v_k`` for the filters ``f + k < f_n`` (tap ``t >= 0``)."""
    if t < 0:
        return
    i = (t * f_n + f) * cp + cb
    vadd_f64(acc, i, v0)
    if f + 1 < f_n:
        vadd_f64(acc, i + cp, v1)
    if f + 2 < f_n:
        vadd_f64(acc, i + 2 * cp, v2)
    if f + 3 < f_n:
        vadd_f64(acc, i + 3 * cp, v3)


@_jit
def backward_kernel_channels(
    xf: np.ndarray,
    xs: np.ndarray,
    df: np.ndarray,
    ds: np.ndarray,
    acc: np.ndarray,
    n_from: int,
    n_to: int,
    dims: np.ndarray,
    crop: np.ndarray,
    ph: np.ndarray,
    qlo: np.ndarray,
    qlen: np.ndarray,
    toff: np.ndarray,
    tout: np.ndarray,
    cp: int,
    direct: bool,
) -> None:
    """:func:`backward_kernel` vectorized over channels: ``acc`` flat (T, F, CP) float64 (CP:
    the channels rounded up to 16) = kernel gradient of samples ``[n_from, n_to)``. The input
    is laid out channels-last (16 channels per vector), so each (4 taps x 4 filters) tile keeps
    its sums in registers over a whole plane (for layers with at least ~12 channels). With
    ``direct`` (one phase, no crop, ``dy``'s rows contiguous and as long as the plane's), the
    output gradient's planes are read where they are, not copied into phase planes."""
    f_n, i0, i1, i2 = dims[D_F], dims[D_IN0], dims[D_IN1], dims[D_IN2]
    plane, lead, m0, g2 = dims[D_PLANE], dims[D_LEAD], dims[D_M0], dims[D_G2]
    acc[:] = 0.0
    xe3 = np.zeros((i0, lead + plane, cp), np.float32)
    xe = xe3.reshape(-1)
    gl = ds[1] if direct else plane + lead
    dye = np.zeros((0 if direct else ph.shape[0] * m0, f_n, plane + lead), np.float32)
    tsel = np.empty(toff.shape[0], np.int64)
    tsrc = np.empty(toff.shape[0], np.int64)
    next_sel = np.empty(toff.shape[0], np.int64)  # the next plane's taps, to compare
    next_src = np.empty(toff.shape[0], np.int64)
    offs = np.empty(4, np.int64)
    taps = np.empty(4, np.int64)
    s_plane = (lead + plane) * cp
    g = df if direct else dye.reshape(-1)
    for n in range(n_from, n_to):
        _embed_input_channels_last(xf, xs, n, xe3, dims)
        if not direct:
            _embed_output(df, ds, n, dye, dims, crop, ph)
        for p in range(ph.shape[0]):
            a = 0
            while a < ph[p, PH_N0]:
                nsel = _select_taps(ph, p, ph[p, PH_MLO0] + a, tout, i0, tsel, tsrc)
                # a run of planes with the same taps (each reading the next input plane): one
                # tile sums them all before its one float64 addition, up to RUN_POSITIONS
                # positions (float32 sums stay as short as a large plane's)
                most = max(1, RUN_POSITIONS // max(1, ph[p, PH_N1] * ph[p, PH_N2]))
                count = 1
                while a + count < ph[p, PH_N0] and count < most:
                    m = ph[p, PH_MLO0] + a + count
                    if _select_taps(ph, p, m, tout, i0, next_sel, next_src) != nsel:
                        break
                    if (next_sel[:nsel] != tsel[:nsel]).any():
                        break
                    count += 1
                if direct:
                    planes = (count, n * ds[0] + a * ds[2], ds[2], s_plane)
                else:
                    planes = (count, (p * m0 + a) * f_n * gl, f_n * gl, s_plane)
                u0 = 0
                while u0 < nsel:
                    # Four taps by four filters; two taps by eight filters where just two share
                    # an in-plane offset (the same positions: D3's phases), or for the last one
                    # or two of a phase, so fewer of the tile's sums are padding.
                    same = 1
                    while u0 + same < nsel and toff[tsel[u0 + same]] == toff[tsel[u0]]:
                        same += 1
                    n_taps = 2 if (nsel - u0 <= 2 or same == 2) and f_n >= 8 else 4
                    # Position q = b*g2 + w reads input position lead + q - toff[t]: nonzero for
                    # rows b in [t1, t1 + in1) and columns w in [t2, t2 + in2) (toff = t1*g2 +
                    # t2); the taps' union, within the phase's output positions.
                    b_from, b_to = ph[p, PH_MLO1] + ph[p, PH_N1], ph[p, PH_MLO1]
                    w_from, w_to = ph[p, PH_MLO2] + ph[p, PH_N2], ph[p, PH_MLO2]
                    for i in range(n_taps):
                        u = min(u0 + i, nsel - 1)
                        t = tsel[u]
                        taps[i] = t if u0 + i < nsel else -1
                        offs[i] = tsrc[u] * s_plane + (lead - toff[t]) * cp
                        t1, t2 = toff[t] // g2, toff[t] % g2
                        b_from, b_to = min(b_from, t1), max(b_to, t1 + i1)
                        w_from, w_to = min(w_from, t2), max(w_to, t2 + i2)
                    b_from = max(b_from, ph[p, PH_MLO1])
                    b_to = min(b_to, ph[p, PH_MLO1] + ph[p, PH_N1])
                    w_from = max(w_from, ph[p, PH_MLO2])
                    w_to = min(w_to, ph[p, PH_MLO2] + ph[p, PH_N2])
                    rows = (b_from, b_to, w_from, w_to, g2)
                    for cb in range(0, cp, LANES):
                        if n_taps == 2:
                            for f in range(0, f_n, 8):
                                _two_taps_tile(
                                    acc, g, gl, f, f_n, xe, offs, taps, rows, cb, cp, planes
                                )
                        else:
                            for f in range(0, f_n, 4):
                                _tap_filter_tile(
                                    acc, g, gl, f, f_n, xe, offs, taps, rows, cb, cp, planes
                                )
                    u0 += n_taps
                a += count


@_jit
def sum_chunks(acc: np.ndarray, total: np.ndarray, t_from: int, t_to: int) -> None:
    """``total[t] = sum_k acc[k, t, :, :C]`` (float64 sums in chunk order, then float32) for taps
    ``[t_from, t_to)``; ``acc`` (chunks, T, F, >= C)."""
    c_n = total.shape[2]
    for t in range(t_from, t_to):
        for f in range(total.shape[1]):
            for c in range(c_n):
                v = acc[0, t, f, c]
                for k in range(1, acc.shape[0]):
                    v += acc[k, t, f, c]
                total[t, f, c] = v


@_jit_ieee
def relu_backward(
    y: np.ndarray,
    dy: np.ndarray,
    dz: np.ndarray,
    sums: np.ndarray,
    first: bool,
    n_from: int,
    n_to: int,
) -> None:
    """``dz = dy`` where ``y > 0``, else 0, for samples ``[n_from, n_to)`` of (N, A, B) arrays,
    and ``sums[f] += dz`` summed over all but the channel axis ``f`` (float64): axis 1 when
    ``first`` (channels first), else axis 2. One pass: relu's derivative and the bias gradient
    together."""
    for n in range(n_from, n_to):
        for a in range(y.shape[1]):
            yr, gr, zr = y[n, a], dy[n, a], dz[n, a]
            if first:
                total = 0.0
                for b in range(y.shape[2]):
                    v = gr[b] * np.float32(yr[b] > 0)  # NaN kept as NumPy's dy * (y > 0)
                    zr[b] = v
                    total += v
                sums[a] += total
            else:
                for b in range(y.shape[2]):
                    v = gr[b] * np.float32(yr[b] > 0)
                    zr[b] = v
                    sums[b] += v


@_jit_ieee
def mse_grad(
    p: np.ndarray,
    t: np.ndarray,
    g: np.ndarray,
    scale: float,
    sums: np.ndarray,
    bounds: np.ndarray,
    k_from: int,
    k_to: int,
) -> None:
    """For the blocks ``k`` in ``[k_from, k_to)`` of flat float32 arrays (elements ``bounds[k]``
    to ``bounds[k + 1]``): ``g = (p - t) * scale`` (the bits of NumPy's ``(p - t) * scale`` in
    float32) and ``sums[k]`` = the sum of the float32 ``(p - t)**2`` in float64. One pass: the
    mean squared error's value and gradient together."""
    sc = np.float32(scale)
    for k in range(k_from, k_to):
        # slices: indices known non-negative, so the loop is vectorized (no wrap-around checks)
        pk, tk, gk = p[bounds[k] : bounds[k + 1]], t[bounds[k] : bounds[k + 1]], g[bounds[k] :]
        total = 0.0
        for i in range(pk.shape[0]):
            d = pk[i] - tk[i]
            gk[i] = d * sc
            total += np.float64(d * d)  # squared in float32, as NumPy's: inf where it overflows
        sums[k] = total


@_jit_exact
def adam_update(
    w: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    c1: float,
    c2: float,
    alpha: float,
    eps: float,
    i_from: int,
    i_to: int,
) -> None:
    """Adam's update of elements ``[i_from, i_to)`` of flat float32 arrays, in place: ``m +=
    (g - m) * c1``, ``v += (g*g - v) * c2``, ``w -= alpha * m / (sqrt(v) + eps)``, each step in
    float32 with the scalars rounded to float32 (the bits of the NumPy rule) and one pass."""
    b1, b2, a, e = np.float32(c1), np.float32(c2), np.float32(alpha), np.float32(eps)
    # slices: indices known non-negative, so the loop is vectorized
    wk, gk, mk, vk = w[i_from:i_to], g[i_from:i_to], m[i_from:i_to], v[i_from:i_to]
    for i in range(wk.shape[0]):
        gi = gk[i]
        mi = mk[i] + (gi - mk[i]) * b1
        vi = vk[i] + (gi * gi - vk[i]) * b2
        mk[i] = mi
        vk[i] = vi
        wk[i] = wk[i] - a * mi / (np.sqrt(vi) + e)


# ----------------------------------------------------------------------------- Python side


def flat(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A 1-D float32 view of all of ``a``'s memory and ``a``'s strides in elements, so every
    kernel has one signature whatever the axis order (a copy only when ``a`` is not a
    permutation of a contiguous float32 array)."""
    if a.dtype != np.float32:
        a = a.astype(np.float32)
    order = sorted(range(a.ndim), key=a.strides.__getitem__, reverse=True)
    inner = a.transpose(order)  # C-contiguous when ``a`` is a permutation of such an array
    if not inner.flags.c_contiguous:
        a = inner = np.ascontiguousarray(a)
    # A length-1 axis may carry any stride (0 from np.newaxis); only index 0 is ever used there.
    st = [1 if n == 1 else s // 4 for n, s in zip(a.shape, a.strides)]
    return inner.reshape(-1), np.array(st, dtype=np.int64)


def takes_in_place(*arrays: Any) -> bool:
    """Whether the compiled element-wise passes (MSE, Adam) can take ``arrays`` as they are:
    compiled kernels, and NumPy float32 arrays, C-contiguous, all of one shape."""
    return AVAILABLE and all(
        isinstance(a, np.ndarray)
        and a.dtype == np.float32
        and a.flags.c_contiguous
        and a.shape == arrays[0].shape
        for a in arrays
    )


def _env_threads() -> int:
    env = os.environ.get("CONV3DT_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


THREADS = _env_threads()
_pool: ThreadPoolExecutor | None = None


def _forget_pool() -> None:
    """A forked child has none of the parent's worker threads: start a new pool there."""
    global _pool
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


if AVAILABLE:

    @numba.vectorize(["float32(float32)"], cache=True)
    def erf(x: float) -> float:  # the C library's erf, element-wise (the exact GELU)
        return math.erf(x)


def run_chunks(
    fn: Callable[..., None],
    n: int,
    chunks: int,
    make_args: Callable[[int, int, int], tuple[Any, ...]],
) -> None:
    """Run ``fn(*make_args(k, n_from, n_to))`` over ``chunks`` contiguous sample ranges, on
    :data:`THREADS` threads (the kernels release the GIL): the calling thread and ``THREADS - 1``
    helpers take the ranges from one queue. The caller works instead of waiting: one helper
    to wake per helper thread, not one per range (a wake-up costs 30-150 us in a VM, idle
    longer the more)."""
    global _pool
    bounds = [(n * k) // chunks for k in range(chunks + 1)]
    jobs = [(k, bounds[k], bounds[k + 1]) for k in range(chunks) if bounds[k] < bounds[k + 1]]
    if THREADS == 1 or len(jobs) == 1:
        for job in jobs:
            fn(*make_args(*job))
        return
    if _pool is None:
        _pool = ThreadPoolExecutor(THREADS - 1, thread_name_prefix="conv3dt")
    pending = collections.deque(jobs)

    def drain() -> None:
        while True:
            try:
                job = pending.popleft()  # atomic: each range is taken once
            except IndexError:
                return
            fn(*make_args(*job))

    helpers = []
    for _ in range(min(THREADS, len(jobs)) - 1):
        try:
            helpers.append(_pool.submit(drain))
        except RuntimeError:  # the interpreter is exiting (a warm-up still running): no new
            break  # threads; this one does the rest
    try:
        drain()
    finally:
        for helper in helpers:  # every range is done (or failed) before the caller goes on
            helper.exception()
    for helper in helpers:
        helper.result()


def threads() -> int:
    """Worker threads the kernels use."""
    return THREADS if AVAILABLE else 1


def ranges_for(n: int) -> int:
    """The ranges :func:`run_chunks` splits ``n`` units of work into: a few per thread, so one
    slowed thread is made up for; at most one per unit, at least one."""
    return max(1, min(n, 4 * THREADS))
