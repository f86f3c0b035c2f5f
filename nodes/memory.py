"""The memory guard of whole runs, trainings and files: the one-line refusal, on the node at
fault, of work that would not fit - made before anything is allocated. What the machine can give
comes from :mod:`conv3dt_studio.compute.memory` (which also guards the Python API's layers)."""

from __future__ import annotations

from conv3dt_studio.compute.memory import available_memory, mib

from .problems import DocumentProblems, Problem


class MemoryLimitError(DocumentProblems):
    """A run, a training or a file would need more memory than the limit allows."""


def default_limit() -> int:
    """Half of what is available now (the module attribute is read at call time, so tests may
    replace :func:`available_memory`)."""
    return available_memory() // 2


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
