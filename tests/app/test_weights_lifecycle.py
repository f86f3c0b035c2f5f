"""Trained weights are work like any edit: a training belongs to the document it started on (New,
Open and closing ask first; its result never lands in another document), an edit made while
training is checked when it ends, Reset and Load ask before unsaved weights go and mark the
document modified, the shown prediction goes stale when the weights change, and a suffix added to
the name typed in a save dialog never replaces a file unasked."""

from __future__ import annotations

import numpy as np
import pytest
from small_graphs import teacher_doc

from conv3dt_studio import nodes

TIMEOUT_MS = 60_000


def _doc(epochs: int = 2):
    return teacher_doc(epochs)


@pytest.fixture
def trainer(make_window):
    return make_window(_doc())


@pytest.fixture
def long_trainer(make_window):
    """A window whose training runs until it is stopped (or the test ends)."""
    return make_window(_doc(epochs=5000))


def _train(w, qtbot):
    with qtbot.waitSignal(w.training.train_finished, timeout=TIMEOUT_MS):
        assert w.training.train()


def _start_training(w, qtbot):
    assert w.training.train()
    qtbot.waitUntil(lambda: len(w.training.panel.epochs) >= 1, timeout=TIMEOUT_MS)


def _stop_training(w, qtbot):
    if w.training.is_training:
        with qtbot.waitSignal(w.training.train_finished, timeout=TIMEOUT_MS):
            w.stop()


def _run(w, qtbot):
    with qtbot.waitSignal(w.run_finished, timeout=TIMEOUT_MS):
        assert w.run()


# ---------------------------------------------------------------------- (3) New / Open
def test_new_during_a_training_asks_and_cancel_keeps_it_training(long_trainer, qtbot, fake_dialogs):
    w = long_trainer
    doc = w.canvas.doc
    _start_training(w, qtbot)
    fake_dialogs.question_answers = [False]
    w.files.new_document()
    assert any("training is running" in q for q in fake_dialogs.questions)
    assert w.canvas.doc is doc and w.training.is_training
    assert fake_dialogs.save_changes_asked == 0
    _stop_training(w, qtbot)
    assert w.training.weights is not None  # the training's weights are this document's


def test_new_during_a_training_never_gives_its_weights_to_the_new_document(
    long_trainer, qtbot, fake_dialogs
):
    w = long_trainer
    _start_training(w, qtbot)
    fake_dialogs.save_changes_answer = "discard"
    w.files.new_document()
    assert fake_dialogs.save_changes_weights == [True]  # its weights could have been kept
    assert not w.training.is_training
    qtbot.wait(200)  # nothing more arrives
    assert len(w.canvas.doc.nodes) == 0
    assert w.training.weights is None
    assert not w.isWindowModified()


def test_open_during_a_training_can_keep_its_weights_first(
    long_trainer, qtbot, fake_dialogs, tmp_path
):
    w = long_trainer
    _start_training(w, qtbot)
    other = tmp_path / "other.json"
    nodes.default_document().save(other)
    fake_dialogs.open_paths = [str(other)]
    fake_dialogs.save_changes_answer = "npz"
    fake_dialogs.save_paths = [str(tmp_path / "trained.npz")]
    w.files.open_dialog()
    assert w.path == str(other)
    assert set(np.load(tmp_path / "trained.npz")) >= {"conv3d_transpose/kernel"}
    assert w.training.weights is None


def test_a_result_arriving_for_a_closed_document_is_discarded(long_trainer, qtbot, tmp_path):
    w = long_trainer
    _start_training(w, qtbot)
    other = tmp_path / "other.json"
    nodes.default_document().save(other)
    with qtbot.waitSignal(w.training.train_finished, timeout=TIMEOUT_MS):
        assert w.open_path(other)  # the window's API: no question, the training stops
    assert w.training.weights is None
    assert not w.isWindowModified()
    assert "its graph was closed" in w.log.text()


# ---------------------------------------------------------------------- (4) closing
def test_closing_during_a_training_asks_and_cancel_keeps_everything(
    long_trainer, qtbot, fake_dialogs
):
    w = long_trainer
    _start_training(w, qtbot)
    fake_dialogs.save_changes_answer = "cancel"
    assert not w.close()
    assert fake_dialogs.save_changes_weights == [True]  # as after a stopped training
    assert w.isVisible()
    assert not w.training.is_training  # stopped cleanly, its weights kept
    assert w.training.has_unsaved_weights() and w.isWindowModified()


def test_closing_during_a_training_can_save_its_weights(
    long_trainer, qtbot, fake_dialogs, tmp_path
):
    w = long_trainer
    _start_training(w, qtbot)
    fake_dialogs.save_changes_answer = "npz"
    fake_dialogs.save_paths = [str(tmp_path / "trained.npz")]
    assert w.close()
    assert not w.isVisible()
    assert (tmp_path / "trained.npz").exists()


def test_closing_during_a_training_that_the_user_keeps_does_not_close(
    long_trainer, qtbot, fake_dialogs
):
    w = long_trainer
    _start_training(w, qtbot)
    fake_dialogs.question_answers = [False]
    assert not w.close()
    assert w.isVisible() and w.training.is_training
    _stop_training(w, qtbot)


# ---------------------------------------------------------------------- (5) edit while training
def _edit_the_architecture_while_training(w, qtbot) -> None:
    """n_filters 3 -> 4 during a training, then Stop: the trained weights no longer fit."""
    _start_training(w, qtbot)
    w.canvas.set_param("conv3d_transpose", "n_filters", 4)
    _stop_training(w, qtbot)
    assert w.training.weights is None


def test_an_edit_made_while_training_drops_the_weights_when_it_ends(long_trainer, qtbot):
    w = long_trainer
    _edit_the_architecture_while_training(w, qtbot)
    assert "Trained weights dropped: they no longer fit the graph" in w.log.text()
    _run(w, qtbot)
    assert "Run failed" not in w.log.text()


def test_undoing_an_edit_made_while_training_brings_the_weights_back(long_trainer, qtbot):
    w = long_trainer
    _edit_the_architecture_while_training(w, qtbot)
    w.action_undo.trigger()
    assert w.training.weights["conv3d_transpose/kernel"].shape[3] == 3
    assert w.training.epochs_done == len(w.training.panel.epochs) >= 1
    assert w.training.has_unsaved_weights()


def test_an_edit_while_training_that_keeps_the_architecture_keeps_the_weights(long_trainer, qtbot):
    w = long_trainer
    _start_training(w, qtbot)
    w.canvas.set_param("conv3d_transpose", "lda_coeff", 0.5)
    _stop_training(w, qtbot)
    assert w.training.weights is not None
    assert "Trained weights dropped" not in w.log.text()


# ---------------------------------------------------------------------- (6) reset and load
def test_reset_weights_asks_before_discarding_unsaved_weights(trainer, qtbot, fake_dialogs):
    w = trainer
    _train(w, qtbot)
    fake_dialogs.question_answers = [False]
    w.training.action_reset_weights.trigger()
    assert "not saved" in fake_dialogs.questions[-1]
    assert w.training.weights is not None and w.isWindowModified()
    w.training.action_reset_weights.trigger()  # this time: discard them
    assert w.training.weights is None
    assert w.isWindowModified()  # discarding weights is a change of the document
    assert w.training.epochs_done == 0 and w.training.panel.epochs == []


def test_resetting_saved_weights_asks_nothing_but_is_a_change(
    trainer, qtbot, fake_dialogs, tmp_path
):
    w = trainer
    _train(w, qtbot)
    assert w.training.save_weights(str(tmp_path / "w.npz"))
    assert not w.isWindowModified()
    w.training.action_reset_weights.trigger()
    assert fake_dialogs.questions == []
    assert w.training.weights is None and w.isWindowModified()
    fake_dialogs.save_paths = [str(tmp_path / "g.json")]
    assert w.save()
    assert not w.isWindowModified()


def test_load_weights_asks_before_replacing_unsaved_weights(trainer, qtbot, fake_dialogs, tmp_path):
    w = trainer
    _train(w, qtbot)
    path = str(tmp_path / "w.npz")
    assert w.training.save_weights(path)
    _train(w, qtbot)  # newer, unsaved
    newer = w.training.weights
    fake_dialogs.question_answers = [False]
    fake_dialogs.open_paths = [path]
    w.training.action_load_weights.trigger()
    assert "not saved" in fake_dialogs.questions[-1]
    assert w.training.weights is newer
    assert w.training.epochs_done == len(w.training.panel.epochs) == 4
    assert w.training.load_weights(path)  # this time: replace them
    assert w.training.weights is not newer
    assert w.isWindowModified()  # replacing weights is a change of the document
    assert w.training.epochs_done == 0 and w.training.panel.epochs == []


def test_reset_and_load_wait_for_a_running_training(long_trainer, qtbot, tmp_path):
    w = long_trainer
    t = w.training
    np.savez(tmp_path / "w.npz", **_seeded_weights())
    _start_training(w, qtbot)
    assert not t.action_load_weights.isEnabled() and not t.action_reset_weights.isEnabled()
    assert not t.load_weights(str(tmp_path / "w.npz"))  # the training would replace them
    assert not t.reset_weights()
    _stop_training(w, qtbot)
    assert t.action_load_weights.isEnabled() and t.action_reset_weights.isEnabled()
    assert t.weights is not None and t.has_unsaved_weights()


def _seeded_weights():
    from conv3dt_studio.nodes.weights import weights_dict

    layers = nodes.run_document(_doc(), backend="numpy").graph.layers
    return weights_dict(layers, include_optimizer=False)


# ---------------------------------------------------------------------- (13) stale prediction
@pytest.mark.parametrize("change", ["train", "reset", "load"])
def test_a_change_of_weights_marks_the_shown_prediction_stale(trainer, qtbot, tmp_path, change):
    w = trainer
    path = str(tmp_path / "w.npz")
    if change != "train":
        _train(w, qtbot)
        assert w.training.save_weights(path)
    _run(w, qtbot)
    assert not w.inspector.stale
    if change == "train":
        _train(w, qtbot)
    elif change == "reset":
        assert w.training.reset_weights()
    else:
        assert w.training.load_weights(path)
    assert w.inspector.stale
    assert "Stale" in w.inspector.info_text()


# ---------------------------------------------------------------------- (10) added suffixes
@pytest.mark.parametrize(
    ("name", "save"),
    [
        ("model.json", lambda w: w.save_as()),
        ("graph.json", lambda w: w.files.export_json()),
        ("snippet.png", lambda w: w.files.export_snippet_dialog()),
    ],
)
def test_a_suffix_added_to_the_name_typed_never_replaces_a_file_unasked(
    window, tmp_path, fake_dialogs, name, save
):
    precious = tmp_path / name
    precious.write_bytes(b"PRECIOUS")
    typed = str(tmp_path / precious.stem)  # the dialog saw no file of that name
    fake_dialogs.save_paths = [typed]
    fake_dialogs.question_answers = [False]
    assert not save(window)
    assert name in fake_dialogs.questions[-1]
    assert precious.read_bytes() == b"PRECIOUS"
    fake_dialogs.save_paths = [typed]
    fake_dialogs.question_answers = [True]
    assert save(window)
    assert precious.read_bytes() != b"PRECIOUS"


def test_a_new_file_with_an_added_suffix_is_written_without_a_question(
    window, tmp_path, fake_dialogs
):
    fake_dialogs.save_paths = [str(tmp_path / "model")]
    assert window.save_as()
    assert (tmp_path / "model.json").exists() and fake_dialogs.questions == []
    assert window.path == str(tmp_path / "model.json")


def test_a_run_of_the_previous_document_is_not_shown_on_a_new_one(window, qtbot, monkeypatch):
    """New while a run ends (its last batch done as Stop is asked): its prediction belongs to
    the previous document and is neither shown in the inspector nor put on the new one."""
    import threading

    from conv3dt_studio.app.editor import run_controller
    from conv3dt_studio.app.editor.jobs import JobControl

    gate = threading.Event()
    prediction_job = run_controller.prediction_job

    def held(*args, **kwargs):
        job = prediction_job(*args, **kwargs)
        unstoppable = JobControl(lambda *_: None, lambda *_: None, lambda: False)
        return lambda control: gate.wait(30) and job(unstoppable)

    monkeypatch.setattr(run_controller, "prediction_job", held)
    assert window.runs.run()
    window.files.new_document()
    assert window.canvas.doc.nodes == {} or "conv3d_transpose" not in window.canvas.doc.nodes
    gate.set()
    qtbot.waitUntil(lambda: not window.runs.is_running, timeout=TIMEOUT_MS)
    assert window.inspector.result is None
    assert "A run of the previous document ended" in window.log.text()
