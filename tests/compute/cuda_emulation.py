"""Run CUDA kernel sources on the CPU, where no GPU is present, to check what they compute.

The kernel text is compiled as C++ with a small runtime: every block of a launch runs its
``blockDim.x`` threads as cooperative user-level threads (``ucontext``). A thread runs until it
reaches ``__syncthreads()`` or returns; when every thread of the block has done so, the waiting ones
go on. That is the barrier semantics of CUDA, executed deterministically, so a missing barrier shows
up as a wrong sum (thread 0 runs first and would read slots the others have not written yet), and a
barrier that only some threads of a block reach is reported as an error, as it is undefined on a
GPU. Shared memory is one static array per kernel, reused block after block, as on a GPU.

Only 1-D blocks are emulated (all our kernels use them); grids may be 3-D.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

_RUNTIME = r"""
#include <math.h>  // sqrtf, fabsf, fmaxf: the CUDA device functions of the same names
#include <functional>
#include <vector>
#include <ucontext.h>
struct Dim3 { unsigned x, y, z; };
static Dim3 blockIdx, threadIdx, blockDim, gridDim;
#define __global__
#define __restrict__
#define __shared__ static

static ucontext_t scheduler;
static std::vector<ucontext_t> contexts;
static std::vector<int> finished, arrivals;
static std::function<void()> body;
static int current = 0;
static int error = 0;  // 1: a barrier reached by only some threads of a block

static void __syncthreads() {
    arrivals[current] += 1;
    swapcontext(&contexts[current], &scheduler);
}

static void thread_entry() {
    body();
    finished[current] = 1;  // uc_link returns to the scheduler
}

static int emulate(Dim3 grid, unsigned threads, std::function<void()> kernel) {
    const size_t stack = 64 * 1024;
    std::vector<char> stacks(stack * threads);
    body = kernel;
    gridDim = grid;
    blockDim = Dim3{threads, 1, 1};
    error = 0;
    for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
    for (unsigned bx = 0; bx < grid.x; ++bx) {
        blockIdx = Dim3{bx, by, bz};
        contexts.assign(threads, ucontext_t());
        finished.assign(threads, 0);
        arrivals.assign(threads, 0);
        for (unsigned t = 0; t < threads; ++t) {
            getcontext(&contexts[t]);
            contexts[t].uc_stack.ss_sp = &stacks[stack * t];
            contexts[t].uc_stack.ss_size = stack;
            contexts[t].uc_link = &scheduler;
            makecontext(&contexts[t], thread_entry, 0);
        }
        for (;;) {  // one round: every live thread runs to its next barrier or to its end
            for (unsigned t = 0; t < threads; ++t) {
                if (finished[t]) continue;
                current = (int)t;
                threadIdx = Dim3{t, 0, 0};
                swapcontext(&scheduler, &contexts[t]);
            }
            int live = 0, lo = 1 << 30, hi = -1;
            for (unsigned t = 0; t < threads; ++t) {
                if (finished[t]) continue;
                ++live;
                lo = arrivals[t] < lo ? arrivals[t] : lo;
                hi = arrivals[t] > hi ? arrivals[t] : hi;
            }
            if (live == 0) break;
            if (live != (int)threads || lo != hi) { error = 1; return error; }
        }
    }
    return error;
}
"""

_SIGNATURE = re.compile(r'extern "C" __global__ void (\w+)\(([^)]*)\)', re.S)
_CTYPES = {"int": ctypes.c_int, "long long": ctypes.c_longlong}


def _parameters(text: str) -> list[tuple[str, str]]:
    """(C type, name) of each parameter of a kernel signature."""
    out = []
    for raw in text.split(","):
        decl = " ".join(raw.replace("__restrict__", "").split())
        ctype, name = decl.rsplit(" ", 1)
        if name.startswith("*"):
            ctype, name = ctype + "*", name[1:]
        out.append((ctype, name))
    return out


class EmulatedKernels:
    """The ``extern "C" __global__`` kernels of a CUDA source, callable from Python on the CPU:
    ``kernels.run(name, grid, threads, *args)`` with NumPy arrays for pointers."""

    def __init__(self, source: str, build_dir: Path) -> None:
        cxx = shutil.which("g++") or shutil.which("c++")
        if cxx is None:
            raise RuntimeError("no C++ compiler (g++ or c++) on PATH to emulate the CUDA kernels")
        self.signatures = {m[1]: _parameters(m[2]) for m in _SIGNATURE.finditer(source)}
        drivers = []
        for name, params in self.signatures.items():
            decl = ", ".join(f"{t} {n}" for t, n in params)
            call = ", ".join(n for _, n in params)
            drivers.append(
                f'extern "C" int run_{name}(unsigned gx, unsigned gy, unsigned gz, '
                f"unsigned threads, {decl}) {{\n"
                f"    return emulate(Dim3{{gx, gy, gz}}, threads, [&] {{ {name}({call}); }});\n}}\n"
            )
        path = build_dir / f"emulated_{abs(hash(source)):x}"
        path.with_suffix(".cpp").write_text(_RUNTIME + source + "".join(drivers))
        subprocess.run(
            [
                cxx,
                "-std=c++17",
                "-O1",
                "-shared",
                "-fPIC",
                "-o",
                str(path.with_suffix(".so")),
                str(path.with_suffix(".cpp")),
            ],
            check=True,
            capture_output=True,
        )
        self._lib = ctypes.CDLL(str(path.with_suffix(".so")))

    def run(self, name: str, grid, threads: int, *args) -> None:
        grid = tuple(grid) + (1,) * (3 - len(tuple(grid)))
        params = self.signatures[name]
        if len(args) != len(params):
            raise TypeError(f"{name} takes {len(params)} arguments, got {len(args)}")
        converted = []
        for (ctype, pname), value in zip(params, args):
            if ctype.endswith("*"):
                if not (isinstance(value, np.ndarray) and value.flags.c_contiguous):
                    raise TypeError(f"{name}: `{pname}` needs a contiguous NumPy array")
                converted.append(value.ctypes.data_as(ctypes.c_void_p))
            else:
                converted.append(_CTYPES[ctype](int(value)))
        fn = getattr(self._lib, f"run_{name}")
        fn.restype = ctypes.c_int
        if fn(*(ctypes.c_uint(int(v)) for v in (*grid, threads)), *converted):
            raise AssertionError(f"{name}: a __syncthreads() was reached by only some threads")
