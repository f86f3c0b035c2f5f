"""What is wrong with a document, per node and parameter: the one currency of validation, running
and training errors (the CLI prints them one per line, the editor puts them on their nodes)."""

from __future__ import annotations

from dataclasses import dataclass

from conv3dt_studio.compute import Conv3DTStudioError


@dataclass(frozen=True)
class Problem:
    node: str | None  # node id, None for the whole document
    param: str | None  # parameter or port name
    message: str

    def __str__(self) -> str:
        where = []
        if self.node is not None:
            where.append(f"node `{self.node}`")
        if self.param is not None:
            where.append(f"`{self.param}`")
        return (", ".join(where) + ": " if where else "") + self.message


class DocumentProblems(Conv3DTStudioError, ValueError):
    """The document cannot run; ``problems`` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))
