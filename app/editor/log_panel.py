"""The log panel: run messages, timings, backend used, and graph problems, time-stamped.

Each line has a level (info, ok, warning, error); a filter shows the lines of one level and
above, or those containing a text. A repeated line is counted ("× 3") instead of repeated, and
consecutive lines of one group (a training's epochs) share one line that shows the latest, so
they never push everything else away. The view holds one block per line shown, changed one
block at a time (a redraw only for a new filter), and never more than :attr:`LogPanel.MAX_LINES`.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass

from PySide6.QtGui import QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLineEdit, QTextEdit, QVBoxLayout, QWidget

LEVEL_COLORS = {"info": "#c8d0dc", "warning": "#f0b450", "error": "#ff7878", "ok": "#78d28c"}
LEVEL_RANK = {"info": 0, "ok": 0, "warning": 1, "error": 2}
FILTERS = {"All": 0, "Warnings and errors": 1, "Errors": 2}


@dataclass
class Line:
    stamp: str
    level: str
    text: str
    group: str = ""
    count: int = 1

    def plain(self) -> str:
        times = f" (× {self.count})" if self.count > 1 else ""
        return f"{self.stamp} [{self.level}] {self.text}{times}"

    def html(self) -> str:
        color = LEVEL_COLORS.get(self.level, LEVEL_COLORS["info"])
        times = f" <i>(× {self.count})</i>" if self.count > 1 else ""
        return (
            f'<span style="color:#7a8494">{self.stamp}</span> '
            f'<span style="color:{color}">{html.escape(self.text)}</span>{times}'
        )


class LogPanel(QWidget):
    """Read-only, append-only log; ``lines`` keeps the plain text for tests and copying."""

    MAX_LINES = 2000

    def __init__(self) -> None:
        super().__init__()
        self.view = QTextEdit()
        self.view.setObjectName("log_view")
        self.view.setReadOnly(True)
        self.view.setUndoRedoEnabled(False)  # each line's edit would be kept for an undo
        self.view.setLineWrapMode(QTextEdit.LineWrapMode.WidgetWidth)
        self.level_filter = QComboBox()
        self.level_filter.setObjectName("log_level_filter")
        self.level_filter.addItems(list(FILTERS))
        self.text_filter = QLineEdit()
        self.text_filter.setObjectName("log_text_filter")
        self.text_filter.setPlaceholderText("filter…")
        self.text_filter.setClearButtonEnabled(True)
        self.level_filter.currentIndexChanged.connect(self.redraw)
        self.text_filter.textChanged.connect(self.redraw)
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self.level_filter)
        bar.addWidget(self.text_filter, 1)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addLayout(bar)
        box.addWidget(self.view, 1)
        self.entries: list[Line] = []

    @property
    def lines(self) -> list[str]:
        return [e.plain() for e in self.entries]

    def log(self, text: str, level: str = "info", group: str = "") -> None:
        """Add a line; a repeat of the last line, or the next of its group, changes the last
        line instead. The view changes by one block (appended, replaced or removed): a redraw
        of every line, per epoch of a long training, would stall the window."""
        last = self.entries[-1] if self.entries else None
        stamp = time.strftime("%H:%M:%S")
        if last is not None and last.text == text and last.level == level:
            last.count += 1
            last.stamp = stamp
            self._show_last(self._shown(last), self._shown(last))
            return
        if last is not None and group and last.group == group:
            self.entries[-1] = Line(stamp, level, text, group)
            self._show_last(self._shown(last), self._shown(self.entries[-1]))
            return
        self.entries.append(Line(stamp, level, text, group))
        self._show_last(False, self._shown(self.entries[-1]))
        if len(self.entries) > self.MAX_LINES:
            dropped = self.entries[: len(self.entries) - self.MAX_LINES]
            del self.entries[: len(dropped)]
            self._remove_first_blocks(sum(self._shown(e) for e in dropped))

    def _shown(self, line: Line) -> bool:
        needle = self.text_filter.text().lower()
        rank = FILTERS[self.level_filter.currentText()]
        return LEVEL_RANK.get(line.level, 0) >= rank and needle in line.text.lower()

    def _show_last(self, was_shown: bool, shown: bool) -> None:
        """The last entry changed (or came) from ``was_shown`` to ``shown``: replace, append or
        remove the view's last block; the view stays at the bottom when it was there."""
        if not was_shown and not shown:
            return
        bar = self.view.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum()
        doc = self.view.document()
        cursor = QTextCursor(doc)
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.beginEditBlock()
        if was_shown:  # select the last block, and the break before it when it goes
            cursor.movePosition(
                QTextCursor.MoveOperation.StartOfBlock, QTextCursor.MoveMode.KeepAnchor
            )
            if not shown and cursor.block().previous().isValid():
                cursor.movePosition(
                    QTextCursor.MoveOperation.PreviousCharacter, QTextCursor.MoveMode.KeepAnchor
                )
            cursor.removeSelectedText()
        elif not doc.isEmpty():
            cursor.insertBlock()
        if shown:
            cursor.setCharFormat(QTextCharFormat())  # not the previous line's colour
            cursor.insertHtml(self.entries[-1].html())
        cursor.endEditBlock()
        if at_bottom:
            bar.setValue(bar.maximum())

    def _remove_first_blocks(self, n: int) -> None:
        """Take the first ``n`` lines out of the view (entries dropped by the line cap)."""
        if n <= 0:
            return
        doc = self.view.document()
        cursor = QTextCursor(doc)
        if n >= doc.blockCount():
            cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        else:
            cursor.movePosition(
                QTextCursor.MoveOperation.NextBlock, QTextCursor.MoveMode.KeepAnchor, n
            )
        cursor.removeSelectedText()

    def redraw(self, *_args) -> None:
        """Show the lines the filter lets through, one block each (a new filter)."""
        doc = self.view.document()
        doc.clear()
        cursor = QTextCursor(doc)
        cursor.beginEditBlock()
        for i, line in enumerate(e for e in self.entries if self._shown(e)):
            if i:
                cursor.insertBlock()
            cursor.setCharFormat(QTextCharFormat())
            cursor.insertHtml(line.html())
        cursor.endEditBlock()
        bar = self.view.verticalScrollBar()
        bar.setValue(bar.maximum())

    def shown_lines(self) -> list[str]:
        """The lines the filter lets through."""
        return [e.plain() for e in self.entries if self._shown(e)]

    def text(self) -> str:
        return "\n".join(self.lines)


__all__ = ["LogPanel"]
