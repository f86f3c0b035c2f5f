"""The training panel's curves (validation at the epochs it was measured, log scale only for
positive losses), keys in the non-modal Summary and Shortcuts dialogs, the Data node's file
fields (browse, the Input following a file's shape) and the panels' objectNames."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QLabel,
    QLineEdit,
    QTableWidget,
    QWidget,
)
from small_graphs import teacher_doc

WAIT_MS = 60_000


# ---------------------------------------------------------------------- validation curve
def _add_epochs(panel, validated: set[int], epochs: int = 9) -> None:
    for epoch in range(epochs):
        logs = {"loss": 1.0 / (epoch + 1)}
        if epoch in validated:
            logs["val_loss"] = 2.0 / (epoch + 1)
        panel.add_epoch(epoch, logs)


def test_validation_points_stay_at_the_epochs_they_were_measured(window):
    panel = window.training.panel
    _add_epochs(panel, {0, 1, 2, 6, 7, 8})
    xs, ys = panel.val_curve.getData()
    assert list(xs) == [1, 2, 3, 7, 8, 9]
    assert list(ys) == pytest.approx([2.0 / e for e in (1, 2, 3, 7, 8, 9)])


def test_the_restored_curve_keeps_validation_at_its_epochs(window):
    panel = window.training.panel
    _add_epochs(panel, {0, 1, 2, 6, 7, 8})
    curve = panel.curve()
    assert [e for e, logs in curve if "val_loss" in logs] == [0, 1, 2, 6, 7, 8]
    panel.show_curve(curve)
    assert list(panel.val_curve.getData()[0]) == [1, 2, 3, 7, 8, 9]
    assert panel.curve() == curve


def _set_setting(window, name: str, text: str) -> None:
    editor = window.training.panel.fields[name].editor
    line = editor.findChild(QLineEdit)
    line.setText(text)
    editor.commit_pending()


def test_continuing_without_then_with_validation_draws_it_where_it_was_measured(make_window, qtbot):
    window = make_window(teacher_doc(2))
    for split in ("0.25", "0", "0.25"):
        _set_setting(window, "validation_split", split)
        with qtbot.waitSignal(window.training.train_finished, timeout=WAIT_MS):
            assert window.training.train()
    assert list(window.training.panel.val_curve.getData()[0]) == [1, 2, 5, 6]


# ---------------------------------------------------------------------- log scale
def test_log_scale_is_refused_with_its_reason_for_a_non_positive_loss(window):
    panel = window.training.panel
    panel.add_epoch(0, {"loss": 0.5})
    panel.log_y.setChecked(True)
    assert panel.log_y.isEnabled()
    panel.add_epoch(1, {"loss": -0.25})  # cosine_similarity goes below zero, as in Keras
    assert not panel.log_y.isEnabled() and not panel.log_y.isChecked()
    assert "-0.25" in panel.log_y.toolTip() and "log" in panel.log_y.toolTip()
    assert not panel.curve_plot.ctrl.logYCheck.isChecked()  # the plot is linear again
    panel.log_y.setChecked(True)  # as a script might: refused as a click is
    assert not panel.log_y.isChecked() and not panel.curve_plot.ctrl.logYCheck.isChecked()
    panel.reset()  # a new training: positive losses may come
    assert panel.log_y.isEnabled()


def test_a_non_positive_validation_loss_refuses_the_log_scale_too(window):
    panel = window.training.panel
    panel.add_epoch(0, {"loss": 0.5, "val_loss": 0.0})
    assert not panel.log_y.isEnabled()
    assert "validation" in panel.log_y.toolTip()


# ---------------------------------------------------------------------- keys in the dialogs
@pytest.mark.parametrize("show", ["show_summary", "show_shortcuts"])
def test_the_windows_keys_act_while_a_table_dialog_has_the_focus(window, qtbot, show):
    window.canvas.set_param("conv3d_transpose", "n_filters", 7)
    dialog = getattr(window, show)()
    qtbot.waitExposed(dialog)
    dialog.activateWindow()
    qtbot.waitUntil(dialog.isActiveWindow, timeout=WAIT_MS)
    dialog.table.setFocus()
    ctrl = Qt.KeyboardModifier.ControlModifier
    QTest.keyClick(dialog.table, Qt.Key.Key_Z, ctrl)
    assert window.canvas.doc.params("conv3d_transpose")["n_filters"] == 3
    QTest.keyClick(dialog.table, Qt.Key.Key_Y, ctrl)
    assert window.canvas.doc.params("conv3d_transpose")["n_filters"] == 7
    with qtbot.waitSignal(window.run_finished, timeout=WAIT_MS):
        QTest.keyClick(dialog.table, Qt.Key.Key_F5)


def test_escape_still_closes_a_table_dialog(window, qtbot):
    dialog = window.show_summary()
    qtbot.waitExposed(dialog)
    dialog.activateWindow()
    qtbot.waitUntil(dialog.isActiveWindow, timeout=WAIT_MS)
    dialog.table.setFocus()
    QTest.keyClick(dialog.table, Qt.Key.Key_Escape)
    assert not dialog.isVisible()


# ---------------------------------------------------------------------- the Data node's file
def _data_panel(window):
    window.canvas.select("data")
    return window.properties


def _choose_file(window, fake_dialogs, path) -> None:
    panel = _data_panel(window)
    panel.fields["source"].editor.findChild(QComboBox).setCurrentText("file")
    fake_dialogs.open_paths.append(str(path))
    button = panel.findChild(QAbstractButton, "param_path_browse")
    assert button is not None and button.isEnabled()
    button.click()


def test_browse_sets_the_path_and_the_input_follows_the_file_in_one_edit(
    window, fake_dialogs, tmp_path
):
    path = tmp_path / "samples.npy"
    np.save(path, np.zeros((3, 2, 4, 5, 6, 7), np.float32))
    doc = window.canvas.doc
    _choose_file(window, fake_dialogs, path)
    assert doc.params("data")["path"] == str(path)
    assert list(doc.params("input")["shape"]) == [2, 4, 5, 6, 7]
    assert window.canvas.report.ok
    window.action_undo.trigger()  # one edit: the path and the Input
    assert doc.params("data")["path"] == ""
    assert list(doc.params("input")["shape"]) == [2, 2, 8, 8, 3]
    assert doc.params("data")["source"] == "file"


def test_browse_cancelled_changes_nothing(window, fake_dialogs):
    panel = _data_panel(window)
    panel.fields["source"].editor.findChild(QComboBox).setCurrentText("file")
    index = window.canvas.undo_stack.index()
    panel.findChild(QAbstractButton, "param_path_browse").click()  # no answer: cancelled
    assert window.canvas.undo_stack.index() == index


def test_the_browse_button_is_off_with_the_generator(window):
    button = _data_panel(window).findChild(QAbstractButton, "param_path_browse")
    assert button is not None and not button.isEnabled()


def test_a_typed_file_path_makes_the_input_follow(window, tmp_path):
    path = tmp_path / "samples.npy"
    np.save(path, np.zeros((3, 2, 4, 5, 6, 7), np.float32))
    panel = _data_panel(window)
    panel.fields["source"].editor.findChild(QComboBox).setCurrentText("file")
    line = panel.fields["path"].editor.findChild(QLineEdit)
    line.setText(str(path))
    line.editingFinished.emit()
    assert list(window.canvas.doc.params("input")["shape"]) == [2, 4, 5, 6, 7]
    assert any("input follows its data" in ln for ln in window.log.lines)


def test_an_input_typed_to_another_shape_still_does_not_follow_a_file(window, tmp_path):
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(a, np.zeros((3, 2, 4, 5, 6, 7), np.float32))
    np.save(b, np.zeros((3, 2, 4, 5, 6, 8), np.float32))
    canvas = window.canvas
    canvas.set_params("data", {"source": "file", "path": str(a)}, "file a")
    assert list(canvas.doc.params("input")["shape"]) == [2, 4, 5, 6, 7]  # it followed
    canvas.set_param("input", "shape", [2, 4, 5, 6, 9])  # typed: no longer the data's
    canvas.set_param("data", "path", str(b))
    assert list(canvas.doc.params("input")["shape"]) == [2, 4, 5, 6, 9]


# ---------------------------------------------------------------------- objectNames
EDITING = (QAbstractSpinBox, QComboBox, QLineEdit, QCheckBox)


def _editing_widgets(root: QWidget) -> list[QWidget]:
    """The widgets a user types in or clicks (not a spin box's own line edit)."""
    return [
        w
        for w in root.findChildren(QWidget)
        if isinstance(w, EDITING) and not isinstance(w.parent(), QAbstractSpinBox)
    ]


@pytest.mark.parametrize("node", ["data", "conv3d_transpose", "input"])
def test_every_properties_editor_has_its_own_name(window, node):
    window.canvas.select(node)
    widgets = _editing_widgets(window.properties)
    names = [w.objectName() for w in widgets]
    assert widgets and all(names), [type(w).__name__ for w in widgets if not w.objectName()]
    assert len(set(names)) == len(names)


def test_every_training_editor_has_its_own_name(window):
    widgets = _editing_widgets(window.training.panel)
    names = [w.objectName() for w in widgets]
    assert widgets and all(names) and len(set(names)) == len(names)
    assert all(n.startswith(("training_", "learning_curve")) for n in names)


def test_batch_size_names_one_field_in_the_window(window):
    window.canvas.select("data")
    data_fields = window.findChildren(QWidget, "param_batch_size")
    assert len(data_fields) == 1 and window.properties.isAncestorOf(data_fields[0])
    training = window.findChildren(QWidget, "training_batch_size")
    assert len(training) == 1 and window.training.panel.isAncestorOf(training[0])
    spin = window.findChild(QAbstractSpinBox, "training_batch_size_spin")
    assert spin is not None and spin.value() == window.training.panel.values["batch_size"]


def test_the_summary_dialogs_parts_are_named(window, qtbot):
    dialog = window.show_summary()
    assert dialog.findChild(QLabel, "summary_dialog_heading") is dialog.heading
    assert dialog.findChild(QTableWidget, "summary_dialog_table") is dialog.table
    assert dialog.findChild(QLabel, "summary_dialog_footer") is dialog.footer
