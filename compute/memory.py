"""What memory this machine can give, and the refusal of an allocation that would not fit, made
before anything is allocated. The compute core checks its own large allocations (a layer's
weights and its kernels' temporaries) here, so the Python API is guarded as the command line
and the editor are (they check whole runs first: :mod:`conv3dt_studio.nodes.memory`)."""

from __future__ import annotations

import os

from .errors import Conv3DTStudioError


class MemoryLimitExceeded(Conv3DTStudioError, MemoryError):
    """An allocation would need more memory than the limit allows."""


def available_memory() -> int:
    """Bytes of memory available now (Linux MemAvailable, else total physical memory)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def default_limit() -> int:
    """Half of what is available now: the rest is for everything else the machine runs."""
    return available_memory() // 2


def mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def check(need: int, what: str, limit: int | None = None) -> None:
    """Raise :class:`MemoryLimitExceeded` when ``need`` bytes exceed ``limit`` (default: half
    the available memory), naming ``what``, the estimate and the limit."""
    limit = default_limit() if limit is None else limit
    if need > limit:
        raise MemoryLimitExceeded(
            f"{what} needs about {mib(need)}, above the memory limit of {mib(limit)}"
        )
