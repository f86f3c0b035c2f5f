"""Training in the editor: Train updates the curve and can be stopped; settings are undoable; trained
weights feed Run, save, load and embed; frozen layers and lda_coeff are visible on the canvas."""

from __future__ import annotations

import numpy as np
import pytest
from small_graphs import teacher_doc

from conv3dt_studio import nodes


def _doc(epochs: int = 3):
    return teacher_doc(epochs)


@pytest.fixture
def trainer(make_window):
    return make_window(_doc())


def _train(w, qtbot, timeout=60_000):
    with qtbot.waitSignal(w.training.train_finished, timeout=timeout) as blocker:
        w.training.action_train.trigger()
    return blocker.args[0]


def test_train_action_updates_the_learning_curve(trainer, qtbot):
    w = trainer
    assert w.findChild(type(w.docks["training_panel"]), "training_panel") is not None
    result = _train(w, qtbot)
    panel = w.training.panel
    xs, ys = panel.loss_curve.getData()
    assert list(xs) == [1, 2, 3]
    assert ys[-1] < ys[0]
    assert len(panel.val_curve.getData()[1]) == 3
    assert "epoch 3: loss" in panel.summary.text()
    assert "Training finished: 3 epochs" in w.log.text()
    assert panel.norms  # store=True in the example: gradient norms per step
    assert panel.hist_item.getData()[0] is not None and len(panel.hist_item.getData()[0]) > 0
    assert result.history["loss"] == list(ys)


def test_second_train_continues_where_the_first_stopped(trainer, qtbot):
    w = trainer
    first = _train(w, qtbot).history["loss"]
    second = _train(w, qtbot).history["loss"]
    straight = nodes.training.train_document(_doc(6), backend="numpy").history["loss"]
    assert first + second == straight
    assert list(w.training.panel.loss_curve.getData()[0]) == [1, 2, 3, 4, 5, 6]


def test_run_uses_the_trained_weights(trainer, qtbot):
    w = trainer
    _train(w, qtbot)
    with qtbot.waitSignal(w.run_finished, timeout=30_000) as blocker:
        w.action_run.trigger()
    expected = nodes.run_document(_doc(), backend="numpy", weights=w.training.weights)
    assert np.array_equal(blocker.args[0].prediction, expected.prediction)


def test_stop_interrupts_training(make_window, qtbot):
    w = make_window(_doc(epochs=500))
    with qtbot.waitSignal(w.training.train_finished, timeout=60_000) as blocker:
        w.training.action_train.trigger()
        qtbot.waitUntil(lambda: len(w.training.panel.epochs) >= 1, timeout=30_000)
        w.action_stop.trigger()
    result = blocker.args[0]
    assert result.stopped and 1 <= len(result.history["loss"]) < 500
    assert w.action_run.isEnabled() and w.training.action_train.isEnabled()


def test_untrainable_graph_says_what_is_missing(window, qtbot):
    with qtbot.waitSignal(window.training.train_failed, timeout=5_000) as blocker:
        window.training.action_train.trigger()
    assert "add a Target node" in blocker.args[0]
    assert "add a Loss node" in blocker.args[0]


def test_training_settings_edit_is_validated_and_undoable(trainer, qtbot):
    w = trainer
    field = w.training.panel.fields["epochs"]
    field.editor.edited.emit(7)
    assert w.canvas.doc.extras["training"]["epochs"] == 7
    assert w.isWindowModified()
    w.training.panel.fields["validation_split"].editor.edited.emit(0.95)
    assert "validation_split" in w.training.panel.fields["validation_split"].error.text()
    assert w.canvas.doc.extras["training"]["validation_split"] == 0.25
    w.action_undo.trigger()
    assert w.canvas.doc.extras["training"]["epochs"] == 3
    w.action_redo.trigger()
    assert w.canvas.doc.extras["training"]["epochs"] == 7


def test_weights_save_load_and_embed(trainer, qtbot, tmp_path, make_window, fake_dialogs):
    w = trainer
    _train(w, qtbot)
    trained = {k: v.copy() for k, v in w.training.weights.items()}
    assert w.training.save_weights(str(tmp_path / "w.npz"))
    w.training.reset_weights()
    assert w.training.weights is None
    assert w.training.load_weights(str(tmp_path / "w.npz"))
    assert all(np.array_equal(trained[k], w.training.weights[k]) for k in trained)
    w.training.action_embed_weights.setChecked(True)
    assert w.save_as() is False  # no path chosen in the dialog: nothing written
    fake_dialogs.save_paths.append(str(tmp_path / "g.json"))
    assert w.save_as()
    other = make_window(path=str(tmp_path / "g.json"))
    assert other.training.action_embed_weights.isChecked()
    assert all(np.array_equal(trained[k], other.training.weights[k]) for k in trained)


def test_weights_of_another_architecture_are_refused(trainer, tmp_path, fake_dialogs):
    np.savez(
        tmp_path / "bad.npz",
        **{
            "conv3d_transpose/kernel": np.zeros((2, 2, 2, 3, 2)),
            "conv3d_transpose/bias": np.zeros(3),
        },
    )
    assert not trainer.training.load_weights(str(tmp_path / "bad.npz"))
    assert "expected a kernel of shape" in fake_dialogs.messages[-1][1]


def test_frozen_layer_and_lda_coeff_are_shown(trainer):
    canvas = trainer.canvas
    assert canvas.link_label("time_distributed") == ""
    canvas.set_param("conv3d_transpose", "update", False)
    assert "frozen" in canvas.shape_text("conv3d_transpose")
    canvas.set_param("conv3d_transpose", "lda_coeff", 0.5)
    assert canvas.link_label("time_distributed") == "∇ × 0.5"
    trainer.action_undo.trigger()
    assert canvas.link_label("time_distributed") == ""


def test_an_architecture_edit_drops_the_trained_weights_with_a_short_message(trainer, qtbot):
    w = trainer
    _train(w, qtbot)
    assert w.training.weights is not None
    w.canvas.set_param("conv3d_transpose", "n_filters", 4)
    assert w.training.weights is None
    line = next(ln for ln in w.log.lines if "Trained weights dropped" in ln)
    assert len(line) < 400
    with qtbot.waitSignal(w.run_finished, timeout=30_000):
        w.action_run.trigger()


def _loss_on_a_second_chain():
    """The teacher-student graph plus a second chain from its Input (Conv3DTranspose 2 ->
    TimeDistributed 2 -> Prediction 6D 2) that the Loss now learns: training gives weights of
    `conv3d_transpose_2` only."""
    doc = _doc(epochs=1)
    doc.add_node("conv3d_transpose", doc.params("conv3d_transpose"), node_id="conv3d_transpose_2")
    doc.add_node("time_distributed", {}, node_id="time_distributed_2")
    doc.add_node("prediction_6d", {}, node_id="prediction_6d_2")
    doc.connect("input", "y", "time_distributed_2", "x")
    doc.connect("conv3d_transpose_2", "layer", "time_distributed_2", "layer")
    doc.connect("time_distributed_2", "y", "prediction_6d_2", "x")
    doc.disconnect("prediction_6d", "y", "loss", "prediction")
    doc.connect("prediction_6d_2", "y", "loss", "prediction")
    return doc


def _chain_weights(doc, prediction_node, shift=0.0):
    from conv3dt_studio.nodes.weights import weights_dict

    layers = nodes.run_document(doc, backend="numpy", prediction_node=prediction_node).graph.layers
    return {k: v + shift for k, v in weights_dict(layers, include_optimizer=False).items()}


def test_weights_trained_on_a_second_chain_survive_an_unrelated_edit(make_window, qtbot):
    w = make_window(_loss_on_a_second_chain())
    _train(w, qtbot)
    assert {k.split("/")[0] for k in w.training.weights} == {"conv3d_transpose_2"}
    w.canvas.set_param("data", "seed", 3)
    assert w.training.weights is not None
    assert "Trained weights dropped" not in w.log.text()


def test_training_one_chain_keeps_the_other_chains_weights(make_window, qtbot):
    doc = _loss_on_a_second_chain()
    first = _chain_weights(doc, "prediction_6d", shift=1.0)
    second = _chain_weights(doc, "prediction_6d_2")
    w = make_window(doc)
    w.training.weights = {**first, **second}
    _train(w, qtbot)
    for key, value in first.items():
        np.testing.assert_array_equal(w.training.weights[key], value)
    assert not np.array_equal(
        w.training.weights["conv3d_transpose_2/kernel"], second["conv3d_transpose_2/kernel"]
    )


@pytest.mark.parametrize(
    ("chains", "accepted"),
    [(("prediction_6d",), True), (("prediction_6d_2",), True), ((), False)],
)
def test_loaded_weights_need_name_only_one_chains_layers(
    make_window, tmp_path, fake_dialogs, chains, accepted
):
    doc = _loss_on_a_second_chain()
    arrays = {"other/kernel": np.zeros(1)}
    for prediction_node in chains:
        arrays.update(_chain_weights(doc, prediction_node))
    np.savez(tmp_path / "w.npz", **arrays)
    w = make_window(doc)
    assert w.training.load_weights(str(tmp_path / "w.npz")) == accepted
    if not accepted:
        assert "has weights for no layer of the graph" in fake_dialogs.messages[-1][1]


def _with_unfinished_branch(doc, loss_on_it: bool):
    """``doc`` plus Input -> TimeDistributed 2 (no layer) -> Prediction 6D 2; with
    ``loss_on_it`` the Loss learns that unfinished chain."""
    doc.add_node("time_distributed", {}, node_id="time_distributed_2")
    doc.add_node("prediction_6d", {}, node_id="prediction_6d_2")
    doc.connect("input", "y", "time_distributed_2", "x")
    doc.connect("time_distributed_2", "y", "prediction_6d_2", "x")
    if loss_on_it:
        doc.disconnect("prediction_6d", "y", "loss", "prediction")
        doc.connect("prediction_6d_2", "y", "loss", "prediction")
    return doc


def test_an_unfinished_branch_elsewhere_does_not_block_training(make_window, qtbot):
    w = make_window(_with_unfinished_branch(_doc(epochs=1), loss_on_it=False))
    assert not w.canvas.report.ok  # the branch stays red
    assert len(_train(w, qtbot).history["loss"]) == 1


def test_an_unfinished_chain_of_the_loss_blocks_training(make_window, qtbot):
    w = make_window(_with_unfinished_branch(_doc(epochs=1), loss_on_it=True))
    with qtbot.waitSignal(w.training.train_failed, timeout=5_000) as blocker:
        assert not w.training.train()
    assert "time_distributed_2" in blocker.args[0] and not w.training.is_training
