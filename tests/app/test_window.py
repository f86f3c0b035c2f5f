"""The main window: stable object names, the example on start, title and backend selector."""

from __future__ import annotations

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget

from conv3dt_studio import nodes

ACTIONS = [
    "action_run",
    "action_stop",
    "action_new",
    "action_open",
    "action_save",
    "action_save_as",
    "action_export_json",
    "action_export_snippet",
    "action_undo",
    "action_redo",
]
DOCKS = ["node_palette", "properties_panel", "prediction_inspector", "log_panel"]


def test_every_action_has_its_object_name(window):
    missing = [name for name in ACTIONS if window.findChild(QAction, name) is None]
    assert missing == []


def test_every_dock_has_its_object_name(window):
    missing = [name for name in DOCKS if window.findChild(QDockWidget, name) is None]
    assert missing == []


def test_canvas_has_its_object_name(window):
    assert window.centralWidget().objectName() == "graph_canvas"


def test_import_app_does_not_import_qt():
    import subprocess
    import sys

    code = (
        "import sys, conv3dt_studio.app; print(any(m.startswith('PySide6') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_window_without_arguments_shows_the_toolkit_example(make_window):
    w = make_window()
    assert w.canvas.doc.to_json()["nodes"] == nodes.default_document().to_json()["nodes"]
    assert w.canvas.shape_text("prediction_6d") == "10×6×3×66×66×5"
    assert w.canvas.report.ok


def test_title_shows_file_name_and_modified_mark(window, tmp_path):
    assert window.windowTitle().startswith("Untitled")
    assert not window.isWindowModified()
    window.canvas.move_node("data", (10, 20))
    assert window.isWindowModified()
    window.dialogs.save_paths.append(str(tmp_path / "mine.json"))
    assert window.save()
    assert window.windowTitle().startswith("mine.json")
    assert not window.isWindowModified()


def test_backend_selector_shows_the_backend_actually_used(window):
    window.backend_selector.setCurrentText("numpy")
    assert "numpy" in window.backend_label.text()
    window.backend_selector.setCurrentText("auto")
    assert window.backend_label.text().strip().startswith("→")


def test_launch_opens_a_file_and_returns_the_exit_code(monkeypatch, tmp_path, fake_dialogs):
    from PySide6.QtWidgets import QApplication

    from conv3dt_studio.app.editor import main_window as mw

    path = tmp_path / "g.json"
    nodes.default_document().save(path)
    shown, created = {}, []
    run_editor = mw.run_editor

    def capture(make_window):  # the window launch shows (not any top-level widget: earlier
        return run_editor(lambda: created.append(make_window()) or created[-1])  # tests' too)

    def fake_exec(self):
        (w,) = created
        shown["path"] = w.path
        w.autosaver.close()
        return 0

    monkeypatch.setattr(mw, "run_editor", capture)
    monkeypatch.setattr(QApplication, "exec", fake_exec)
    monkeypatch.setattr(mw, "Dialogs", lambda parent: fake_dialogs)
    assert mw.launch(str(path)) == 0
    assert shown["path"] == str(path)


def test_the_style_sheet_greys_out_every_disabled_control():
    """Disabled menu items, combo boxes and fields read as disabled: the dark style sheet set
    their colours without a ``:disabled`` rule (the picture exports looked enabled before a run)."""
    import re

    from conv3dt_studio.app.editor.launcher import STYLE_SHEET

    text = STYLE_SHEET.read_text(encoding="utf-8")
    disabled = set(re.findall(r"([A-Za-z]+(?:::[a-z-]+)?):disabled", text))
    kinds = {"QMenu::item", "QComboBox", "QLineEdit", "QSpinBox", "QDoubleSpinBox"}
    kinds |= {"QToolButton", "QPushButton"}
    assert kinds <= disabled, kinds - disabled
