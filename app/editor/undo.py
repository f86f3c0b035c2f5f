"""Undoable edits of the graph document, as QUndoCommands.

Each command changes the document through its edit API only (:class:`nodes.GraphDocument`:
``insert_nodes``, ``remove_nodes``, ``move_nodes``, ``relink``, ``store_param``,
``set_training_setting``); the views follow the document's change events. The canvas pushes the
commands on its QUndoStack after checking the edit, so ``redo`` never refuses.
"""

from __future__ import annotations

import copy
from typing import Any

from PySide6.QtGui import QUndoCommand

from conv3dt_studio.nodes import GraphDocument, Link, Node
from conv3dt_studio.nodes.graph_document import MISSING

__all__ = [
    "MISSING",
    "AddNodesCmd",
    "ChangeLinksCmd",
    "DeleteNodesCmd",
    "MoveNodesCmd",
    "SetParamCmd",
    "SetTrainingSettingCmd",
]


class AddNodesCmd(QUndoCommand):
    """Create nodes (and the links among them): a new node, a drop, a pasted snippet."""

    def __init__(self, doc: GraphDocument, nodes: list[Node], links: list[Link], text: str) -> None:
        super().__init__(text)
        self.doc = doc
        self.nodes = [copy.deepcopy(n) for n in nodes]
        self.links = list(links)

    def redo(self) -> None:
        self.doc.insert_nodes(self.nodes, self.links)

    def undo(self) -> None:
        self.doc.remove_nodes([n.id for n in self.nodes])


class DeleteNodesCmd(QUndoCommand):
    """Delete nodes with every link touching them."""

    def __init__(self, doc: GraphDocument, node_ids: list[str]) -> None:
        super().__init__(f"delete {', '.join(node_ids)}")
        self.doc = doc
        self.nodes = [copy.deepcopy(doc.nodes[i]) for i in node_ids]
        ids = set(node_ids)
        self.links = [ln for ln in doc.links if ln.src[0] in ids or ln.dst[0] in ids]

    def redo(self) -> None:
        self.doc.remove_nodes([n.id for n in self.nodes])

    def undo(self) -> None:
        self.doc.insert_nodes(self.nodes, self.links)


class MoveNodesCmd(QUndoCommand):
    """Move nodes: ``moves`` maps a node id to (old position, new position)."""

    def __init__(self, doc: GraphDocument, moves: dict[str, tuple[Any, Any]]) -> None:
        super().__init__(f"move {', '.join(moves)}")
        self.doc = doc
        self.moves = dict(moves)

    def redo(self) -> None:
        self.doc.move_nodes({nid: new for nid, (_old, new) in self.moves.items()})

    def undo(self) -> None:
        self.doc.move_nodes({nid: old for nid, (old, _new) in self.moves.items()})


class ChangeLinksCmd(QUndoCommand):
    """Connect and/or disconnect ports in one step (a re-wired pipe is both)."""

    def __init__(
        self, doc: GraphDocument, removed: list[Link], added: list[Link], text: str = ""
    ) -> None:
        super().__init__(text or ("connect" if added else "disconnect"))
        self.doc = doc
        self.removed = list(removed)
        self.added = list(added)

    def redo(self) -> None:
        self.doc.relink(self.removed, self.added, check=False)

    def undo(self) -> None:
        self.doc.relink(self.added, self.removed, check=False)


class SetParamCmd(QUndoCommand):
    """Set one (already checked) parameter; values are the stored JSON values."""

    def __init__(self, doc: GraphDocument, node_id: str, name: str, old: Any, new: Any) -> None:
        super().__init__(f"set {node_id}.{name}")
        self.doc = doc
        self.node_id = node_id
        self.name = name
        self.old = copy.deepcopy(old)
        self.new = copy.deepcopy(new)

    def redo(self) -> None:
        self.doc.store_param(self.node_id, self.name, self.new)

    def undo(self) -> None:
        self.doc.store_param(self.node_id, self.name, self.old)


class SetTrainingSettingCmd(QUndoCommand):
    """Set one (already checked) training setting (``doc.extras["training"]``)."""

    def __init__(self, doc: GraphDocument, name: str, old: Any, new: Any) -> None:
        super().__init__(f"set training {name}")
        self.doc, self.name = doc, name
        self.old, self.new = copy.deepcopy(old), copy.deepcopy(new)

    def redo(self) -> None:
        self.doc.set_training_setting(self.name, self.new)

    def undo(self) -> None:
        self.doc.set_training_setting(self.name, self.old)
