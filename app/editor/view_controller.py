"""The View and Help menus' own work: the model summary and keyboard-shortcut tables, the live
preview switch, and the inspector's picture exports (PNG, GIF, MP4). Its actions are declared
here once; the window places them in menus."""

from __future__ import annotations

from functools import partial

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QWidget

from .actions import make_action, window_keys
from .canvas import Canvas
from .files_controller import FilesController
from .live_preview import LivePreview
from .prediction_inspector import PredictionInspector
from .table_dialog import ShortcutsDialog, SummaryDialog

PICTURES = (  # name, text, suggested file, inspector method, tip
    ("view", "Export Inspector &View…", "inspector.png", "export_view",
     "The inspector's slices as a PNG"),
    ("time_series", "Export &Time Series (GIF)…", "time_series.gif", "export_time_series",
     "The shown slice over every time step as an animated GIF (at the player's fps)"),
    ("video", "Export Time Series (&MP4)…", "time_series.mp4", "export_video",
     "The shown slice over every time step as an MP4 video (at the player's fps)"),
)  # fmt: skip


class ViewController(QObject):
    """Summary and shortcut tables (non-modal), live preview, inspector pictures."""

    def __init__(
        self,
        window: QWidget,
        canvas: Canvas,
        inspector: PredictionInspector,
        files: FilesController,
        live: LivePreview,
    ) -> None:
        super().__init__(window)
        self.window, self.canvas, self.inspector = window, canvas, inspector
        self.files, self.live = files, live
        self.summary_dialog: SummaryDialog | None = None
        self.shortcuts_dialog: ShortcutsDialog | None = None

    def make_actions(self, owner: QWidget) -> dict[str, QAction]:
        """``action_live_preview``, ``action_summary``, ``action_shortcuts`` and
        ``action_export_view`` / ``_time_series`` / ``_video``, by objectName."""
        actions = [
            make_action(
                owner,
                "action_live_preview",
                "&Live Preview",
                None,
                "Ctrl+L",
                "After each edit, run the chosen Prediction 6D on the first sample's first time "
                "step in the background and show it under the node",
                checkable=True,
            ),
            make_action(
                owner,
                "action_summary",
                "&Summary",
                self.show_summary,
                "Ctrl+I",
                "Model summary: per layer output shape, parameters, multiply-adds, memory",
            ),
            make_action(
                owner,
                "action_shortcuts",
                "&Keyboard Shortcuts",
                self.show_shortcuts,
                QKeySequence.StandardKey.HelpContents,
                "Every action with its keys, and the canvas's gestures",
            ),
        ]
        actions[0].toggled.connect(self.live.set_enabled)
        for name, text, suggested, method, tip in PICTURES:
            title = text.replace("&", "").replace("…", "")
            write = getattr(self.inspector, method)
            slot = partial(self.files.export_picture, title, suggested, write)
            actions.append(make_action(owner, f"action_export_{name}", text, slot, None, tip))
        return {action.objectName(): action for action in actions}

    def show_summary(self) -> SummaryDialog:
        """View → Summary: a non-modal table that follows the edits."""
        if self.summary_dialog is None:
            self.summary_dialog = SummaryDialog(self.canvas, self.window)
            self.summary_dialog.addActions(window_keys(self.window))  # Ctrl+Z, F5... work there
        self.summary_dialog.show()
        self.summary_dialog.raise_()
        return self.summary_dialog

    def show_shortcuts(self) -> ShortcutsDialog:
        """Help → Keyboard shortcuts (non-modal)."""
        if self.shortcuts_dialog is None:
            self.shortcuts_dialog = ShortcutsDialog(self.window.findChildren(QAction), self.window)
            self.shortcuts_dialog.addActions(window_keys(self.window))
        self.shortcuts_dialog.show()
        self.shortcuts_dialog.raise_()
        return self.shortcuts_dialog
