"""The main window, the editor's composition root: it builds the canvas, the docks, the actions
(declared once with :func:`.actions.make_action`), menus, toolbar and status bar, and wires the
controllers (files, run, training, export, view, recovery), which do the work; `menus.py`
places the actions in the menu bar and toolbar. They talk to the window through
their signals and one shared :class:`.activity.Activity` (busy, progress, status bar, log). Every
modal question goes through :class:`.dialogs.Dialogs` (replaceable in tests). The window's own
methods (run, save, open_path, ...) only delegate.
"""

from __future__ import annotations

import os
from functools import partial

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import QDockWidget, QMainWindow

from conv3dt_studio import nodes
from conv3dt_studio.nodes import GraphDocument

from . import autosave
from .actions import canvas_actions, make_action, prepare_first, stack_actions
from .activity import Activity, ActivityBar
from .backend_selector import backend_text
from .canvas import Canvas
from .canvas_menu import CanvasMenus
from .dialogs import Dialogs
from .export_controller import ExportController
from .files_controller import FilesController
from .gui_gc import collect_on_gui_thread
from .launcher import APP_TITLE, apply_style, dispose, run_editor
from .live_preview import LivePreview
from .log_panel import LogPanel
from .menus import build_menus, build_toolbar
from .node_palette import NodePalette
from .prediction_inspector import PredictionInspector
from .property_panel import PropertyPanel
from .recovery import RecoveryController
from .run_controller import RunController
from .table_dialog import ShortcutsDialog, SummaryDialog
from .training_controller import TrainingController
from .view_controller import ViewController

Area = Qt.DockWidgetArea


class MainWindow(QMainWindow):
    """The editor. ``MainWindow()`` shows the toolkit example, ready to run."""

    run_finished = Signal(object)  # nodes.RunResult
    run_failed = Signal(str)
    run_stopped = Signal(str)

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        *,
        document: GraphDocument | None = None,
        dialogs: Dialogs | None = None,
        autosave_delay_ms: int = autosave.DEFAULT_DELAY_MS,
        offer_recovery: bool = True,
    ) -> None:
        super().__init__()
        collect_on_gui_thread()  # no Qt object is deleted by a collection on another thread
        self.setObjectName("main_window")
        self.dialogs = dialogs or Dialogs(self)
        self.activity = Activity(parent=self)
        self.canvas = Canvas(parent=self)
        self.canvas.set_message_dialog(self.dialogs.message)
        self.setCentralWidget(self.canvas.viewer)
        self.log = LogPanel()
        self.palette = NodePalette()
        self.properties = PropertyPanel(self.canvas, self.dialogs.open_path)
        self.inspector = PredictionInspector()
        a, canvas = self.activity, self.canvas
        self.training = TrainingController(canvas, self.dialogs, a, self.backend, self)
        t = self.training
        self.files = FilesController(
            canvas,
            self.dialogs,
            a,
            t.document_for_saving,
            autosave_delay_ms,
            self,
            unsaved_weights=t.has_unsaved_weights,
            keep_weights=t.save_unsaved,
            weights_modified=t.weights_modified,
            end_training=t.end_training,
            for_autosave=t.document_for_autosave,
            autosave_state=t.autosave_state,
            restore_autosave_state=t.restore_autosave_state,
        )
        trained = self.training.run_weights  # trained, embedded (None) or seeded ({})
        self.runs = RunController(canvas, a, self.backend, trained, self)
        self.live = LivePreview(canvas, trained, self)
        self.exports = ExportController(canvas, self.dialogs, a, trained, self)
        # windows for restored work share injected dialogs (tests); real ones are each window's
        again = partial(MainWindow, dialogs=dialogs, autosave_delay_ms=autosave_delay_ms)
        self.recovery = RecoveryController(
            self, self.dialogs, a, partial(again, offer_recovery=False), self
        )
        self.canvas_menus = CanvasMenus(canvas, self)
        self.views = ViewController(self, canvas, self.inspector, self.files, self.live)
        self._make_docks()
        self._make_actions()
        self.recent_menu = build_menus(self, self.files, self.docks.values())
        self.backend_selector, self.backend_label = build_toolbar(self)
        self.statusBar().addPermanentWidget(ActivityBar(a))
        self._wire()
        self.resize(1500, 950)
        a.log(f"{APP_TITLE} ready. Compute backend: {backend_text()}", "info")
        self.files.open_first(path, document)
        if offer_recovery:
            self.offer_recovery()

    # ------------------------------------------------------------------ building
    def _make_docks(self) -> None:
        self.setDockNestingEnabled(True)
        self.docks: dict[str, QDockWidget] = {}
        bottom = Area.BottomDockWidgetArea
        for name, title, widget, area in (
            ("node_palette", "Nodes", self.palette, Area.LeftDockWidgetArea),
            ("properties_panel", "Properties", self.properties, Area.RightDockWidgetArea),
            ("prediction_inspector", "Prediction inspector", self.inspector, bottom),
            ("log_panel", "Log", self.log, bottom),
            ("training_panel", "Training", self.training.panel, bottom),
        ):
            dock = QDockWidget(title, self)
            dock.setObjectName(name)
            dock.setWidget(widget)
            self.addDockWidget(area, dock)
            self.docks[name] = dock
        d, horizontal = self.docks, Qt.Orientation.Horizontal
        self.splitDockWidget(d["prediction_inspector"], d["log_panel"], horizontal)
        self.tabifyDockWidget(d["prediction_inspector"], d["training_panel"])
        d["prediction_inspector"].raise_()
        self.resizeDocks([d["node_palette"], d["properties_panel"]], [190, 430], horizontal)
        self.resizeDocks([d["prediction_inspector"], d["log_panel"]], [1050, 420], horizontal)
        self.resizeDocks([d["prediction_inspector"]], [380], Qt.Orientation.Vertical)

    def _make_actions(self) -> None:
        std, key, files, canvas = QKeySequence.StandardKey, Qt.Key, self.files, self.canvas

        def a(*args, **kwargs):
            return make_action(self, *args, **kwargs)

        self.action_new = a("action_new", "&New", files.new_document, std.New)
        self.action_open = a("action_open", "&Open…", files.open_dialog, std.Open)
        self.action_save = a("action_save", "&Save", self.save, std.Save)
        self.action_save_as = a("action_save_as", "Save &As…", self.save_as, std.SaveAs)
        self.action_import = a(
            "action_import",
            "&Import Graph…",
            files.import_dialog,
            None,
            "Add the nodes of a graph JSON or snippet PNG to this graph",
        )
        self.action_export_json = a(
            "action_export_json",
            "Export &JSON…",
            files.export_json,
            None,
            "Write a copy of the graph as JSON",
        )
        self.action_export_snippet = a(
            "action_export_snippet",
            "Export Snippet &PNG…",
            files.export_snippet_dialog,
            None,
            "Picture of the graph (or the selection) with the graph embedded",
        )
        self.action_quit = a("action_quit", "&Quit", self.close, std.Quit)
        self.action_undo, self.action_redo = stack_actions(self, canvas.undo_stack)
        edit = self.edit_actions = canvas_actions(self, canvas)
        self.action_delete, self.action_select_all = edit.delete, edit.select_all
        self.action_node_search, self.action_fit = edit.node_search, edit.fit
        self.action_run = a("action_run", "&Run", self.run, key.Key_F5)
        self.action_stop = a("action_stop", "S&top", self.stop, key.Key_Escape, "Stop the run")
        self.action_stop.setEnabled(False)
        named = self.views.make_actions(self)
        self.action_live_preview, self.action_summary = (
            named["action_live_preview"],
            named["action_summary"],
        )
        self.action_shortcuts = named["action_shortcuts"]
        self.action_export_view = named["action_export_view"]
        self.action_export_time_series = named["action_export_time_series"]
        self.action_export_video = named["action_export_video"]
        self.training_actions = self.training.make_actions(self)
        self.export_actions = self.exports.make_actions(self)

    def run_actions(self) -> list[QAction]:
        """Run, Train and Stop (the Run menu and the toolbar)."""
        return [self.action_run, self.training.action_train, self.action_stop]

    def _wire(self) -> None:
        """Controllers and widgets to each other: every connection of the window is here."""
        a, files, canvas = self.activity, self.files, self.canvas
        a.message.connect(self._log)
        a.status.connect(self.statusBar().showMessage)
        a.busy_changed.connect(self._show_busy)
        canvas.message.connect(self._log)
        files.title_changed.connect(self._show_title)
        files.file_used.connect(self.recent_menu.add)
        files.document_opened.connect(self._document_opened)
        files.document_opened.connect(self.training.document_opened)
        files.graph_saved.connect(self.training.graph_saved)
        self.training.weights_changed.connect(files.weights_changed)  # the title, the autosave
        self.runs.prediction_ready.connect(self._show_prediction)
        self.canvas_menus.inspect_requested.connect(self.runs.inspect)
        canvas.document_changed.connect(self.inspector.mark_stale)
        self.training.weights_updated.connect(self.inspector.mark_stale)
        self.training.weights_updated.connect(self.live.schedule)  # previews with the new weights
        self.live.preview_failed.connect(self._preview_failed)
        self.runs.run_finished.connect(self.run_finished)
        self.runs.run_failed.connect(self.run_failed)
        self.runs.run_stopped.connect(self.run_stopped)
        self.training.train_started.connect(self.docks["training_panel"].raise_)
        self.palette.add_requested.connect(lambda t: canvas.add_node(t, canvas.view_center()))
        self.inspector.save_requested.connect(lambda: files.save_prediction(self.inspector.result))
        pictures = (
            self.action_export_view,
            self.action_export_time_series,
            self.action_export_video,
        )
        self.inspector.enable_with_result(*pictures)  # nothing to export before a result
        # what these act on includes a value typed in a field without Enter (one place for all)
        acting_on_the_document = [
            *(self.action_new, self.action_open, self.action_save, self.action_save_as),
            *(self.action_export_json, self.action_export_snippet, *self.export_actions),
            *(self.action_run, self.training.action_train),
            *self.edit_actions,  # Duplicate, Copy...: the node as its fields show it
        ]
        prepare_first(self.commit_pending, acting_on_the_document)

    def show_summary(self) -> SummaryDialog:
        return self.views.show_summary()

    def show_shortcuts(self) -> ShortcutsDialog:
        return self.views.show_shortcuts()

    def _log(self, level: str, text: str, group: str = "") -> None:
        self.log.log(text, level, group)

    def _preview_failed(self, node: str, text: str) -> None:
        """No thumbnail for the newest edit: say why (consecutive failures share a log line)."""
        line = f"No live preview of `{node}`: {text}"
        self.activity.log(line, "warning", group="live_preview")
        self.activity.show_status(line, 10_000)

    def _show_busy(self, busy: bool) -> None:
        """A run or a training is under way: one at a time, Stop stops it."""
        self.action_run.setEnabled(not busy)
        self.training.action_train.setEnabled(not busy)
        self.action_stop.setEnabled(busy)

    def _show_title(self, name: str, modified: bool) -> None:
        self.setWindowTitle(f"{name}[*] — {APP_TITLE}")
        self.setWindowModified(modified)

    def _document_opened(self, _doc: GraphDocument) -> None:
        self.stop()
        self.inspector.clear()

    def _show_prediction(self, result: nodes.RunResult, summary) -> None:
        self.inspector.show_result(result, summary)
        self.docks["prediction_inspector"].raise_()

    # ------------------------------------------------------------------ the window's API
    def backend(self) -> str:
        """The compute backend chosen in the toolbar."""
        return self.backend_selector.currentText()

    @property
    def path(self) -> str | None:
        return self.files.path

    @property
    def autosaver(self) -> autosave.Autosaver:
        return self.files.autosaver

    @property
    def recovered_windows(self) -> list[MainWindow]:
        return self.recovery.windows

    def is_modified(self) -> bool:
        return self.files.is_modified()

    def open_path(self, path: str | os.PathLike) -> bool:
        return self.files.open_path(path)

    def save(self) -> bool:
        return self.files.save()

    def save_as(self) -> bool:
        return self.files.save_as()

    def export_snippet(self, path: str, selection_only: bool | None = None) -> bool:
        return self.files.export_snippet(path, selection_only)

    def offer_recovery(self) -> list[MainWindow]:
        return self.recovery.offer()

    def run(self) -> bool:
        return self.runs.run()

    def is_running(self) -> bool:
        return self.runs.is_running

    def stop(self) -> None:
        self.activity.stop()

    def commit_pending(self) -> None:
        """Confirm a value typed in a properties or training field without Enter (an undoable
        edit, or refused with its message), as the actions that act on the document do first."""
        self.properties.commit_pending()
        self.training.panel.commit_pending()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        self.commit_pending()  # a typed value is a change to save or discard too
        if not self.files.ok_to_replace():
            event.ignore()
            return
        self.activity.wait(10_000)
        self.live.close()
        self.files.autosaver.close()
        event.accept()


def launch(path: str | os.PathLike | None = None) -> int:
    """Open the editor (on ``path``, else the toolkit example) and run the event loop; with
    ``CONV3DT_STUDIO_QUIT_AFTER=SECONDS`` in the environment it quits by itself after that time."""
    return run_editor(lambda: MainWindow(path))


__all__ = ["MainWindow", "apply_style", "dispose", "launch"]
