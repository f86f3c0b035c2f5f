"""Array backends: the same layer code runs on NumPy (CPU) and CuPy (GPU).

This is the only module of ``compute`` that imports CuPy, and it does so lazily, inside
:func:`get_backend`. Arrays crossing the public API are always NumPy float32; a backend moves them to
and from its device.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from .errors import BackendError, ParameterError

BACKEND_NAMES = ("auto", "numpy", "cupy")
DTYPE = np.float32

# CuPy ships no type information, so to mypy a backend's arrays and its array module are Any; these
# names say in signatures which one is meant.
Array = Any  # an array of the backend's module: numpy.ndarray, or cupy.ndarray on ``cupy``
ArrayModule = Any  # numpy, or cupy


@dataclass(frozen=True)
class Backend:
    """An array module plus the few operations NumPy and CuPy spell differently."""

    name: str
    xp: ArrayModule
    device_name: str = "CPU"

    def asarray(self, a: Any) -> Array:
        """Host or device array -> this backend's float32 array."""
        return self.xp.asarray(a, dtype=DTYPE)

    def is_device_array(self, a: Any) -> bool:
        """Whether ``a`` already lives on this backend's GPU (a CuPy array on ``cupy``)."""
        return self.name == "cupy" and isinstance(a, self.xp.ndarray)

    def to_numpy(self, a: Array) -> np.ndarray:
        if self.name == "cupy":
            return self.xp.asnumpy(a)
        return np.asarray(a)

    def erf(self, a: Array) -> Array:
        if self.name == "cupy":
            import cupyx.scipy.special as special  # noqa: PLC0415 - lazy by design

            return special.erf(a).astype(DTYPE, copy=False)
        from .special import erf  # noqa: PLC0415 - special imports this module

        return erf(a)

    def free_memory(self) -> int | None:
        """Bytes the GPU can still allocate (free device memory plus what CuPy's pool holds
        unused); None on the CPU, where the host's memory is the limit."""
        if self.name != "cupy":
            return None
        free, _total = self.xp.cuda.runtime.memGetInfo()
        return int(free) + int(self.xp.get_default_memory_pool().free_bytes())

    def synchronize(self) -> None:
        if self.name == "cupy":
            self.xp.cuda.Stream.null.synchronize()


NUMPY = Backend("numpy", np, "CPU")


@cache
def _cupy_backend() -> Backend | str:
    """The CuPy backend, or the one-line reason it is unavailable."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a CUDA library error raised on import
        return f"CuPy is not installed or failed to import ({type(exc).__name__}: {exc})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
        if count < 1:
            return "CuPy imported but no CUDA GPU answered"
        props = cupy.cuda.runtime.getDeviceProperties(0)
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        cupy.zeros(1, dtype=DTYPE).sum()  # a GPU that answers
    except Exception as exc:
        return f"CuPy imported but no CUDA GPU answered ({type(exc).__name__}: {exc})"
    return Backend("cupy", cupy, name)


def cupy_status() -> str:
    """'available (<GPU name>)' or the reason CuPy cannot be used."""
    b = _cupy_backend()
    return f"available ({b.device_name})" if isinstance(b, Backend) else b


def get_backend(name: str | Backend = "auto") -> Backend:
    """Return a backend: ``numpy``, ``cupy`` (error when unavailable) or ``auto`` (CuPy when it
    imports and a GPU answers, else NumPy)."""
    if isinstance(name, Backend):
        return name
    if name not in BACKEND_NAMES:
        raise ParameterError(
            f"Invalid value for `backend`: expected one of {', '.join(BACKEND_NAMES)}. "
            f"Received: backend={name!r}"
        )
    if name == "numpy":
        return NUMPY
    cp = _cupy_backend()
    if isinstance(cp, Backend):
        return cp
    if name == "cupy":
        raise BackendError(f"Backend `cupy` is unavailable: {cp}")
    return NUMPY
