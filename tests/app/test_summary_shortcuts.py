"""View → Summary, Help → Keyboard shortcuts and the ports' tooltips (issue 15)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from conv3dt_studio.nodes.summary import model_summary


def _press(window, key, modifiers=Qt.KeyboardModifier.NoModifier):
    window.activateWindow()
    window.canvas.viewer.setFocus()
    QTest.keyClick(window.canvas.viewer, key, modifiers)


def test_view_summary_shows_the_table_of_the_cli_and_follows_edits(window, qtbot):
    window.action_summary.trigger()
    dialog = window.views.summary_dialog
    qtbot.waitExposed(dialog)
    assert not dialog.isModal()
    expected = model_summary(window.canvas.doc)
    assert dialog.table.rowCount() == len(expected.rows)
    assert dialog.cell(1, 0).startswith("conv3d_transpose (TimeDistributed")
    assert dialog.cell(1, 2) == f"{expected.rows[1].params:,}" == "165"
    assert dialog.cell(1, 3) == "124,416"
    assert "Total params: 165" in dialog.footer.text()
    window.canvas.set_param("conv3d_transpose", "n_filters", 4)
    assert dialog.cell(1, 2) == "220"  # 27·2·4 + 4


def test_the_summary_names_the_problems_of_a_broken_chain(window, qtbot):
    window.canvas.disconnect("input", "y", "time_distributed", "x")
    dialog = window.show_summary()
    qtbot.waitExposed(dialog)
    assert dialog.table.rowCount() == 0
    assert "time_distributed" in dialog.footer.text()


def test_ctrl_i_opens_the_summary(window):
    _press(window, Qt.Key.Key_I, Qt.KeyboardModifier.ControlModifier)
    assert window.views.summary_dialog is not None and window.views.summary_dialog.isVisible()


def test_the_shortcuts_table_lists_every_action_and_the_gestures(window, qtbot):
    _press(window, Qt.Key.Key_F1)
    dialog = window.views.shortcuts_dialog
    assert dialog is not None and dialog.isVisible() and not dialog.isModal()
    rows = {dialog.cell(i, 0): dialog.cell(i, 1) for i in range(dialog.table.rowCount())}
    assert rows["Run"] == "F5" and rows["Undo"] == "Ctrl+Z"
    assert rows["Duplicate"] == "Ctrl+D" and rows["Fit Graph"] == "F"
    assert rows["Keyboard Shortcuts"] == "F1" and rows["Summary"] == "Ctrl+I"
    assert "Tab" in rows["Search node types"] and "Middle-drag" in rows["Pan"]


def test_ports_tell_their_shape_and_layout(make_window):
    from small_graphs import small_doc

    w = make_window(small_doc({"data_format": "channels_last", "n_filters": 4}))
    c = w.canvas
    assert c.port_tip("input", "y") == "y: tensor 2×2×2×8×8×[3] channels_last"
    assert c.port_tip("time_distributed", "y") == "y: tensor 2×2×4×10×10×[4] channels_last"
    assert c.port_tip("time_distributed", "layer") == "layer: layer"
    c.disconnect("input", "y", "time_distributed", "x")
    assert "unknown" in c.port_tip("time_distributed", "x")
