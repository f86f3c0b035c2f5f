"""Recent files, kept in QSettings (an ini file in the user data folder) and shown as a menu."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMenu, QWidget

from . import autosave

MAX_RECENT = 8
KEY = "recent_files"


def settings() -> QSettings:
    """The editor's settings file (beside the autosaves, so tests can redirect both)."""
    return QSettings(str(autosave.data_dir() / "settings.ini"), QSettings.Format.IniFormat)


class RecentFiles(QMenu):
    """'Open Recent' menu; ``open_file(path)`` is called when one is chosen."""

    def __init__(self, open_file: Callable[[str], None], parent: QWidget | None = None) -> None:
        super().__init__("Open &Recent", parent)
        self.setObjectName("recent_menu")
        self._open_file = open_file
        self.settings = settings()
        self.rebuild()

    def paths(self) -> list[str]:
        value = self.settings.value(KEY, [])
        if isinstance(value, str):  # QSettings gives a lone value back as a string
            value = [value]
        return [str(v) for v in value or []]

    def add(self, path: str) -> None:
        path = str(Path(path).resolve())
        recent = [path] + [p for p in self.paths() if p != path]
        self.settings.setValue(KEY, recent[:MAX_RECENT])
        self.settings.sync()
        self.rebuild()

    def rebuild(self) -> None:
        self.clear()
        recent = self.paths()
        for p in recent:
            self.addAction(p, lambda p=p: self._open_file(p))
        self.setEnabled(bool(recent))
