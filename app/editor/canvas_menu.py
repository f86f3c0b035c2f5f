"""The canvas's context menus (right click): on empty canvas, add a node here (searchable), paste
and select all; on a node, inspect its output, duplicate, copy, delete, freeze or unfreeze a layer;
on a link, disconnect it. NodeGraphQt's own menu is off (:class:`.canvas.StudioViewer`).

:func:`context_menu` builds the menu for a scene position without showing it, so tests read and
trigger its actions; :class:`CanvasMenus` shows it on a right click.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QPointF, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLineEdit, QMenu, QWidgetAction

from conv3dt_studio.nodes import LAYER_ROLE, NODE_TYPES, TENSOR

from .canvas import Canvas, display_name


def has_tensor_output(type_id: str) -> bool:
    """A node whose output is a tensor the inspector can show (Data, Input, TimeDistributed...)."""
    nt = NODE_TYPES.get(type_id)
    return nt is not None and any(p.kind == TENSOR for p in nt.outputs)


def add_node_menu(canvas: Canvas, at: tuple[float, float], parent: QMenu) -> QMenu:
    """'Add Node Here': a search field over the node types, then one entry per type."""
    menu = QMenu("&Add Node Here", parent)
    menu.setObjectName("menu_add_node")
    search = QLineEdit()
    search.setPlaceholderText("search…")
    search.setObjectName("add_node_search")
    field = QWidgetAction(menu)
    field.setDefaultWidget(search)
    menu.addAction(field)
    entries: list[QAction] = []
    for t in NODE_TYPES.values():
        action = menu.addAction(t.title, lambda tid=t.type_id: canvas.add_node(tid, at))
        action.setToolTip(t.help)
        entries.append(action)

    def show_matches(text: str) -> None:
        for action in entries:
            action.setVisible(text.lower() in action.text().lower())

    search.textChanged.connect(show_matches)
    return menu


def context_menu(
    canvas: Canvas, at: tuple[float, float], inspect: Callable[[str], object]
) -> QMenu:
    """The menu for a right click at scene position ``at``: the node or link there, else the
    canvas. ``inspect(node_id)`` shows a node's output in the inspector."""
    menu = QMenu(canvas.viewer)
    menu.setObjectName("canvas_context_menu")
    node_id, link = canvas.item_at(at)
    if node_id is not None:
        _node_entries(menu, canvas, node_id, inspect)
    elif link is not None:
        menu.addAction(
            "&Disconnect", lambda: canvas.disconnect(*link.src, *link.dst)
        ).setObjectName("ctx_disconnect")
    else:
        menu.addMenu(add_node_menu(canvas, at, menu))
        menu.addAction("&Paste", lambda: canvas.paste(at)).setObjectName("ctx_paste")
        menu.addAction("Select &All", canvas.graph.select_all)
    return menu


def _node_entries(
    menu: QMenu, canvas: Canvas, node_id: str, inspect: Callable[[str], object]
) -> None:
    if node_id not in canvas.selected_ids():
        canvas.select(node_id)
    ids = canvas.selected_ids()
    node = canvas.doc.nodes[node_id]
    if has_tensor_output(node.type):
        menu.addAction(
            f"&Inspect Output of {display_name(node)}", lambda: inspect(node_id)
        ).setObjectName("ctx_inspect")
    menu.addAction("D&uplicate", lambda: canvas.duplicate(ids)).setObjectName("ctx_duplicate")
    menu.addAction("&Copy", canvas.copy_selection).setObjectName("ctx_copy")
    menu.addAction("&Delete", lambda: canvas.delete_nodes(ids)).setObjectName("ctx_delete")
    if canvas.doc.role(node_id) == LAYER_ROLE:
        frozen = canvas.doc.params(node_id).get("update") is False
        menu.addSeparator()
        menu.addAction(
            "Un&freeze Layer" if frozen else "&Freeze Layer",
            lambda: canvas.set_param(node_id, "update", frozen),
        ).setObjectName("ctx_freeze")


class CanvasMenus(QObject):
    """Shows :func:`context_menu` on a right click over the canvas; ``inspect_requested(node_id)``
    when the user asks to see a node's output."""

    inspect_requested = Signal(str)

    def __init__(self, canvas: Canvas, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.canvas = canvas
        canvas.viewer.context_menu_requested.connect(self.show)

    def menu_at(self, at: tuple[float, float]) -> QMenu:
        return context_menu(self.canvas, at, self.inspect_requested.emit)

    def show(self, at: tuple[float, float], global_pos) -> None:
        self.menu_at(at).exec(global_pos if global_pos is not None else QPointF())
