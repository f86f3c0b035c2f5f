"""The window's menu bar and toolbar: where each action (declared once, by the window and its
controllers) is placed. Nothing here does work; the actions' slots do."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QLabel, QMenu, QToolBar

from conv3dt_studio.resources import example_paths

from .backend_selector import add_backend_selector
from .files_controller import FilesController
from .recent_files import RecentFiles

if TYPE_CHECKING:
    from PySide6.QtWidgets import QComboBox

    from .main_window import MainWindow


def build_menus(w: MainWindow, files: FilesController, docks: Iterable[QDockWidget]) -> RecentFiles:
    """File, Edit, Run, Train, View and Help; returns the recent-files menu."""
    bar = w.menuBar()
    file_menu = bar.addMenu("&File")
    file_menu.addActions([w.action_new, w.action_open])
    # as New and Open (actions made by make_action), a value typed without Enter is confirmed
    # first, so that the question about unsaved changes covers it
    recent = RecentFiles(lambda path: (w.commit_pending(), files.open_recent(path)), w)
    file_menu.addMenu(recent)
    examples = QMenu("Open &Example", w)
    file_menu.addMenu(examples)
    for ex in example_paths():
        examples.addAction(
            ex.stem.replace("_", " "), lambda p=ex: (w.commit_pending(), files.open_example(p))
        )
    for group in (
        [w.action_save, w.action_save_as],
        [w.action_import, w.action_export_json, w.action_export_snippet],
    ):
        file_menu.addSeparator()
        file_menu.addActions(group)
    export = file_menu.addMenu("E&xport")
    export.setObjectName("menu_export")
    export.addActions(w.export_actions)
    file_menu.addSeparator()
    file_menu.addAction(w.action_quit)
    edit = bar.addMenu("&Edit")
    edit.addActions([w.action_undo, w.action_redo])
    edit.addSeparator()
    e = w.edit_actions
    edit.addActions([e.cut, e.copy, e.paste, e.duplicate, e.delete])
    edit.addSeparator()
    edit.addActions([w.action_select_all, w.action_node_search])
    run_menu = bar.addMenu("&Run")
    run_menu.addActions(w.run_actions())
    run_menu.addSeparator()
    run_menu.addAction(w.action_live_preview)
    bar.addMenu("T&rain").addActions(w.training_actions)
    view = bar.addMenu("&View")
    view.addActions([w.action_fit, w.action_summary])
    view.addActions([w.action_export_view, w.action_export_time_series, w.action_export_video])
    view.addSeparator()
    view.addActions([dock.toggleViewAction() for dock in docks])
    bar.addMenu("&Help").addAction(w.action_shortcuts)
    return recent


def build_toolbar(w: MainWindow) -> tuple[QComboBox, QLabel]:
    """New/Open/Save, Undo/Redo, Run/Train/Stop and the backend selector."""
    tb = QToolBar("Main", w)
    tb.setObjectName("main_toolbar")
    tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    for group in (
        [w.action_new, w.action_open, w.action_save],
        [w.action_undo, w.action_redo],
        w.run_actions(),
    ):
        tb.addActions(group)
        tb.addSeparator()
        for action in group:  # action_run_button... (the stylesheet colours Run's)
            tb.widgetForAction(action).setObjectName(f"{action.objectName()}_button")
    selector = add_backend_selector(tb)
    w.addToolBar(tb)
    return selector
