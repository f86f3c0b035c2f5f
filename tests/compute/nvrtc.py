"""NVRTC, NVIDIA's runtime CUDA compiler (the one CuPy's ``RawKernel`` uses), called through
ctypes. It compiles CUDA C++ to GPU machine code without a GPU, so the tests can check that every
kernel source compiles, and how many registers it needs, on machines without one.

The library comes from the ``nvidia-cuda-nvrtc-cu12`` wheel (a test dependency on Linux x86-64).
"""

from __future__ import annotations

import ctypes
import re
from dataclasses import dataclass
from pathlib import Path


def _library() -> ctypes.CDLL:
    import nvidia.cuda_nvrtc  # noqa: PLC0415 - the wheel's package

    for folder in nvidia.cuda_nvrtc.__path__:
        for lib in sorted(Path(folder, "lib").glob("libnvrtc.so.*")):
            return ctypes.CDLL(str(lib))
    raise RuntimeError("the nvidia-cuda-nvrtc-cu12 wheel holds no libnvrtc.so")


@dataclass(frozen=True)
class Compiled:
    ok: bool
    log: str
    cubin_bytes: int

    @property
    def registers(self) -> int:
        return int(re.search(r"Used (\d+) registers", self.log)[1])

    @property
    def spills(self) -> int:
        """Bytes of spill stores plus loads (registers that did not fit, sent to local memory)."""
        m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", self.log)
        return int(m[1]) + int(m[2])


class Nvrtc:
    def __init__(self) -> None:
        self._lib = _library()

    def compile(self, source: str, name: str, arch: str = "sm_90") -> Compiled:
        """Compile ``source`` to a cubin for ``arch`` with ptxas' resource report in the log."""
        lib, prog = self._lib, ctypes.c_void_p()
        if lib.nvrtcCreateProgram(
            ctypes.byref(prog), source.encode(), name.encode(), 0, None, None
        ):
            raise RuntimeError("nvrtcCreateProgram failed")
        try:
            options = [f"--gpu-architecture={arch}".encode(), b"--ptxas-options=-v"]
            status = lib.nvrtcCompileProgram(
                prog, len(options), (ctypes.c_char_p * len(options))(*options)
            )
            size = ctypes.c_size_t()
            lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
            log = ctypes.create_string_buffer(size.value)
            lib.nvrtcGetProgramLog(prog, log)
            cubin = ctypes.c_size_t()
            if status == 0:
                lib.nvrtcGetCUBINSize(prog, ctypes.byref(cubin))
            return Compiled(status == 0, log.value.decode(errors="replace"), cubin.value)
        finally:
            lib.nvrtcDestroyProgram(ctypes.byref(prog))
