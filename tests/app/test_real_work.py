"""The editor for real work (issue 15): one undo stack whose keys work on the canvas, trained
weights as unsaved work that undo brings back, the teacher seed, Stop within a run, the
inspector's layouts, stale results, the log, the Undo button, captions, drops and titles,
copy/paste, context menus and inspecting any tensor."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from small_graphs import small_doc

from conv3dt_studio import nodes
from conv3dt_studio.nodes.examples import teacher_student

CTRL = Qt.KeyboardModifier.ControlModifier
RUN_TIMEOUT_MS = 60_000


def keys(window, key, modifiers=CTRL):
    """A real key press on the focused canvas of the active window."""
    viewer = window.canvas.viewer
    window.activateWindow()
    QApplication.setActiveWindow(window)
    viewer.setFocus()
    QTest.keyClick(viewer, key, modifiers)


def _train(w, qtbot):
    with qtbot.waitSignal(w.training.train_finished, timeout=RUN_TIMEOUT_MS):
        assert w.training.train()


@pytest.fixture
def trainer(make_window):
    doc = teacher_student()
    doc.extras["training"]["epochs"] = 2
    return make_window(doc)


# ---------------------------------------------------------------------- 1 one undo stack
def test_ctrl_z_and_ctrl_y_on_the_focused_canvas_undo_and_redo(window):
    c = window.canvas
    c.set_param("conv3d_transpose", "n_filters", 5)
    keys(window, Qt.Key.Key_Z)
    assert c.doc.params("conv3d_transpose")["n_filters"] == 3
    keys(window, Qt.Key.Key_Y)
    assert c.doc.params("conv3d_transpose")["n_filters"] == 5


def test_ctrl_shift_z_redoes_too_and_both_redo_keys_are_bound(window):
    """The README promises Ctrl+Y and Ctrl+Shift+Z; the platform's standard Redo binding alone
    is only one of them (which one depends on the platform)."""
    from PySide6.QtGui import QAction, QKeySequence

    redo = window.findChild(QAction, "action_redo")
    assert {QKeySequence("Ctrl+Y"), QKeySequence("Ctrl+Shift+Z")} <= set(redo.shortcuts())
    c = window.canvas
    c.set_param("conv3d_transpose", "n_filters", 5)
    keys(window, Qt.Key.Key_Z)
    assert c.doc.params("conv3d_transpose")["n_filters"] == 3
    keys(window, Qt.Key.Key_Z, CTRL | Qt.KeyboardModifier.ShiftModifier)
    assert c.doc.params("conv3d_transpose")["n_filters"] == 5


def test_nodegraphqt_has_no_undo_action_and_no_menu_of_its_own(window):
    viewer = window.canvas.viewer
    assert viewer.qaction_for_undo() is None and viewer.qaction_for_redo() is None
    assert viewer.context_menus()["graph"].actions() == []


# ---------------------------------------------------------------------- 2 trained weights
def test_trained_weights_are_unsaved_work(trainer, qtbot, fake_dialogs):
    w = trainer
    assert not w.isWindowModified()
    _train(w, qtbot)
    assert w.is_modified() and w.isWindowModified()
    fake_dialogs.save_changes_answer = "cancel"
    w.files.new_document()
    assert fake_dialogs.save_changes_weights == [True]
    assert w.training.weights is not None  # cancelled: nothing lost


def test_the_prompt_saves_the_weights_as_npz(trainer, qtbot, fake_dialogs, tmp_path):
    w = trainer
    _train(w, qtbot)
    fake_dialogs.save_changes_answer = "npz"
    fake_dialogs.save_paths = [str(tmp_path / "trained.npz")]
    w.files.new_document()
    assert (tmp_path / "trained.npz").exists()
    assert w.training.weights is None  # the new document has none


def test_the_prompt_saves_the_graph_with_the_weights_embedded(
    trainer, qtbot, fake_dialogs, tmp_path
):
    w = trainer
    _train(w, qtbot)
    fake_dialogs.save_changes_answer = "embed"
    fake_dialogs.save_paths = [str(tmp_path / "graph.json")]
    w.files.new_document()
    assert nodes.load(tmp_path / "graph.json").extras.get("weights")


def test_undoing_the_edit_that_dropped_the_weights_restores_them(trainer, qtbot):
    w = trainer
    _train(w, qtbot)
    trained = w.training.weights
    curve = list(w.training.panel.losses)
    w.canvas.set_param("conv3d_transpose", "n_filters", 2)
    assert w.training.weights is None
    keys(w, Qt.Key.Key_Z)
    assert w.training.weights is trained
    assert w.training.panel.losses == curve and w.training.epochs_done == 2
    assert w.isWindowModified()


def test_opening_another_document_does_not_blame_the_weights(trainer, qtbot, fake_dialogs):
    w = trainer
    _train(w, qtbot)
    fake_dialogs.save_changes_answer = "discard"
    w.files.new_document()
    assert "no longer fit" not in w.log.text()
    assert not w.isWindowModified()


# ---------------------------------------------------------------------- 3 teacher seed
def test_choosing_a_teacher_gives_it_a_seed_other_than_the_graphs(make_window):
    w = make_window(teacher_student())
    target = w.canvas.doc.ids_with_role(nodes.TARGET)[0]
    w.canvas.set_param(target, "source", "generator")
    w.canvas.set_param(target, "seed", 0)
    w.canvas.select(target)
    assert w.properties.edit("source", "teacher") is None
    assert w.canvas.doc.params(target)["seed"] == 1
    assert w.properties.fields["seed"].isEnabled()
    assert not w.properties.fields["distribution"].isEnabled()


def test_a_first_epoch_loss_of_zero_is_a_warning(trainer, qtbot):
    w = trainer
    w.training._on_report("epoch_end", (0, {"loss": 0.0}))
    assert "first epoch's loss is 0" in w.log.text()


# ---------------------------------------------------------------------- 4 stop
def test_stop_cancels_a_single_batch_run_between_samples(make_window, qtbot):
    shape = [4, 2, 32, 32, 16]
    w = make_window(small_doc(batch=128, sample_shape=shape))
    w.canvas.set_param("input", "shape", shape)
    seen = []
    w.activity.progress.connect(lambda f, _m: (seen.append(f), w.stop()))
    with qtbot.waitSignal(w.run_stopped, timeout=RUN_TIMEOUT_MS):
        assert w.run()
    assert seen and max(seen) < 1.0


def test_a_stoppable_prediction_reports_growing_progress():
    seen = []
    nodes.run_document(
        small_doc(batch=6),
        backend="numpy",
        should_stop=lambda: False,
        progress=lambda f, _m: seen.append(f),
    )
    assert len(seen) >= 2 and seen == sorted(seen) and seen[-1] == 1.0


# ---------------------------------------------------------------------- 5 inspector layouts
def test_the_inspector_slices_each_tensor_with_its_own_layout(make_window, qtbot):
    doc = small_doc()
    w = make_window(doc)
    c = w.canvas
    c.set_param("conv3d_transpose", "data_format", "channels_last")
    c.set_param("input", "shape", [2, 8, 8, 3, 2])
    c.set_param("data", "sample_shape", [2, 8, 8, 3, 2])
    with qtbot.waitSignal(w.run_finished, timeout=RUN_TIMEOUT_MS):
        assert w.run()
    insp = w.inspector
    assert not insp.channels_first and not insp.input_channels_first
    assert insp.filter.maximum() == 2 and insp.in_channel.maximum() == 1
    assert "channels_last" in insp.info_text()


# ---------------------------------------------------------------------- 8 stale
def test_an_edit_marks_the_shown_prediction_stale(window, qtbot):
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS):
        assert window.run()
    assert "Stale" not in window.inspector.info_text()
    window.canvas.set_param("conv3d_transpose", "n_filters", 4)
    assert "Stale" in window.inspector.info_text()


# ---------------------------------------------------------------------- 9 log
def test_the_log_groups_epochs_counts_repeats_and_filters(window):
    log = window.log
    n = len(log.lines)
    for e in range(5):
        window.activity.log(f"epoch {e + 1}: loss 1", group="epoch")
    assert len(log.lines) == n + 1 and "epoch 5" in log.lines[-1]
    window.activity.log("same", "warning")
    window.activity.log("same", "warning")
    assert log.lines[-1].endswith("same (× 2)")
    log.level_filter.setCurrentText("Warnings and errors")
    assert all("[warning]" in line or "[error]" in line for line in log.shown_lines())


def test_a_fresh_unwired_node_is_not_a_warning_in_the_log(window):
    n = len(window.log.lines)
    window.canvas.add_node("conv3d_transpose", (0.0, 0.0))
    assert not any("[warning]" in line for line in window.log.lines[n:])


# ---------------------------------------------------------------------- 10 undo button
def test_the_undo_button_keeps_its_text(window):
    window.canvas.set_param("conv3d_transpose", "n_filters", 5)
    assert window.action_undo.text() == "&Undo"
    assert "conv3d_transpose.n_filters" in window.action_undo.toolTip()


# ---------------------------------------------------------------------- 11 captions
def test_captions_show_what_differs_from_the_defaults(window):
    c = window.canvas
    c.set_param("conv3d_transpose", "stride", [2, 2, 2])
    c.set_param("conv3d_transpose", "activation", "tanh")
    text = c.shape_text("conv3d_transpose")
    assert "stride 2×2×2" in text and "activation tanh" in text


# ---------------------------------------------------------------------- 12 drops and titles
def test_an_opened_snippet_shows_its_file_name(window, make_window, tmp_path):
    path = str(tmp_path / "part.png")
    assert window.export_snippet(path)
    other = make_window(path=path)
    assert other.windowTitle().startswith("part.png")
    assert other.path is None  # Save asks for a .json


def test_file_dialogs_start_in_the_last_folder_used(tmp_path):
    from conv3dt_studio.app.editor.dialogs import Dialogs

    dialogs = Dialogs()
    assert dialogs.folder != "" and dialogs._used(str(tmp_path / "g.json"))
    assert dialogs.folder == str(tmp_path)


def test_new_clears_the_inspector_and_training_panel(trainer, qtbot, fake_dialogs):
    w = trainer
    _train(w, qtbot)
    with qtbot.waitSignal(w.run_finished, timeout=RUN_TIMEOUT_MS):
        assert w.run()
    fake_dialogs.save_changes_answer = "discard"
    w.files.new_document()
    assert w.inspector.result is None and w.inspector.slice.maximum() == 0
    assert "epoch" not in w.training.panel.summary.text()


# ---------------------------------------------------------------------- copy, paste, menus
def test_copy_paste_cut_and_duplicate_with_keys(window):
    c = window.canvas
    c.select_many(["conv3d_transpose", "time_distributed"])
    keys(window, Qt.Key.Key_C)
    assert "conv3dt-studio/graph" in QGuiApplication.clipboard().text()
    keys(window, Qt.Key.Key_V)
    pasted = c.selected_ids()
    assert len(pasted) == 2 and all(
        p not in ("conv3d_transpose", "time_distributed") for p in pasted
    )
    assert any(ln.src[0] in pasted and ln.dst[0] in pasted for ln in c.doc.links)
    keys(window, Qt.Key.Key_D)
    assert len(c.doc.nodes) == 9
    keys(window, Qt.Key.Key_X)
    assert len(c.doc.nodes) == 7


def test_the_clipboard_pastes_into_another_window(window, make_window):
    window.canvas.select("conv3d_transpose")
    window.edit_actions.copy.trigger()
    other = make_window(nodes.GraphDocument())
    keys(other, Qt.Key.Key_V)
    assert [n.type for n in other.canvas.doc.nodes.values()] == ["conv3d_transpose"]


def _at(canvas, node_id):
    rect = canvas.views[node_id].view.sceneBoundingRect()
    return rect.center().x(), rect.center().y()


def test_the_node_menu_freezes_duplicates_and_deletes(window):
    c, menus = window.canvas, window.canvas_menus

    def action(node_id, name):
        return next(a for a in menus.menu_at(_at(c, node_id)).actions() if a.objectName() == name)

    action("conv3d_transpose", "ctx_freeze").trigger()
    assert c.doc.params("conv3d_transpose")["update"] is False
    action("conv3d_transpose", "ctx_duplicate").trigger()
    assert "conv3d_transpose_2" in c.doc.nodes
    action("conv3d_transpose_2", "ctx_delete").trigger()
    assert "conv3d_transpose_2" not in c.doc.nodes


def test_the_canvas_menu_adds_a_node_where_clicked(window):
    menu = window.canvas_menus.menu_at((900.0, 900.0))
    add = menu.findChild(type(menu), "menu_add_node")
    next(a for a in add.actions() if a.text() == "Loss").trigger()
    x, y = _at(window.canvas, "loss")
    assert abs(x - 900) < 2 and abs(y - 900) < 2


def test_the_link_menu_disconnects(window):
    c = window.canvas
    a, b = _at(c, "input"), _at(c, "time_distributed")
    link = next(ln for ln in c.doc.links if ln.dst == ("time_distributed", "x"))
    pipe = c.views["time_distributed"].inputs()["x"].view.connected_pipes[0]
    mid = pipe.path().pointAtPercent(0.5)
    assert a != b
    menu = window.canvas_menus.menu_at((mid.x(), mid.y()))
    next(x for x in menu.actions() if x.objectName() == "ctx_disconnect").trigger()
    assert link not in c.doc.links


def test_inspect_any_tensor_without_a_prediction_node(window, qtbot):
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        window.canvas_menus.inspect_requested.emit("input")
    result = blocker.args[0]
    assert np.array_equal(result.prediction, result.input)
    assert (
        "prediction_6d_2" not in window.canvas.doc.nodes and "probe" not in window.canvas.doc.nodes
    )


def test_a_node_title_is_not_renamed_in_place_by_a_double_click(window):
    """Titles follow the node ids (the layers' names, under which weights are saved): a double
    click on one does not start an edit that would only change the text on screen."""
    c = window.canvas
    window.activateWindow()
    QApplication.setActiveWindow(window)
    c.viewer.setFocus()
    title = c.views["conv3d_transpose"].view.text_item
    centre = title.mapToScene(title.boundingRect().center())
    QTest.mouseDClick(
        c.viewer.viewport(), Qt.MouseButton.LeftButton, pos=c.viewer.mapFromScene(centre)
    )
    assert title.textInteractionFlags() == Qt.TextInteractionFlag.NoTextInteraction
    assert "edit" not in title.toolTip()
    QTest.keyClicks(c.viewer, "xyz")
    QTest.keyClick(c.viewer, Qt.Key.Key_Return)
    assert title.toPlainText() == "Conv3DTranspose" and "conv3d_transpose" in c.doc.nodes
