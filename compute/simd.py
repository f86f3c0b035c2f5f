"""Sixteen-float vectors for the compiled CPU kernels: Numba intrinsics that emit LLVM vector IR.

Numba's loop vectorizer keeps a loop's running sums in registers only when they are scalars; the
transposed convolution's forward needs a tile of sums (8 filters x 32 positions) that stays in
registers while every (tap, channel) row passes through it, and the kernel gradient a tile of
(4 taps x 4 filters) channel vectors. These intrinsics let :mod:`compute.cpu_kernels` write such
tiles as plain local variables of type :data:`f32x16` (LLVM ``<16 x float>``):

- ``vload`` / ``vstore``: 16 floats at an index (unaligned, no bounds check: the caller
  guarantees they lie in the array's memory); ``vstore_lanes``: some consecutive lanes only;
  ``vgather``: 16 floats a constant step apart;
- ``vsplat`` (one float in every lane), ``vsplat_at`` (one array element, loaded and broadcast),
  ``vzero``;
- ``vfma`` (``a * b + c``, one rounding), ``vadd``, ``vsub``, ``vrelu`` (0 below zero, NaN kept);
- ``vzip_lo`` / ``vzip_hi``: the lanes of two vectors interleaved (a stride-2 output row);
- ``vadd_f64`` (widen to float64 and add into memory);
- ``fload`` / ``fstore``: one float, with no index checks (short strided rows).

LLVM lowers ``<16 x float>`` to one AVX-512 register, two AVX registers or four SSE registers,
whatever the CPU has. Numba's disk cache of :mod:`compute.cpu_kernels` is keyed on that file, not
this one: after changing an intrinsic's code, touch ``cpu_kernels.py`` (or clear its cache).

Without Numba each function is a NumPy equivalent on 16-element arrays (the kernels then run
interpreted, slowly, with the same results).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

LANES = 16

if TYPE_CHECKING:  # what the kernels see; the definitions below are Numba intrinsics

    def vload(arr: np.ndarray, idx: int) -> Any: ...
    def vstore(arr: np.ndarray, idx: int, v: Any) -> None: ...
    def vadd_f64(arr: np.ndarray, idx: int, v: Any) -> None: ...
    def vsplat(x: float) -> Any: ...
    def vsplat_at(arr: np.ndarray, idx: int) -> Any: ...
    def vzero() -> Any: ...
    def vfma(a: Any, b: Any, c: Any) -> Any: ...
    def vstore_lanes(arr: np.ndarray, idx: int, v: Any, lo: int, n: int) -> None: ...
    def vgather(arr: np.ndarray, idx: int, step: int) -> Any: ...
    def vadd(a: Any, b: Any) -> Any: ...
    def vsub(a: Any, b: Any) -> Any: ...
    def vzip_lo(a: Any, b: Any) -> Any: ...
    def vzip_hi(a: Any, b: Any) -> Any: ...
    def vrelu(a: Any) -> Any: ...
    def fload(arr: np.ndarray, idx: int) -> float: ...
    def fstore(arr: np.ndarray, idx: int, v: float) -> None: ...

else:
    try:
        from llvmlite import ir
        from numba import types
        from numba.core import cgutils
        from numba.extending import intrinsic, models, register_model
    except Exception:  # pragma: no cover - Numba absent, or failing to import with this NumPy
        ir = None

if not TYPE_CHECKING and ir is not None:
    _VEC = ir.VectorType(ir.FloatType(), LANES)
    _DVEC = ir.VectorType(ir.DoubleType(), LANES)

    class F32x16(types.Type):
        """Numba type of a ``<16 x float>`` value."""

        def __init__(self) -> None:
            super().__init__(name="f32x16")

    f32x16 = F32x16()

    @register_model(F32x16)
    class _F32x16Model(models.PrimitiveModel):
        def __init__(self, dmm: Any, fe_type: Any) -> None:
            super().__init__(dmm, fe_type, _VEC)

    def _address(context: Any, builder: Any, aryty: Any, ary: Any, idx: Any, vec: Any) -> Any:
        """Pointer to element ``idx`` of the array's data, as a pointer to ``vec``."""
        data = context.make_array(aryty)(context, builder, ary).data
        return builder.bitcast(builder.gep(data, [idx]), vec.as_pointer())

    @intrinsic
    def vload(typingctx: Any, arr: Any, idx: Any) -> Any:
        """``arr[idx : idx + 16]`` of a float32 array as a vector."""
        sig = f32x16(arr, types.intp)

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            idx = context.cast(builder, args[1], sig.args[1], types.intp)
            return builder.load(
                _address(context, builder, sig.args[0], args[0], idx, _VEC), align=4
            )

        return sig, codegen

    @intrinsic
    def vstore(typingctx: Any, arr: Any, idx: Any, v: Any) -> Any:
        """``arr[idx : idx + 16] = v`` for a float32 array."""
        sig = types.void(arr, types.intp, f32x16)

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            ptr = _address(context, builder, sig.args[0], args[0], args[1], _VEC)
            builder.store(args[2], ptr, align=4)
            return context.get_dummy_value()

        return sig, codegen

    @intrinsic
    def vadd_f64(typingctx: Any, arr: Any, idx: Any, v: Any) -> Any:
        """``arr[idx : idx + 16] += v`` for a float64 array (``v`` widened exactly)."""
        sig = types.void(arr, types.intp, f32x16)

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            ptr = _address(context, builder, sig.args[0], args[0], args[1], _DVEC)
            total = builder.fadd(builder.load(ptr, align=8), builder.fpext(args[2], _DVEC))
            builder.store(total, ptr, align=8)
            return context.get_dummy_value()

        return sig, codegen

    @intrinsic
    def vsplat(typingctx: Any, x: Any) -> Any:
        """A vector with ``x`` (float32) in every lane."""
        sig = f32x16(types.float32)

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            lane0 = ir.Constant(ir.IntType(32), 0)
            one = builder.insert_element(ir.Constant(_VEC, ir.Undefined), args[0], lane0)
            mask = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)
            return builder.shuffle_vector(one, ir.Constant(_VEC, ir.Undefined), mask)

        return sig, codegen

    @intrinsic
    def vsplat_at(typingctx: Any, arr: Any, idx: Any) -> Any:
        """``arr[idx]`` (float32 array) in every lane: one broadcast load, no index checks."""
        sig = f32x16(arr, types.intp)

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            data = context.make_array(sig.args[0])(context, builder, args[0]).data
            one = builder.insert_element(
                ir.Constant(_VEC, ir.Undefined),
                builder.load(builder.gep(data, [args[1]]), align=4),
                ir.Constant(ir.IntType(32), 0),
            )
            mask = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)
            return builder.shuffle_vector(one, ir.Constant(_VEC, ir.Undefined), mask)

        return sig, codegen

    @intrinsic
    def vzero(typingctx: Any) -> Any:
        """A vector of zeros."""
        sig = f32x16()

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            return ir.Constant(_VEC, [0.0] * LANES)

        return sig, codegen

    @intrinsic
    def vfma(typingctx: Any, a: Any, b: Any, c: Any) -> Any:
        """``a * b + c`` lane by lane, rounded once (LLVM's ``fma``)."""
        sig = f32x16(f32x16, f32x16, f32x16)

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            fnty = ir.FunctionType(_VEC, [_VEC] * 3)
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.fma.v16f32")
            return builder.call(fn, args)

        return sig, codegen

    @intrinsic
    def fload(typingctx: Any, arr: Any, idx: Any) -> Any:
        """``arr[idx]`` of a float32 array, with no index checks (strided loops over views pay
        for their bounds: 17 ns a row of 8 on D3's output)."""
        sig = types.float32(arr, types.intp)

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            data = context.make_array(sig.args[0])(context, builder, args[0]).data
            return builder.load(builder.gep(data, [args[1]]), align=4)

        return sig, codegen

    @intrinsic
    def fstore(typingctx: Any, arr: Any, idx: Any, v: Any) -> Any:
        """``arr[idx] = v`` for a float32 array, with no index checks."""
        sig = types.void(arr, types.intp, types.float32)

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            data = context.make_array(sig.args[0])(context, builder, args[0]).data
            builder.store(args[2], builder.gep(data, [args[1]]), align=4)
            return context.get_dummy_value()

        return sig, codegen

    @intrinsic
    def vstore_lanes(typingctx: Any, arr: Any, idx: Any, v: Any, lo: Any, n: Any) -> Any:
        """``arr[idx + i] = v[lo + i]`` for ``i < n``: lanes ``lo .. lo + n - 1`` of ``v`` only
        (one masked store; the memory around is not touched)."""
        sig = types.void(arr, types.intp, f32x16, types.intp, types.intp)

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            arr_v, idx, v, lo, n = args
            i64 = ir.IntType(64)
            ivec = ir.VectorType(i64, LANES)
            lanes = ir.Constant(ivec, list(range(LANES)))

            def splat(x: Any) -> Any:
                one = builder.insert_element(
                    ir.Constant(ivec, ir.Undefined), x, ir.Constant(ir.IntType(32), 0)
                )
                zeros = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)
                return builder.shuffle_vector(one, ir.Constant(ivec, ir.Undefined), zeros)

            mask = builder.and_(
                builder.icmp_signed(">=", lanes, splat(lo)),
                builder.icmp_signed("<", lanes, splat(builder.add(lo, n))),
            )
            ptr = _address(context, builder, sig.args[0], arr_v, builder.sub(idx, lo), _VEC)
            fnty = ir.FunctionType(ir.VoidType(), [_VEC, ptr.type, ir.IntType(32), mask.type])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.masked.store.v16f32.p0")
            builder.call(fn, [v, ptr, ir.Constant(ir.IntType(32), 4), mask])
            return context.get_dummy_value()

        return sig, codegen

    @intrinsic
    def vgather(typingctx: Any, arr: Any, idx: Any, step: Any) -> Any:
        """``arr[idx + i*step]`` for lanes ``i`` (float32 array): one gather, no index checks."""
        sig = f32x16(arr, types.intp, types.intp)

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            arr_v, idx, step = args
            i64, i32 = ir.IntType(64), ir.IntType(32)
            ivec = ir.VectorType(i64, LANES)
            zeros = ir.Constant(ir.VectorType(i32, LANES), [0] * LANES)

            def splat(x: Any) -> Any:
                one = builder.insert_element(
                    ir.Constant(ivec, ir.Undefined), x, ir.Constant(i32, 0)
                )
                return builder.shuffle_vector(one, one, zeros)

            data = context.make_array(sig.args[0])(context, builder, arr_v).data
            base = builder.ptrtoint(builder.gep(data, [idx]), i64)
            bytes_ = builder.mul(ir.Constant(ivec, [4 * i for i in range(LANES)]), splat(step))
            ptrs = builder.inttoptr(
                builder.add(splat(base), bytes_), ir.VectorType(data.type, LANES)
            )
            mask = ir.Constant(ir.VectorType(ir.IntType(1), LANES), [1] * LANES)
            fnty = ir.FunctionType(_VEC, [ptrs.type, i32, mask.type, _VEC])
            name = "llvm.masked.gather.v16f32.v16p0"
            fn = cgutils.get_or_insert_function(builder.module, fnty, name)
            return builder.call(
                fn, [ptrs, ir.Constant(i32, 4), mask, ir.Constant(_VEC, ir.Undefined)]
            )

        return sig, codegen

    def _lanewise(operation: str) -> Any:
        """The intrinsic applying the LLVM builder's ``operation`` (``fadd``: ``a + b``,
        ``fsub``: ``a - b``) lane by lane to two vectors."""

        def lanewise(typingctx: Any, a: Any, b: Any) -> Any:
            sig = f32x16(f32x16, f32x16)

            def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
                return getattr(builder, operation)(args[0], args[1])

            return sig, codegen

        return intrinsic(lanewise)

    vadd, vsub = _lanewise("fadd"), _lanewise("fsub")

    def _zip(half: int) -> Any:
        """The intrinsic interleaving half ``half`` (0: lanes 0-7, 1: lanes 8-15) of two vectors:
        ``a[h], b[h], a[h + 1], b[h + 1], ...``."""

        def zip_half(typingctx: Any, a: Any, b: Any) -> Any:
            sig = f32x16(f32x16, f32x16)

            def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
                lanes = [half * LANES // 2 + i // 2 + (LANES if i % 2 else 0) for i in range(LANES)]
                mask = ir.Constant(ir.VectorType(ir.IntType(32), LANES), lanes)
                return builder.shuffle_vector(args[0], args[1], mask)

            return sig, codegen

        return intrinsic(zip_half)

    vzip_lo, vzip_hi = _zip(0), _zip(1)

    @intrinsic
    def vrelu(typingctx: Any, a: Any) -> Any:
        """0 where ``a < 0``, else ``a``, lane by lane (NaN kept, as NumPy's ``maximum``)."""
        sig = f32x16(f32x16)

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            zero = ir.Constant(_VEC, [0.0] * LANES)
            return builder.select(builder.fcmp_ordered("<", args[0], zero), zero, args[0])

        return sig, codegen

elif not TYPE_CHECKING:  # pragma: no cover - exercised only where Numba does not import

    def vload(arr: np.ndarray, idx: int) -> np.ndarray:
        out = np.zeros(LANES, np.float32)
        part = arr[idx : idx + LANES]
        out[: part.shape[0]] = part
        return out

    def vstore(arr: np.ndarray, idx: int, v: np.ndarray) -> None:
        part = arr[idx : idx + LANES]
        part[:] = v[: part.shape[0]]

    def vadd_f64(arr: np.ndarray, idx: int, v: np.ndarray) -> None:
        part = arr[idx : idx + LANES]
        part += v[: part.shape[0]].astype(np.float64)

    def vsplat(x: float) -> np.ndarray:
        return np.full(LANES, x, np.float32)

    def vsplat_at(arr: np.ndarray, idx: int) -> np.ndarray:
        return np.full(LANES, arr[idx], np.float32)

    def vzero() -> np.ndarray:
        return np.zeros(LANES, np.float32)

    def vfma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        return (a.astype(np.float64) * b + c).astype(np.float32)

    def vstore_lanes(arr: np.ndarray, idx: int, v: np.ndarray, lo: int, n: int) -> None:
        arr[idx : idx + n] = v[lo : lo + n]

    def vgather(arr: np.ndarray, idx: int, step: int) -> np.ndarray:
        return arr[idx : idx + LANES * step : step].copy()

    def vadd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a + b).astype(np.float32)

    def vsub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a - b).astype(np.float32)

    def vzip_lo(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.stack([a[: LANES // 2], b[: LANES // 2]], axis=1).reshape(-1)

    def vzip_hi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.stack([a[LANES // 2 :], b[LANES // 2 :]], axis=1).reshape(-1)

    def vrelu(a: np.ndarray) -> np.ndarray:
        return np.where(a < 0, np.float32(0), a)

    def fload(arr: np.ndarray, idx: int) -> float:
        return float(arr[idx])

    def fstore(arr: np.ndarray, idx: int, v: float) -> None:
        arr[idx] = v
