"""The node palette: node types by category; drag one onto the canvas to create it at the drop
point, or double-click to add it at the centre of the view."""

from __future__ import annotations

from NodeGraphQt.constants import MIME_TYPE
from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtWidgets import QLineEdit, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from conv3dt_studio.nodes import categories

from .canvas import NODE_MIME_PREFIX

TYPE_ROLE = Qt.ItemDataRole.UserRole


class _PaletteTree(QTreeWidget):
    def mimeTypes(self) -> list[str]:
        return [MIME_TYPE]

    def mimeData(self, items) -> QMimeData:
        mime = QMimeData()
        type_id = items[0].data(0, TYPE_ROLE) if items else None
        if type_id:
            mime.setData(MIME_TYPE, f"{NODE_MIME_PREFIX}{type_id}".encode())
        return mime


class NodePalette(QWidget):
    """``add_requested(type_id)`` on double-click; drags carry the type to the canvas."""

    add_requested = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("node_palette_view")
        self.filter = QLineEdit()
        self.filter.setObjectName("palette_filter")
        self.filter.setPlaceholderText("Filter nodes…")
        self.filter.setClearButtonEnabled(True)
        self.tree = _PaletteTree()
        self.tree.setObjectName("palette_tree")
        self.tree.setHeaderHidden(True)
        self.tree.setDragEnabled(True)
        self.tree.setDragDropMode(QTreeWidget.DragDropMode.DragOnly)
        self.items: dict[str, QTreeWidgetItem] = {}
        for category, types in categories().items():
            parent = QTreeWidgetItem(self.tree, [category])
            parent.setFlags(Qt.ItemFlag.ItemIsEnabled)
            for t in types:
                item = QTreeWidgetItem(parent, [t.title])
                item.setData(0, TYPE_ROLE, t.type_id)
                item.setToolTip(0, f"{t.title}: {t.help}\nDrag onto the canvas or double-click.")
                item.setFlags(
                    Qt.ItemFlag.ItemIsEnabled
                    | Qt.ItemFlag.ItemIsSelectable
                    | Qt.ItemFlag.ItemIsDragEnabled
                )
                self.items[t.type_id] = item
        self.tree.expandAll()
        self.tree.itemDoubleClicked.connect(self._double_clicked)
        self.filter.textChanged.connect(self._apply_filter)
        box = QVBoxLayout(self)
        box.setContentsMargins(4, 4, 4, 4)
        box.addWidget(self.filter)
        box.addWidget(self.tree)

    def _double_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        type_id = item.data(0, TYPE_ROLE)
        if type_id:
            self.add_requested.emit(type_id)

    def _apply_filter(self, text: str) -> None:
        text = text.strip().lower()
        for i in range(self.tree.topLevelItemCount()):
            parent = self.tree.topLevelItem(i)
            shown = 0
            for j in range(parent.childCount()):
                child = parent.child(j)
                hide = bool(text) and text not in child.text(0).lower()
                child.setHidden(hide)
                shown += not hide
            parent.setHidden(shown == 0)
