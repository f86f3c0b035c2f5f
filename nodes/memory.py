"""The memory guard: what this machine can give, and the one-line refusal of an allocation that
would not fit - made before anything is allocated (runs, trainings and files read)."""

from __future__ import annotations

import os

from .problems import DocumentProblems, Problem


class MemoryLimitError(DocumentProblems):
    """A run, a training or a file would need more memory than the limit allows."""


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


def check(need: int, limit: int | None, what: str, node: str | None = None) -> None:
    """Refuse ``what`` (e.g. "this run") when ``need`` bytes exceed ``limit`` (default: half
    the available memory), naming both."""
    limit = default_limit() if limit is None else limit
    if need > limit:
        raise MemoryLimitError(
            [
                Problem(
                    node,
                    None,
                    f"{what} needs about {mib(need)}, above the memory limit of {mib(limit)}; "
                    "lower the batch size or the shapes",
                )
            ]
        )
