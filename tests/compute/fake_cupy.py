"""A stand-in for CuPy that runs the ``cupy`` backend's code path on the CPU, for machines (CI)
without a GPU.

``module(build_dir)`` returns a module named ``cupy`` whose arrays are :class:`DeviceArray`: NumPy
arrays behind a wall that, like CuPy's, refuses implicit conversion to NumPy (``np.asarray(a)``
raises), so any place where the compute core forgets ``backend.to_numpy`` fails here as it would on a
GPU. NumPy functions and operators applied to a device array return device arrays (CuPy implements
NumPy's dispatch protocols the same way), reductions return 0-d device arrays, and ``RawKernel``
runs our CUDA sources under :mod:`cuda_emulation`. So a Graph on ``Backend("cupy", module(...))``
goes through the real ``cuda`` dispatch of :mod:`compute.conv3d_transpose_ops`, the fused optimizer
update and every host-side line of the GPU path.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from cuda_emulation import EmulatedKernels

from conv3dt_studio.compute.backend import Backend
from conv3dt_studio.compute.special import erf_numpy


def _unwrap(v: Any) -> Any:
    if isinstance(v, DeviceArray):
        return v._a
    if isinstance(v, (list, tuple)):
        return type(v)(_unwrap(x) for x in v)
    if isinstance(v, dict):
        return {k: _unwrap(x) for k, x in v.items()}
    return v


def _wrap(v: Any) -> Any:
    if isinstance(v, (np.ndarray, np.generic)):
        return DeviceArray(np.asarray(v))
    if isinstance(v, (list, tuple)):
        return type(v)(_wrap(x) for x in v)
    return v


class _Pointer:
    def __init__(self, a: np.ndarray) -> None:
        self.ptr = a.ctypes.data


class DeviceArray(np.lib.mixins.NDArrayOperatorsMixin):
    """A NumPy array posing as a CuPy array."""

    __slots__ = ("_a",)

    def __init__(self, a: np.ndarray) -> None:
        self._a = a

    def __array__(self, *args, **kwargs):
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed (a device array: use asnumpy)"
        )

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = kwargs.get("out")
        if out is not None:
            kwargs["out"] = tuple(_unwrap(o) for o in out)
        result = getattr(ufunc, method)(*_unwrap(inputs), **kwargs)
        return out[0] if out is not None and len(out) == 1 else _wrap(result)

    def __array_function__(self, func, types, args, kwargs):
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))

    # the ndarray surface the compute core uses
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    size = property(lambda self: self._a.size)
    ndim = property(lambda self: self._a.ndim)
    flags = property(lambda self: self._a.flags)
    strides = property(lambda self: self._a.strides)
    T = property(lambda self: DeviceArray(self._a.T))
    data = property(lambda self: _Pointer(self._a))

    def __getattr__(self, name: str):
        if name.startswith("__"):  # __array_interface__ and the like would hand NumPy the data
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if callable(attr):
            return lambda *a, **k: _wrap(attr(*_unwrap(a), **_unwrap(k)))
        return _wrap(attr)

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key)])

    def __setitem__(self, key, value):
        self._a[_unwrap(key)] = _unwrap(value)

    def __len__(self) -> int:
        return len(self._a)

    def __float__(self) -> float:  # CuPy allows these (they synchronise)
        return float(self._a)

    def __int__(self) -> int:
        return int(self._a)

    def __bool__(self) -> bool:
        return bool(self._a)

    def __repr__(self) -> str:
        return f"DeviceArray({self._a!r})"

    def get(self) -> np.ndarray:
        return self._a.copy()


class _RawKernel:
    """``cupy.RawKernel(source, name)``; a call ``kernel(grid, block, args)`` runs the emulation."""

    def __init__(self, cp, build_dir: Path, source: str, name: str) -> None:
        if source not in cp.builds:
            cp.builds[source] = EmulatedKernels(source, build_dir)
        self._kernels, self._name, self._launches = cp.builds[source], name, cp.launches

    def __call__(self, grid, block, args) -> None:
        values = []
        for a in args:
            a = _unwrap(a)
            values.append(int(a) if isinstance(a, np.generic) else a)
        self._kernels.run(self._name, grid, block[0], *values)
        self._launches[self._name] = self._launches.get(self._name, 0) + 1


def module(build_dir: Path) -> types.ModuleType:
    """A fresh ``cupy`` stand-in; compiled kernels are kept in ``build_dir``."""
    cp = types.ModuleType("cupy")
    cp.builds = {}  # source -> EmulatedKernels
    cp.launches = {}  # kernel name -> launches so far: what ran

    def asarray(a, dtype=None):
        if isinstance(a, DeviceArray):
            return a if dtype is None or a.dtype == dtype else DeviceArray(a._a.astype(dtype))
        return DeviceArray(np.array(a, dtype=dtype, copy=True))  # host -> device copies

    def asnumpy(a):
        return a._a.copy() if isinstance(a, DeviceArray) else np.asarray(a)

    def passthrough(name):
        if name.startswith("__"):
            raise AttributeError(name)
        fn = getattr(np, name)
        return lambda *a, **k: _wrap(fn(*_unwrap(a), **_unwrap(k)))

    cp.asarray = asarray
    cp.asnumpy = asnumpy
    cp.ndarray = DeviceArray
    cp.float32 = np.float32
    cp.RawKernel = lambda source, name: _RawKernel(cp, build_dir, source, name)
    cp.cuda = types.SimpleNamespace(
        Stream=types.SimpleNamespace(null=types.SimpleNamespace(synchronize=lambda: None)),
        runtime=types.SimpleNamespace(memGetInfo=lambda: (8 * 2**30, 16 * 2**30)),
    )
    cp.get_default_memory_pool = lambda: types.SimpleNamespace(free_bytes=lambda: 0)
    cp.__getattr__ = passthrough  # every other NumPy function, on device arrays
    return cp


@contextlib.contextmanager
def emulated_gpu(build_dir: Path) -> Iterator[Backend]:
    """A ``cupy`` Backend on the stand-in, with ``cupyx.scipy.special.erf`` (the backend's erf on
    CuPy) provided by our NumPy erf while the context lasts."""
    cupyx = types.ModuleType("cupyx")
    cupyx.scipy = types.SimpleNamespace(
        special=types.SimpleNamespace(erf=lambda a: _wrap(erf_numpy(_unwrap(a))))
    )
    shims = {"cupyx": cupyx, "cupyx.scipy": cupyx.scipy, "cupyx.scipy.special": cupyx.scipy.special}
    saved = {name: sys.modules.get(name) for name in shims}
    sys.modules.update(shims)
    try:
        yield Backend("cupy", module(build_dir), "emulated GPU")
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
