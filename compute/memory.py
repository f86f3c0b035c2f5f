"""What memory this machine can give, and the refusal of an allocation that would not fit, made
before anything is allocated. The compute core checks its own large allocations (a layer's
weights and its kernels' temporaries) here, so the Python API is guarded as the command line
and the editor are (they check whole runs first: :mod:`conv3dt_studio.nodes.memory`)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from .errors import Conv3DTStudioError

UNLIMITED = 2**62


class MemoryLimitExceeded(Conv3DTStudioError, MemoryError):
    """An allocation would need more memory than the limit allows."""


def available_memory() -> int:
    """Bytes this process can still allocate: the least of the machine's available memory
    (Linux MemAvailable, else the physical memory), the room left under its address-space limit
    (``ulimit -v``, RLIMIT_AS) and the room left in its control group (containers)."""
    return min(_machine_available(), _address_space_left(), _cgroup_left())


def _machine_available() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def _status_bytes(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _address_space_left() -> int:
    try:
        import resource  # noqa: PLC0415 - POSIX only

        soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError):
        return UNLIMITED
    if soft == resource.RLIM_INFINITY or soft < 0:
        return UNLIMITED
    return max(0, soft - (_status_bytes("VmSize") or 0))


def _cgroup_left() -> int:
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return UNLIMITED
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        return max(0, int(limit) - used)
    except (OSError, ValueError):
        return UNLIMITED


def default_limit() -> int:
    """Half of what is available now: the rest is for everything else the machine runs."""
    return available_memory() // 2


def mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


# A request this small against the last reading of the limit (at most RECENT_SECONDS old) is
# checked against that reading: reading /proc and the control group's files costs 30-50 us, and
# about 0.25 ms of a 16->16 channel layer's 4.8 ms forward on the development machine (the
# kernel's work evicts the layer's data from the caches); a larger request reads them again.
RECENT_SECONDS = 1.0
RECENT_SHARE = 16
_recent: tuple[float, int] | None = None


def _limit_for(need: int) -> int:
    """:func:`default_limit`, or its last reading when ``need`` is at most a
    :data:`RECENT_SHARE`-th of it and the reading is at most :data:`RECENT_SECONDS` old."""
    global _recent
    now = time.monotonic()
    last = _recent
    if last is not None and now - last[0] < RECENT_SECONDS and need * RECENT_SHARE <= last[1]:
        return last[1]
    limit = default_limit()
    _recent = (now, limit)
    return limit


def check(need: int, what: str, limit: int | None = None) -> None:
    """Raise :class:`MemoryLimitExceeded` when ``need`` bytes exceed ``limit`` (default: half
    the available memory, :func:`_limit_for`), naming ``what``, the estimate and the limit."""
    limit = _limit_for(need) if limit is None else limit
    if need > limit:
        raise MemoryLimitExceeded(
            f"{what} needs about {mib(need)}, above the memory limit of {mib(limit)}"
        )


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_RETAINED = {_M_MMAP_THRESHOLD: 32 * 2**20, _M_TRIM_THRESHOLD: 256 * 2**20, _M_TOP_PAD: 64 * 2**20}
_allocator_tuned: bool | None = None


def retain_freed_memory() -> bool:
    """Let glibc's malloc keep freed memory for the next allocation instead of returning it to
    the system (once per process; True where it applies).

    Training allocates the same output-sized arrays every step (outputs, loss and gradient
    temporaries). glibc's defaults map arrays above an adaptive threshold afresh and unmap them
    when freed, so, depending on what the process allocated before, every step may fault in
    every page of them again: after the kernels' warm-up (as the editor and ``bench`` start),
    a 16->16 channel decoder layer's training step took 2,530 page faults and 15.1 ms each step
    on the development machine (a virtual machine, where faults are dear), 0 and 9.7 ms tuned.
    Here arrays up to 32 MiB come from the heap, and up to 256 MiB of freed heap is kept for
    reuse. ``CONV3DT_MALLOC=system`` keeps the C library's defaults; other C libraries (musl,
    macOS, Windows) are left alone."""
    global _allocator_tuned
    if _allocator_tuned is not None:
        return _allocator_tuned
    _allocator_tuned = False
    if os.environ.get("CONV3DT_MALLOC", "") == "system":
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl has no mallopt)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    _allocator_tuned = all(mallopt(param, value) == 1 for param, value in _RETAINED.items())
    return _allocator_tuned
