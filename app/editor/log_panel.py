"""The log panel: run messages, timings, backend used, and graph problems, time-stamped."""

from __future__ import annotations

import html
import time

from PySide6.QtWidgets import QTextEdit

LEVEL_COLORS = {"info": "#c8d0dc", "warning": "#f0b450", "error": "#ff7878", "ok": "#78d28c"}


class LogPanel(QTextEdit):
    """Read-only, append-only log; ``lines`` keeps the plain text for tests and copying."""

    MAX_LINES = 2000

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("log_view")
        self.setReadOnly(True)
        self.setLineWrapMode(QTextEdit.LineWrapMode.WidgetWidth)
        self.lines: list[str] = []

    def log(self, text: str, level: str = "info") -> None:
        stamp = time.strftime("%H:%M:%S")
        self.lines.append(f"{stamp} [{level}] {text}")
        if len(self.lines) > self.MAX_LINES:
            del self.lines[: len(self.lines) - self.MAX_LINES]
        color = LEVEL_COLORS.get(level, LEVEL_COLORS["info"])
        self.append(
            f'<span style="color:#7a8494">{stamp}</span> '
            f'<span style="color:{color}">{html.escape(text)}</span>'
        )

    def text(self) -> str:
        return "\n".join(self.lines)


__all__ = ["LogPanel"]
