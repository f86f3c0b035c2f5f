"""Undoable edits of the graph document, as QUndoCommands.

Each command changes the document through the canvas's primitive operations (which keep the view in
sync and notify listeners); the canvas pushes them on its QUndoStack. Nothing else edits the document.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from PySide6.QtGui import QUndoCommand

from conv3dt_studio.nodes import Link, Node

if TYPE_CHECKING:
    from .canvas import Canvas

MISSING = object()  # a parameter absent from a node's stored params


class AddNodesCmd(QUndoCommand):
    """Create nodes (and the links among them): a new node, a drop, a pasted snippet."""

    def __init__(self, canvas: Canvas, nodes: list[Node], links: list[Link], text: str) -> None:
        super().__init__(text)
        self.canvas = canvas
        self.nodes = [copy.deepcopy(n) for n in nodes]
        self.links = list(links)

    def redo(self) -> None:
        self.canvas._insert(self.nodes, self.links)

    def undo(self) -> None:
        self.canvas._remove([n.id for n in self.nodes])


class DeleteNodesCmd(QUndoCommand):
    """Delete nodes with every link touching them."""

    def __init__(self, canvas: Canvas, node_ids: list[str]) -> None:
        super().__init__(f"delete {', '.join(node_ids)}")
        doc = canvas.doc
        self.canvas = canvas
        self.nodes = [copy.deepcopy(doc.nodes[i]) for i in node_ids]
        ids = set(node_ids)
        self.links = [ln for ln in doc.links if ln.src[0] in ids or ln.dst[0] in ids]

    def redo(self) -> None:
        self.canvas._remove([n.id for n in self.nodes])

    def undo(self) -> None:
        self.canvas._insert(self.nodes, self.links)


class MoveNodesCmd(QUndoCommand):
    """Move nodes: ``moves`` maps a node id to (old position, new position)."""

    def __init__(self, canvas: Canvas, moves: dict[str, tuple[Any, Any]]) -> None:
        super().__init__(f"move {', '.join(moves)}")
        self.canvas = canvas
        self.moves = dict(moves)

    def redo(self) -> None:
        self.canvas._place({nid: new for nid, (_old, new) in self.moves.items()})

    def undo(self) -> None:
        self.canvas._place({nid: old for nid, (old, _new) in self.moves.items()})


class ChangeLinksCmd(QUndoCommand):
    """Connect and/or disconnect ports in one step (a re-wired pipe is both)."""

    def __init__(
        self, canvas: Canvas, removed: list[Link], added: list[Link], text: str = ""
    ) -> None:
        super().__init__(text or ("connect" if added else "disconnect"))
        self.canvas = canvas
        self.removed = list(removed)
        self.added = list(added)

    def redo(self) -> None:
        self.canvas._relink(self.removed, self.added)

    def undo(self) -> None:
        self.canvas._relink(self.added, self.removed)


class SetParamCmd(QUndoCommand):
    """Set one (already validated) parameter; values are the stored JSON values."""

    def __init__(self, canvas: Canvas, node_id: str, name: str, old: Any, new: Any) -> None:
        super().__init__(f"set {node_id}.{name}")
        self.canvas = canvas
        self.node_id = node_id
        self.name = name
        self.old = copy.deepcopy(old)
        self.new = copy.deepcopy(new)

    def redo(self) -> None:
        self.canvas._store_param(self.node_id, self.name, self.new)

    def undo(self) -> None:
        self.canvas._store_param(self.node_id, self.name, self.old)
