"""The main window: canvas, docks (palette, properties, inspector, log), actions, files, runs.

Actions are declared once (text, shortcut, objectName) and placed in menus and the toolbar. Every
modal question goes through :class:`app.dialogs.Dialogs` (replaceable in tests). Runs happen on a
QThreadPool worker; the window only reacts to its signals.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEvent, QPoint, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDockWidget,
    QLabel,
    QMainWindow,
    QMenu,
    QProgressBar,
    QToolBar,
)

from conv3dt_studio import nodes
from conv3dt_studio.compute import BackendError, cupy_status, get_backend
from conv3dt_studio.nodes import GraphDocument
from conv3dt_studio.nodes.files import save_npy
from conv3dt_studio.nodes.validation import relevant_problems
from conv3dt_studio.resources import STYLE_SHEET, example_paths

from . import autosave
from .canvas import Canvas, display_name
from .dialogs import GRAPH_FILTER, JSON_FILTER, NPY_FILTER, PNG_FILTER, Dialogs
from .log_panel import LogPanel
from .node_palette import NodePalette
from .prediction_inspector import PredictionInspector
from .property_panel import PropertyPanel
from .recent_files import RecentFiles
from .run_worker import (
    RunWorker,
    failure_text,
    node_errors,
    prediction_to_run,
    weights_text,
)
from .snippet_export import export_snippet
from .training_controller import TrainingController

APP_TITLE = "Conv3DT Studio"
BACKENDS = ("auto", "numpy", "cupy")


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
        self.setObjectName("main_window")
        self.dialogs = dialogs or Dialogs(self)
        self._dialogs_injected = dialogs is not None  # tests: windows opened from here share them
        self.recovered_windows: list[MainWindow] = []  # further windows of restored autosaves
        self.path: str | None = None
        self._dirty_without_undo = False  # restored work not yet saved
        self.worker: RunWorker | None = None
        self.pool = QThreadPool.globalInstance()

        self.canvas = Canvas(parent=self)
        self.canvas.set_message_dialog(self.dialogs.message)
        self.setCentralWidget(self.canvas.viewer)
        self.log = LogPanel()
        self.palette = NodePalette()
        self.properties = PropertyPanel(self.canvas)
        self.inspector = PredictionInspector()
        self.training = TrainingController(self)
        self._make_docks()
        self._make_actions()
        self._make_menus_and_toolbar()
        self._make_status_bar()

        self.autosaver = autosave.Autosaver(
            lambda: self.canvas.doc.to_json(), lambda: self.path, autosave_delay_ms, self
        )
        self.canvas.message.connect(lambda level, text: self.log.log(text, level))
        self.canvas.document_changed.connect(self._on_document_changed)
        self.canvas.undo_stack.cleanChanged.connect(self._on_clean_changed)
        # a command's redo runs inside push(), before the stack moves: re-check after it
        self.canvas.undo_stack.indexChanged.connect(self._on_index_changed)
        self.palette.add_requested.connect(
            lambda type_id: self.canvas.add_node(type_id, self.canvas.view_center())
        )
        self.inspector.save_requested.connect(self.save_prediction)

        self.resize(1500, 950)
        self.log.log(f"{APP_TITLE} ready. Compute backend: {self._backend_text()}", "info")
        if path is not None:
            if not self.open_path(path):
                self.set_document(nodes.default_document(), None)
        else:
            self.set_document(document if document is not None else nodes.default_document(), None)
        if offer_recovery:
            self.offer_recovery()

    # ------------------------------------------------------------------ building
    def _make_docks(self) -> None:
        self.setDockNestingEnabled(True)
        self.docks: dict[str, QDockWidget] = {}
        for name, title, widget, area in (
            ("node_palette", "Nodes", self.palette, Qt.DockWidgetArea.LeftDockWidgetArea),
            (
                "properties_panel",
                "Properties",
                self.properties,
                Qt.DockWidgetArea.RightDockWidgetArea,
            ),
            (
                "prediction_inspector",
                "Prediction inspector",
                self.inspector,
                Qt.DockWidgetArea.BottomDockWidgetArea,
            ),
            ("log_panel", "Log", self.log, Qt.DockWidgetArea.BottomDockWidgetArea),
            (
                "training_panel",
                "Training",
                self.training.panel,
                Qt.DockWidgetArea.BottomDockWidgetArea,
            ),
        ):
            dock = QDockWidget(title, self)
            dock.setObjectName(name)
            dock.setWidget(widget)
            self.addDockWidget(area, dock)
            self.docks[name] = dock
        self.splitDockWidget(
            self.docks["prediction_inspector"], self.docks["log_panel"], Qt.Orientation.Horizontal
        )
        self.tabifyDockWidget(self.docks["prediction_inspector"], self.docks["training_panel"])
        self.docks["prediction_inspector"].raise_()
        self.resizeDocks(
            [self.docks["node_palette"], self.docks["properties_panel"]],
            [190, 430],
            Qt.Orientation.Horizontal,
        )
        self.resizeDocks(
            [self.docks["prediction_inspector"], self.docks["log_panel"]],
            [1050, 420],
            Qt.Orientation.Horizontal,
        )
        self.resizeDocks([self.docks["prediction_inspector"]], [380], Qt.Orientation.Vertical)

    def _action(self, name: str, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        action.setObjectName(name)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setToolTip(tip or text.replace("…", "").replace("&", ""))
        action.setStatusTip(action.toolTip())
        action.triggered.connect(lambda _checked=False: slot())
        self.addAction(action)
        return action

    def _make_actions(self) -> None:
        std = QKeySequence.StandardKey
        a = self._action
        self.action_new = a("action_new", "&New", self.new_document, std.New)
        self.action_open = a("action_open", "&Open…", self.open_dialog, std.Open)
        self.action_save = a("action_save", "&Save", self.save, std.Save)
        self.action_save_as = a("action_save_as", "Save &As…", self.save_as, std.SaveAs)
        self.action_import = a(
            "action_import",
            "&Import Graph…",
            self.import_dialog,
            None,
            "Add the nodes of a graph JSON or snippet PNG to this graph",
        )
        self.action_export_json = a(
            "action_export_json",
            "Export &JSON…",
            self.export_json,
            None,
            "Write a copy of the graph as JSON",
        )
        self.action_export_snippet = a(
            "action_export_snippet",
            "Export Snippet &PNG…",
            self.export_snippet_dialog,
            None,
            "Picture of the graph (or the selection) with the graph embedded",
        )
        self.action_quit = a("action_quit", "&Quit", self.close, std.Quit)
        self.action_undo = self.canvas.undo_stack.createUndoAction(self, "&Undo")
        self.action_undo.setObjectName("action_undo")
        self.action_undo.setShortcut(QKeySequence(std.Undo))
        self.action_redo = self.canvas.undo_stack.createRedoAction(self, "&Redo")
        self.action_redo.setObjectName("action_redo")
        self.action_redo.setShortcut(QKeySequence(std.Redo))
        self.addActions([self.action_undo, self.action_redo])
        self.action_delete = a(
            "action_delete", "&Delete", self.delete_selection, QKeySequence(Qt.Key.Key_Delete)
        )
        self.action_delete.setShortcuts(
            [QKeySequence(Qt.Key.Key_Delete), QKeySequence(Qt.Key.Key_Backspace)]
        )
        self.action_delete.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.canvas.viewer.addAction(self.action_delete)
        self.action_select_all = a(
            "action_select_all", "Select &All", self.canvas.graph.select_all, std.SelectAll
        )
        self.action_select_all.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.canvas.viewer.addAction(self.action_select_all)
        self.action_node_search = a(
            "action_node_search",
            "Node &Search",
            self.canvas.graph.toggle_node_search,
            QKeySequence(Qt.Key.Key_Tab),
            "Search node types (Tab, with the mouse over the canvas)",
        )
        self.action_node_search.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self.canvas.viewer.addAction(self.action_node_search)
        self.action_fit = a("action_fit", "&Fit Graph", self.canvas.fit, QKeySequence("F"))
        self.action_fit.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self.canvas.viewer.addAction(self.action_fit)
        for action in (
            self.action_delete,
            self.action_select_all,
            self.action_node_search,
            self.action_fit,
        ):  # canvas-only keys: Delete or Tab in a text field must not act on nodes
            self.removeAction(action)
        self.action_run = a("action_run", "&Run", self.run, QKeySequence(Qt.Key.Key_F5))
        self.action_stop = a(
            "action_stop", "S&top", self.stop, QKeySequence(Qt.Key.Key_Escape), "Stop the run"
        )
        self.action_stop.setEnabled(False)
        self.training_actions = self.training.make_actions()

    def _make_menus_and_toolbar(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addActions([self.action_new, self.action_open])
        self.recent_menu = RecentFiles(self._open_recent, self)
        file_menu.addMenu(self.recent_menu)
        examples = QMenu("Open &Example", self)
        for ex in example_paths():
            examples.addAction(ex.stem.replace("_", " "), lambda p=ex: self.open_example(p))
        file_menu.addMenu(examples)
        file_menu.addSeparator()
        file_menu.addActions([self.action_save, self.action_save_as])
        file_menu.addSeparator()
        file_menu.addActions(
            [self.action_import, self.action_export_json, self.action_export_snippet]
        )
        file_menu.addSeparator()
        file_menu.addAction(self.action_quit)
        edit = bar.addMenu("&Edit")
        edit.addActions([self.action_undo, self.action_redo])
        edit.addSeparator()
        edit.addActions([self.action_delete, self.action_select_all, self.action_node_search])
        run_menu = bar.addMenu("&Run")
        run_menu.addActions([self.action_run, self.training.action_train, self.action_stop])
        train_menu = bar.addMenu("T&rain")
        train_menu.addActions(self.training_actions)
        view = bar.addMenu("&View")
        view.addAction(self.action_fit)
        for dock in self.docks.values():
            view.addAction(dock.toggleViewAction())

        tb = QToolBar("Main", self)
        tb.setObjectName("main_toolbar")
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        tb.addActions([self.action_new, self.action_open, self.action_save])
        tb.addSeparator()
        tb.addActions([self.action_undo, self.action_redo])
        tb.addSeparator()
        tb.addActions([self.action_run, self.training.action_train, self.action_stop])
        tb.addSeparator()
        tb.addWidget(QLabel(" Backend "))
        self.backend_selector = QComboBox()
        self.backend_selector.setObjectName("backend_selector")
        self.backend_selector.addItems(BACKENDS)
        self.backend_selector.setToolTip(f"Compute backend. CuPy: {cupy_status()}")
        self.backend_label = QLabel()
        self.backend_label.setObjectName("backend_label")
        self.backend_selector.currentTextChanged.connect(self._backend_changed)
        tb.addWidget(self.backend_selector)
        tb.addWidget(self.backend_label)
        self.addToolBar(tb)
        self._backend_changed(self.backend_selector.currentText())

    def _make_status_bar(self) -> None:
        self.progress = QProgressBar()
        self.progress.setObjectName("run_progress")
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(260)
        self.progress.setTextVisible(True)
        self.progress.setFormat("idle")  # always shown: showing it would re-lay out the window
        self.progress.setValue(0)
        self.statusBar().addPermanentWidget(self.progress)

    # ------------------------------------------------------------------ backend
    def backend(self) -> str:
        return self.backend_selector.currentText()

    def _backend_text(self, name: str = "auto") -> str:
        try:
            b = get_backend(name)
        except BackendError:
            return f"{name}: unavailable ({cupy_status()})"
        return f"{b.name} ({b.device_name})"

    def _backend_changed(self, name: str) -> None:
        text = self._backend_text(name)
        self.backend_label.setText(f" → {text} ")
        self.backend_label.setToolTip(f"CuPy: {cupy_status()}")

    # ------------------------------------------------------------------ document and title
    def set_document(self, doc: GraphDocument, path: str | None) -> None:
        self.stop()
        self.canvas.set_document(doc)
        self.path = str(path) if path else None
        self._dirty_without_undo = False
        self.canvas.undo_stack.setClean()
        self.inspector.clear()
        self.training.document_opened(doc)
        self.canvas.fit()
        self.canvas.select(None)
        self.autosaver.discard()
        self._update_title()

    def is_modified(self) -> bool:
        return self._dirty_without_undo or not self.canvas.undo_stack.isClean()

    def display_name(self) -> str:
        return Path(self.path).name if self.path else "Untitled"

    def _update_title(self) -> None:
        self.setWindowTitle(f"{self.display_name()}[*] — {APP_TITLE}")
        self.setWindowModified(self.is_modified())

    def _on_clean_changed(self, _clean: bool) -> None:
        self._update_title()

    def _on_index_changed(self, _index: int) -> None:
        self._on_document_changed()

    def _on_document_changed(self) -> None:
        self._update_title()
        if self.is_modified():
            self.autosaver.schedule()
        else:
            self.autosaver.discard()

    # ------------------------------------------------------------------ files
    def _ok_to_replace(self) -> bool:
        """Ask about unsaved changes; False when the user cancels."""
        if not self.is_modified():
            return True
        answer = self.dialogs.save_changes(self.display_name())
        if answer == "save":
            return self.save()
        return answer == "discard"

    def new_document(self) -> None:
        if self._ok_to_replace():
            self.set_document(GraphDocument(), None)
            self.log.log("New empty graph: drag nodes from the palette (or press Tab).")

    def open_dialog(self) -> None:
        if not self._ok_to_replace():
            return
        path = self.dialogs.open_path("Open graph", GRAPH_FILTER)
        if path:
            self.open_path(path)

    def open_path(self, path: str | os.PathLike) -> bool:
        try:
            doc = nodes.load(path)
        except (nodes.FileError, nodes.DocumentError) as exc:
            self.log.log(str(exc), "error")
            self.dialogs.message("Cannot open", str(exc))
            return False
        is_png = str(path).lower().endswith(".png")
        self.set_document(doc, None if is_png else str(path))  # never overwrite a snippet PNG
        self.recent_menu.add(str(path))
        self.log.log(f"Opened {path} ({len(doc.nodes)} nodes)", "ok")
        return True

    def open_example(self, path: Path) -> None:
        if self._ok_to_replace() and self.open_path(path):
            self.path = None  # keep the bundled example intact: Save asks for a file
            self._update_title()

    def import_dialog(self) -> None:
        path = self.dialogs.open_path("Import graph", GRAPH_FILTER)
        if path:
            self.import_path(path)

    def import_path(self, path: str | os.PathLike) -> list[str]:
        """Add a file's nodes to this graph at the view centre (undoable)."""
        try:
            other = nodes.load(path)
        except (nodes.FileError, nodes.DocumentError) as exc:
            self.log.log(str(exc), "error")
            self.dialogs.message("Cannot import", str(exc))
            return []
        return self.canvas.insert_document(other, self.canvas.view_center())

    def save(self) -> bool:
        if self.path is None:
            return self.save_as()
        return self._write(self.path)

    def save_as(self) -> bool:
        path = self.dialogs.save_path("Save graph", JSON_FILTER, self.path or "graph.json")
        if not path:
            return False
        path = _with_suffix(path, ".json")
        if self._write(path):
            self.path = path
            self._update_title()
            return True
        return False

    def _write(self, path: str) -> bool:
        try:
            self.training.document_for_saving(self.canvas.doc).save(path)
        except nodes.FileError as exc:
            self.log.log(str(exc), "error")
            self.dialogs.message("Cannot save", str(exc))
            return False
        self.canvas.undo_stack.setClean()
        self._dirty_without_undo = False
        self.autosaver.discard()
        self.recent_menu.add(path)
        self._update_title()
        self.log.log(f"Saved {path}", "ok")
        return True

    def export_json(self, path: str | None = None) -> bool:
        path = path or self.dialogs.save_path("Export graph JSON", JSON_FILTER, "graph.json")
        if not path:
            return False
        try:
            self.training.document_for_saving(self.canvas.doc).save(_with_suffix(path, ".json"))
        except nodes.FileError as exc:
            self.dialogs.message("Cannot export", str(exc))
            return False
        self.log.log(f"Exported graph JSON to {path}", "ok")
        return True

    def export_snippet_dialog(self) -> bool:
        path = self.dialogs.save_path("Export snippet PNG", PNG_FILTER, "snippet.png")
        return bool(path) and self.export_snippet(path)

    def export_snippet(self, path: str, selection_only: bool | None = None) -> bool:
        """The selection when nodes are selected (or ``selection_only``), else the whole graph."""
        selected = self.canvas.selected_ids()
        use_selection = bool(selected) if selection_only is None else selection_only
        ids = selected if use_selection else None
        try:
            export_snippet(self.canvas, _with_suffix(path, ".png"), ids)
        except nodes.FileError as exc:
            self.dialogs.message("Cannot export", str(exc))
            return False
        what = f"{len(selected)} selected nodes" if use_selection else "the graph"
        self.log.log(f"Exported a snippet PNG of {what} to {path}", "ok")
        return True

    def _open_recent(self, path: str) -> None:
        if self._ok_to_replace():
            self.open_path(path)

    # ------------------------------------------------------------------ recovery
    def offer_recovery(self) -> list[MainWindow]:
        """Offer every autosave left by a session that crashed, one question each, newest first.
        The first graph restored opens in this window, each further one in a new window; when
        this window holds a file or changes of its own, every one opens in a new window. Only an
        autosave the user declines is deleted; one that cannot be read or restored is reported
        (log, and status bar or message) and kept on disk. Returns the windows holding restored
        work."""
        found, unreadable = autosave.scan()
        for u in unreadable:
            self.log.log(u.describe(), "error")
        if unreadable:
            self.statusBar().showMessage(
                f"{len(unreadable)} autosave file(s) cannot be read: see the log", 15000
            )
        restored: list[MainWindow] = []
        keep_this = self.path is not None or self.is_modified()  # the file asked for stays open
        for number, recovery in enumerate(found, 1):
            count = f" (autosave {number} of {len(found)})" if len(found) > 1 else ""
            if not self.dialogs.question(
                "Restore unsaved work?",
                f"Conv3DT Studio did not close normally. Restore {recovery.describe()}?{count} "
                "No deletes this autosave.",
            ):
                recovery.discard()
                self.log.log(f"Deleted the autosave of {recovery.describe()}", "warning")
                continue
            try:
                doc = nodes.from_json(recovery.document, "autosave")
            except nodes.DocumentError as exc:  # keep the file: nothing of the user's is lost
                text = f"Cannot restore autosave `{recovery.file}` ({exc}); the file is kept"
                self.log.log(text, "error")
                self.dialogs.message("Cannot restore", text)
                continue
            window = self._new_window() if restored or keep_this else self
            window._adopt_recovery(recovery, doc)
            if window is not self:
                self.log.log(f"Opened {recovery.describe()} in a new window", "ok")
            restored.append(window)
        return restored

    def _new_window(self) -> MainWindow:
        """Another editor window, kept alive (and disposed) with this one."""
        window = MainWindow(
            dialogs=self.dialogs if self._dialogs_injected else None,
            autosave_delay_ms=self.autosaver.timer.interval(),
            offer_recovery=False,
        )
        self.recovered_windows.append(window)
        window.move(self.pos() + QPoint(40, 40) * len(self.recovered_windows))
        window.show()
        return window

    def _adopt_recovery(self, recovery: autosave.Recovery, doc: GraphDocument) -> None:
        """Show restored work as unsaved, autosaved under this window's own file."""
        self.set_document(doc, recovery.path)
        self._dirty_without_undo = True
        self._update_title()
        if self.autosaver.save_now():  # its copy is safe in this window's autosave
            recovery.discard()
        self.log.log(f"Restored {recovery.describe()}", "ok")

    # ------------------------------------------------------------------ editing
    def delete_selection(self) -> None:
        self.canvas.delete_nodes(self.canvas.selected_ids())

    # ------------------------------------------------------------------ running
    def is_running(self) -> bool:
        return self.worker is not None

    def _set_busy(self, busy: bool) -> None:
        """A run or a training is under way: one at a time, Stop stops it."""
        self.action_run.setEnabled(not busy)
        self.training.action_train.setEnabled(not busy)
        self.action_stop.setEnabled(busy)
        if busy:
            self.progress.setValue(0)
            self.progress.setFormat("starting…")
        else:
            self.progress.setValue(0)
            self.progress.setFormat("idle")

    def report_problems(self, header: str, problems, status: str) -> str:
        """Log ``header`` and each problem as errors, show ``status``; returns the problems as one
        line (what the failure signals carry)."""
        self.log.log(header, "error")
        for p in problems:
            self.log.log(str(p), "error")
        self.statusBar().showMessage(status, 5000)
        return "; ".join(str(p) for p in problems)

    def run(self) -> bool:
        """Start a run of the Prediction 6D that :func:`prediction_to_run` picks, in the worker
        pool; False when one runs already or that node's chain has problems (listed in the log,
        shown on the nodes). Problems of other branches do not stop it."""
        if self.worker is not None or self.training.is_training:
            return False
        self.canvas.set_run_errors({})
        doc = self.canvas.doc
        pid = prediction_to_run(doc, self.canvas.selected_ids())
        problems = self.canvas.report.problems
        if pid is not None:  # else every problem blocks ("no Prediction 6D node" among them)
            problems = relevant_problems(doc, problems, pid)
        if problems:
            what = f"Cannot run {self._node_text(pid)}:" if pid else "Cannot run:"
            header = f"{what} {len(problems)} problem(s) in its chain or the graph"
            status = "Cannot run: see the red nodes and the log"
            self.run_failed.emit(self.report_problems(header, problems, status))
            return False
        self.worker = RunWorker(doc, self.backend(), self.training.weights, pid)
        self.worker.signals.progress.connect(self._on_progress)
        self.worker.signals.finished.connect(self._on_finished)
        self.worker.signals.failed.connect(self._on_failed)
        self.worker.signals.cancelled.connect(self._on_cancelled)
        self._set_busy(True)
        weights = weights_text(doc, pid, self.training.weights)
        self.log.log(
            f"Run of {self._node_text(pid)} with {weights} started on backend {self.backend()} "
            f"({self._backend_text(self.backend())})"
        )
        self.pool.start(self.worker)
        return True

    def _node_text(self, node_id: str) -> str:
        """'Prediction 6D 2 (`prediction_6d_2`)': the canvas title and the id."""
        node = self.canvas.doc.nodes.get(node_id)
        return f"{display_name(node)} (`{node_id}`)" if node else f"`{node_id}`"

    def stop(self) -> None:
        self.training.stop()
        if self.worker is not None and not self.worker.stopping:
            self.worker.stop()
            self.progress.setFormat("stopping…")
            self.log.log("Stopping after the current batch…", "warning")

    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        self.progress.setFormat(f"{message} (%p%)")

    def _run_done(self) -> None:
        self.worker = None
        self._set_busy(False)

    def _on_finished(self, result: nodes.RunResult, summary=None) -> None:
        self._run_done()
        self.inspector.show_result(result, summary)
        self.docks["prediction_inspector"].raise_()
        shape = "×".join(str(s) for s in result.info.shape)
        self.log.log(
            f"Prediction {shape} of {self._node_text(result.prediction_node)} from "
            f"`{result.info.name}` in {result.seconds:.2f} s "
            f"on backend {result.backend}",
            "ok",
        )
        self.statusBar().showMessage(f"Prediction {shape} in {result.seconds:.2f} s", 8000)
        self.run_finished.emit(result)

    def _on_failed(self, exc: BaseException) -> None:
        """Problems of nodes go on the nodes; a failure of the run itself (backend, memory
        guard, an unexpected error) is no node's fault: the status bar shows it whole."""
        self._run_done()
        errors = node_errors(exc)
        text = failure_text(exc)
        self.canvas.set_run_errors(errors)
        self.log.log(f"Run failed: {text}", "error")
        where = "see the red nodes and the log" if errors else text
        self.statusBar().showMessage(f"Run failed: {where}", 15000)
        self.run_failed.emit(text)

    def _on_cancelled(self, message: str) -> None:
        self._run_done()
        self.log.log(f"Run stopped: {message}", "warning")
        self.statusBar().showMessage("Run stopped", 5000)
        self.run_stopped.emit(message)

    def save_prediction(self, path: str | None = None) -> bool:
        result = self.inspector.result
        if result is None:
            return False
        path = path or self.dialogs.save_path("Save prediction", NPY_FILTER, "prediction.npy")
        if not path:
            return False
        try:
            save_npy(_with_suffix(path, ".npy"), result.prediction)
        except nodes.FileError as exc:
            self.dialogs.message("Cannot save", str(exc))
            return False
        self.log.log(f"Saved prediction {result.prediction.shape} to {path}", "ok")
        return True

    # ------------------------------------------------------------------ closing
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        if not self._ok_to_replace():
            event.ignore()
            return
        if self.worker is not None or self.training.is_training:
            self.stop()
            self.pool.waitForDone(10_000)
        self.autosaver.close()
        event.accept()


def _with_suffix(path: str, suffix: str) -> str:
    return path if Path(path).suffix else path + suffix


def apply_style(app: QApplication) -> None:
    if STYLE_SHEET.is_file():
        app.setStyleSheet(STYLE_SHEET.read_text(encoding="utf-8"))


QUIT_AFTER_ENV = "CONV3DT_STUDIO_QUIT_AFTER"


def launch(path: str | os.PathLike | None = None) -> int:
    """Open the editor (on ``path``, else the toolkit example) and run the event loop; with
    ``CONV3DT_STUDIO_QUIT_AFTER=SECONDS`` in the environment it quits by itself after that time."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("conv3dt-studio")
    app.setApplicationDisplayName(APP_TITLE)
    apply_style(app)
    window = MainWindow(path)
    install_excepthook(window)
    window.show()
    QTimer.singleShot(0, window.canvas.viewer, window.canvas.fit)
    QTimer.singleShot(300, window.inspector, window.inspector.prepare)  # plots before a run
    # compile (or load from the disk cache) the CPU kernels off the GUI thread, before the first run
    from conv3dt_studio.compute.conv3d_transpose_ops import warm_up

    QThreadPool.globalInstance().start(warm_up)
    quit_after = os.environ.get(QUIT_AFTER_ENV, "")
    if quit_after:  # smoke tests of an installed editor: open, draw, quit
        QTimer.singleShot(int(float(quit_after) * 1000), app.quit)
    code = app.exec()
    dispose(window)
    return code


def install_excepthook(window: MainWindow) -> None:
    """An unexpected exception in a slot goes to the log and the status bar, not to a crash."""
    previous = sys.excepthook

    def hook(kind, value, tb) -> None:
        previous(kind, value, tb)
        try:
            window.log.log(f"Internal error: {kind.__name__}: {value}", "error")
            window.statusBar().showMessage(f"Internal error: {value} (see the log)", 8000)
        except RuntimeError:  # the window is gone
            pass

    sys.excepthook = hook


def dispose(window: MainWindow) -> None:
    """Delete the window now: left to interpreter shutdown, the NodeGraphQt and pyqtgraph items
    can be torn down in an order that crashes. Windows it opened for restored work go too."""
    for other in window.recovered_windows:
        dispose(other)
    window.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


__all__ = ["MainWindow", "launch"]
