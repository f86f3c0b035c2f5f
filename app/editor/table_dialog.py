"""Read-only tables in non-modal dialogs: View → Summary (the model summary of the Prediction 6D a
Run would compute, following every edit) and Help → Keyboard shortcuts (every action of the window
with its keys, and the canvas's mouse gestures). Shown with ``show()``, never ``exec()``: the
editor stays usable beside them."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from conv3dt_studio.nodes import DocumentProblems
from conv3dt_studio.nodes.summary import HEADERS, model_summary, table_rows, total_lines

from .canvas import Canvas
from .run_job import prediction_to_run

GESTURES = (
    ("Fit the graph in view", "F (canvas focused)"),
    ("Search node types", "Tab (mouse over the canvas)"),
    ("Pan", "Middle-drag, or Alt + left-drag"),
    ("Zoom", "Wheel, or Alt + middle-drag"),
    ("Select", "Click; drag a rubber band; Shift/Ctrl + click adds"),
    ("Connect", "Drag from an output port to an input port"),
    ("Disconnect", "Drag a link's end off its port; Alt + Shift + drag slices links"),
    ("Context menu", "Right-click the canvas, a node or a link"),
)


class TableDialog(QDialog):
    """A title line, a table and a footer; :meth:`set_rows` replaces the content."""

    def __init__(self, name: str, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self.setWindowTitle(title)
        self.setModal(False)
        box = QVBoxLayout(self)
        self.heading = QLabel()
        self.table = QTableWidget()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.footer = QLabel()
        self.footer.setWordWrap(True)
        for part, w in (("heading", self.heading), ("table", self.table), ("footer", self.footer)):
            w.setObjectName(f"{name}_{part}")  # summary_dialog_table...
            box.addWidget(w)
        self.resize(820, 360)

    def set_rows(
        self, heading: str, headers: Sequence[str], rows: Sequence[Sequence[str]], footer: str
    ) -> None:
        self.heading.setText(heading)
        self.table.clear()
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(list(headers))
        self.table.setRowCount(len(rows))
        for i, row in enumerate(rows):
            for j, text in enumerate(row):
                self.table.setItem(i, j, QTableWidgetItem(text))
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.footer.setText(footer)

    def cell(self, row: int, column: int) -> str:
        item = self.table.item(row, column)
        return item.text() if item is not None else ""


class SummaryDialog(TableDialog):
    """The model summary of the Prediction 6D a Run would compute; follows every edit."""

    def __init__(self, canvas: Canvas, parent: QWidget | None = None) -> None:
        super().__init__("summary_dialog", "Model summary", parent)
        self.canvas = canvas
        canvas.document_changed.connect(self.refresh)
        canvas.selection_changed.connect(self.refresh)

    def refresh(self, *_args: object) -> None:
        if not self.isVisible():
            return
        doc = self.canvas.doc
        pid = prediction_to_run(doc, self.canvas.selected_ids())
        try:
            summary = model_summary(doc, pid)
        except DocumentProblems as exc:
            lines = "\n".join(f"⚠ {p}" for p in exc.problems)
            self.set_rows("Cannot summarise: the chain has problems", HEADERS, [], lines)
            return
        heading = f'Model: "{summary.prediction_node}" (shapes include the batch)'
        self.set_rows(heading, HEADERS, table_rows(summary), "\n".join(total_lines(summary)))

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self.refresh()


def shortcut_rows(actions: Sequence[QAction]) -> list[tuple[str, str, str]]:
    """(action, keys, what it does) for each named action, then the canvas's gestures."""
    native = QKeySequence.SequenceFormat.NativeText
    rows = [
        (
            a.text().replace("&", "").replace("…", ""),
            ", ".join(k.toString(native) for k in a.shortcuts()) or "—",
            a.toolTip(),
        )
        for a in actions
        if a.objectName().startswith("action_") and a.text()
    ]
    rows.sort(key=lambda r: (r[1] == "—", r[0]))
    return rows + [(what, keys, "canvas gesture") for what, keys in GESTURES]


class ShortcutsDialog(TableDialog):
    def __init__(self, actions: Sequence[QAction], parent: QWidget | None = None) -> None:
        super().__init__("shortcuts_dialog", "Keyboard shortcuts", parent)
        self.set_rows(
            "Every action with its keys, then the canvas's mouse gestures",
            ("Action", "Keys", "What it does"),
            shortcut_rows(actions),
            "Ctrl+Z / Ctrl+Y work wherever the focus is; Delete, Tab and F act on the canvas.",
        )
