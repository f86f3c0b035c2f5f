"""Crash recovery across windows: offer every autosave a crashed session left behind.

:meth:`RecoveryController.offer` asks about each autosave, newest first, one question each. The
first graph restored opens in this window, each further one in a new window (made by the window's
own factory and kept in :attr:`RecoveryController.windows`); when this window holds a file or
changes of its own, every one opens in a new window. Only an autosave the user declines is deleted;
one that cannot be read or restored is reported (log, and status bar or message) and kept on disk.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from PySide6.QtCore import QObject, QPoint

from conv3dt_studio import nodes

from . import autosave
from .activity import Activity
from .dialogs import Dialogs
from .files_controller import FilesController

WINDOW_OFFSET = QPoint(40, 40)  # each new window a step down and right of the last


class EditorWindow(Protocol):
    """What recovery needs of a window: a widget with its files controller."""

    files: FilesController

    def pos(self) -> QPoint: ...
    def move(self, pos: QPoint) -> None: ...
    def show(self) -> None: ...


class RecoveryController(QObject):
    """Restores the autosaves of crashed sessions into ``host`` and new windows."""

    def __init__(
        self,
        host: EditorWindow,
        dialogs: Dialogs,
        activity: Activity,
        new_window: Callable[[], EditorWindow],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.host = host
        self.dialogs = dialogs
        self.activity = activity
        self.new_window = new_window  # another editor window (not yet shown)
        self.windows: list[EditorWindow] = []  # the further windows of restored autosaves

    def offer(self) -> list[EditorWindow]:
        """Offer every autosave left by a crashed session; returns the windows holding restored
        work (this one first when it took one)."""
        found, unreadable = autosave.scan()
        for u in unreadable:
            self.activity.log(u.describe(), "error")
        if unreadable:
            self.activity.show_status(
                f"{len(unreadable)} autosave file(s) cannot be read: see the log", 15000
            )
        restored: list[EditorWindow] = []
        # a file opened here, or changes of the user's own, stay in this window
        keep_this = self.host.files.path is not None or self.host.files.is_modified()
        for number, recovery in enumerate(found, 1):
            count = f" (autosave {number} of {len(found)})" if len(found) > 1 else ""
            doc = self._accepted(recovery, count)
            if doc is None:
                continue
            window = self._open_window() if restored or keep_this else self.host
            window.files.adopt_recovery(recovery, doc)
            if window is not self.host:
                self.activity.log(f"Opened {recovery.describe()} in a new window", "ok")
            restored.append(window)
        return restored

    def _accepted(self, recovery: autosave.Recovery, count: str) -> nodes.GraphDocument | None:
        """The document of ``recovery`` when the user wants it back and it can be restored;
        a declined autosave is deleted, one that cannot be restored is kept."""
        if not self.dialogs.question(
            "Restore unsaved work?",
            f"Conv3DT Studio did not close normally. Restore {recovery.describe()}?{count} "
            "No deletes this autosave.",
        ):
            recovery.discard()
            self.activity.log(f"Deleted the autosave of {recovery.describe()}", "warning")
            return None
        try:
            return nodes.from_json(recovery.document, "autosave")
        except nodes.DocumentError as exc:  # keep the file: nothing of the user's is lost
            text = f"Cannot restore autosave `{recovery.file}` ({exc}); the file is kept"
            self.activity.log(text, "error")
            self.dialogs.message("Cannot restore", text)
            return None

    def _open_window(self) -> EditorWindow:
        """Another editor window, kept alive (and disposed) with this one."""
        window = self.new_window()
        self.windows.append(window)
        window.move(self.host.pos() + WINDOW_OFFSET * len(self.windows))
        window.show()
        return window
