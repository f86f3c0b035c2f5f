"""The log panel: run messages, timings, backend used, and graph problems, time-stamped.

Each line has a level (info, ok, warning, error); a filter shows the lines of one level and
above, or those containing a text. A repeated line is counted ("× 3") instead of repeated, and
consecutive lines of one group (a training's epochs) share one line that shows the latest, so
they never push everything else away.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass

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
        last = self.entries[-1] if self.entries else None
        stamp = time.strftime("%H:%M:%S")
        if last is not None and last.text == text and last.level == level:
            last.count += 1
            last.stamp = stamp
            self.redraw()
            return
        if last is not None and group and last.group == group:
            self.entries[-1] = Line(stamp, level, text, group)
            self.redraw()
            return
        self.entries.append(Line(stamp, level, text, group))
        if len(self.entries) > self.MAX_LINES:
            del self.entries[: len(self.entries) - self.MAX_LINES]
        if self._shown(self.entries[-1]):
            self.view.append(self.entries[-1].html())

    def _shown(self, line: Line) -> bool:
        needle = self.text_filter.text().lower()
        rank = FILTERS[self.level_filter.currentText()]
        return LEVEL_RANK.get(line.level, 0) >= rank and needle in line.text.lower()

    def redraw(self, *_args) -> None:
        self.view.setHtml("<br>".join(e.html() for e in self.entries if self._shown(e)))
        bar = self.view.verticalScrollBar()
        bar.setValue(bar.maximum())

    def shown_lines(self) -> list[str]:
        """The lines the filter lets through."""
        return [e.plain() for e in self.entries if self._shown(e)]

    def text(self) -> str:
        return "\n".join(self.lines)


__all__ = ["LogPanel"]
