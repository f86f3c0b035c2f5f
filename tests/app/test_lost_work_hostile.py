"""Work the hostile review found lost (FINDINGS #1, #2, #10, #11, #13, #15): trained weights in the
autosave and back after a crash, embedded weights kept while the graph cannot use them, Save As in
the format its suffix names, the finished epochs of a diverging training, one layer's edit keeping
the other layers' weights, and files too large to read."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from small_graphs import SMALL_SAMPLE, small_doc, teacher_doc

from conv3dt_studio import nodes
from conv3dt_studio.app.cli import main
from conv3dt_studio.app.editor import autosave
from conv3dt_studio.nodes.snippet import PNG_SIGNATURE
from conv3dt_studio.nodes.training import TrainingInterrupted, train_document
from conv3dt_studio.nodes.weights import decode_weights, encode_weights, weights_dict

TIMEOUT_MS = 60_000


def _train(w, qtbot):
    with qtbot.waitSignal(w.training.train_finished, timeout=TIMEOUT_MS):
        assert w.training.train()


def _autosaves(data_dir):
    return sorted(data_dir.glob("autosave-*.json"))


def _one_autosave(qtbot, data_dir) -> dict:
    qtbot.waitUntil(lambda: len(_autosaves(data_dir)) == 1, timeout=5_000)
    return json.loads(_autosaves(data_dir)[0].read_text())


def _same(a: dict, b: dict) -> bool:
    return sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.fixture
def trainer(make_window):
    return make_window(teacher_doc(2))


# ---------------------------------------------------------------------- (1) weights in the autosave
def test_a_training_alone_autosaves_the_trained_weights(trainer, qtbot, data_dir):
    _train(trainer, qtbot)
    saved = _one_autosave(qtbot, data_dir)  # no autosave at all before the fix
    assert _same(decode_weights(saved["document"]["weights"]), trainer.training.weights)
    assert saved["trained"]["epochs"] == 2 and saved["trained"]["unsaved"] is True
    assert len(saved["trained"]["curve"]) == 2


def test_after_a_crash_recovery_gives_the_trained_weights_back(
    trainer, make_window, qtbot, data_dir, fake_dialogs
):
    _train(trainer, qtbot)
    _one_autosave(qtbot, data_dir)
    weights, curve = trainer.training.weights, trainer.training.panel.curve()
    trainer.autosaver.abandon()  # as if the process had died
    restored = make_window(offer_recovery=True)
    t = restored.training
    assert t.weights is not None and _same(t.weights, weights)
    assert t.epochs_done == 2 and t.panel.curve() == curve
    assert t.has_unsaved_weights() and restored.isWindowModified()
    assert restored.files.ok_to_replace()  # the question offers to keep them
    assert fake_dialogs.save_changes_weights == [True]


def test_recovery_restores_weights_saved_as_npz_as_saved_and_not_embedded(
    trainer, make_window, qtbot, data_dir, tmp_path
):
    _train(trainer, qtbot)
    assert trainer.training.save_weights(str(tmp_path / "w.npz"))
    trainer.canvas.move_node("data", (-40.0, 10.0))  # an edit: the graph is modified
    assert "weights" in _one_autosave(qtbot, data_dir)["document"]
    trainer.autosaver.abandon()
    t = make_window(offer_recovery=True).training
    assert t.weights is not None and not t.has_unsaved_weights()
    assert not t.action_embed_weights.isChecked()  # Save writes the graph as the user chose


def test_a_damaged_trained_state_makes_the_autosave_unreadable_and_kept(data_dir):
    data_dir.mkdir(parents=True, exist_ok=True)
    file = data_dir / "autosave-damaged.json"
    fields = {"format": autosave.FORMAT, "pid": os.getpid(), "token": "gone", "time": 0.0}
    trained = {"epochs": -1, "unsaved": True, "embed": False, "curve": []}
    file.write_text(json.dumps({**fields, "path": None, "document": {}, "trained": trained}))
    found, unreadable = autosave.scan()
    assert found == [] and [u.file for u in unreadable] == [file]
    assert "field `trained` is damaged (`epochs` must be a whole number" in unreadable[0].reason


def test_an_autosave_too_large_to_read_is_reported_and_kept(data_dir):
    from conv3dt_studio.nodes.graph_document import MAX_GRAPH_FILE_BYTES

    data_dir.mkdir(parents=True, exist_ok=True)
    file = data_dir / "autosave-huge.json"
    with open(file, "wb") as fh:
        fh.truncate(MAX_GRAPH_FILE_BYTES + 1)  # sparse
    found, unreadable = autosave.scan()
    assert found == [] and [u.file for u in unreadable] == [file]
    assert "is too large" in unreadable[0].reason and file.exists()


# ---------------------------------------------------------------------- (2) pending embedded weights
def _embedded(doc, shift: float = 1.0) -> dict:
    """Weights for ``doc``'s layers other than the seeded ones, as a graph embeds them."""
    layers = nodes.run_document(doc, backend="numpy").graph.layers
    arrays = {k: v + shift for k, v in weights_dict(layers, include_optimizer=False).items()}
    return encode_weights(arrays)


def _shared_graph(tmp_path):
    """A colleague's graph with trained weights embedded, its Data node reading a file that was
    not sent; and a file of the same shape to point it at."""
    doc = small_doc()
    doc.extras["weights"] = _embedded(doc)
    doc.set_param("data", "source", "file")
    doc.set_param("data", "path", str(tmp_path / "their_data.npy"))
    path = tmp_path / "shared.json"
    doc.save(path)
    mine = tmp_path / "my_data.npy"
    np.save(mine, np.ones((2, *SMALL_SAMPLE), np.float32))
    return path, mine


def test_embedded_weights_of_a_graph_that_cannot_run_are_saved_back(make_window, tmp_path):
    path, _mine = _shared_graph(tmp_path)
    embedded = json.loads(path.read_text())["weights"]
    w = make_window(path=str(path))
    assert w.training.weights is None
    w.canvas.move_node("data", (10.0, 10.0))
    assert w.save()
    assert json.loads(path.read_text())["weights"] == embedded  # dropped before the fix
    assert "Embedded weights not used yet: the graph cannot run" in w.log.text()


def test_embedded_weights_are_used_once_the_graph_can_run(make_window, tmp_path, qtbot):
    path, mine = _shared_graph(tmp_path)
    embedded = decode_weights(json.loads(path.read_text())["weights"])
    w = make_window(path=str(path))
    w.canvas.set_param("data", "path", str(mine))
    assert w.training.weights is not None and _same(w.training.weights, embedded)
    assert "now that it can run" in w.log.text()
    assert w.save()
    assert _same(decode_weights(json.loads(path.read_text())["weights"]), embedded)
    with qtbot.waitSignal(w.run_finished, timeout=TIMEOUT_MS):
        assert w.run()
    assert "with trained weights" in w.log.text()


def test_reset_weights_removes_pending_embedded_weights(make_window, tmp_path):
    path, _mine = _shared_graph(tmp_path)
    w = make_window(path=str(path))
    assert w.training.reset_weights()
    assert w.isWindowModified()
    assert w.save()
    assert "weights" not in json.loads(path.read_text())


# ---------------------------------------------------------------------- (15) one layer's edit
def _two_layers():
    """Data -> Input -> TimeDistributed(c1) -> TimeDistributed(c2) -> Prediction 6D, with
    embedded weights for both layers."""
    doc = small_doc()
    doc.add_node("conv3d_transpose", {"n_filters": 2}, node_id="c2")
    doc.add_node("time_distributed", {}, node_id="t2")
    doc.disconnect("time_distributed", "y", "prediction_6d", "x")
    doc.connect("time_distributed", "y", "t2", "x")
    doc.connect("c2", "layer", "t2", "layer")
    doc.connect("t2", "y", "prediction_6d", "x")
    doc.extras["weights"] = _embedded(doc)
    return doc


def _layers(weights) -> set[str]:
    return {key.split("/")[0] for key in weights or {}}


def test_editing_one_layer_keeps_the_other_layers_weights(make_window, tmp_path, qtbot):
    w = make_window(_two_layers())
    before = dict(w.training.weights)
    assert _layers(before) == {"conv3d_transpose", "c2"}
    w.canvas.set_param("c2", "n_filters", 4)  # a new head
    assert _layers(w.training.weights) == {"conv3d_transpose"}  # None before the fix
    assert _same(w.training.weights, {k: v for k, v in before.items() if k.startswith("conv3d")})
    line = next(ln for ln in w.log.lines if "dropped" in ln)
    assert "layer `c2` dropped" in line and "the other layers keep theirs" in line
    w.dialogs.save_paths = [str(tmp_path / "g.json")]
    assert w.save()
    assert _layers(decode_weights(json.loads((tmp_path / "g.json").read_text())["weights"])) == {
        "conv3d_transpose"
    }
    with qtbot.waitSignal(w.run_finished, timeout=TIMEOUT_MS):
        assert w.run()
    w.action_undo.trigger()
    assert _same(w.training.weights, before)


def test_after_every_layers_weights_are_dropped_run_uses_seeded_ones(make_window, qtbot):
    w = make_window(_two_layers())
    w.canvas.set_param("conv3d_transpose", "n_filters", 5)  # c2's input channels change too
    assert w.training.weights is None
    with qtbot.waitSignal(w.run_finished, timeout=TIMEOUT_MS):
        assert w.run()  # failed before: the embedded weights no longer fit
    assert "Run failed" not in w.log.text() and "with seeded weights started" in w.log.text()


# ---------------------------------------------------------------------- (10) Save As formats
def test_save_as_png_writes_a_snippet_that_opens_again(window, make_window, tmp_path, fake_dialogs):
    out = tmp_path / "design.png"
    fake_dialogs.save_paths = [str(out)]
    assert window.save_as()
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    assert window.windowTitle().startswith("design.png") and not window.isWindowModified()
    assert nodes.load(out).to_json() == window.canvas.doc.to_json()
    assert make_window(path=str(out)).canvas.doc.to_json() == window.canvas.doc.to_json()


def test_save_as_png_embeds_the_trained_weights_when_asked(trainer, qtbot, tmp_path, fake_dialogs):
    _train(trainer, qtbot)
    trainer.training.action_embed_weights.setChecked(True)
    fake_dialogs.save_paths = [str(tmp_path / "trained.PNG")]
    assert trainer.save_as()
    embedded = nodes.load(tmp_path / "trained.PNG").extras["weights"]
    assert _same(decode_weights(embedded), trainer.training.weights)


@pytest.mark.parametrize("name", ["model.keras", "w.safetensors", "picture.jpg", "graph.v2"])
def test_save_as_refuses_a_suffix_it_cannot_write(window, tmp_path, fake_dialogs, name):
    folder = tmp_path / "out"
    folder.mkdir()
    fake_dialogs.save_paths = [str(folder / name)]
    assert not window.save_as()
    assert list(folder.iterdir()) == []  # JSON under that name before the fix
    title, text = fake_dialogs.messages[-1]
    assert title == "Cannot save" and f"`{name}`" in text
    assert "must end in .json or .png" in text and "\n" not in text
    assert window.path is None


def test_exports_refuse_a_name_of_another_format(window, tmp_path, fake_dialogs):
    folder = tmp_path / "out"
    folder.mkdir()
    assert not window.files.export_snippet(str(folder / "x.jpg"))
    assert "must end in .png" in fake_dialogs.messages[-1][1]
    assert not window.files.export_json(str(folder / "x.png"))
    assert "must end in .json" in fake_dialogs.messages[-1][1]
    assert list(folder.iterdir()) == []


# ---------------------------------------------------------------------- (11) a diverging training
def _diverging_doc():
    """A tiny teacher-student graph whose training diverges in epoch 6 (exponential activation,
    SGD with learning rate 0.5): 5 epochs finish."""
    data = teacher_doc(20).to_json()
    params = {
        "data": {"batch_size": 8, "sample_shape": [2, 2, 4, 4, 1], "seed": 0},
        "input": {"shape": [2, 2, 4, 4, 1]},
        "conv3d_transpose": {
            "n_filters": 2,
            "size": [2, 2, 2],
            "activation": "exponential",
            "optimizer": {"algorithm": "sgd", "learning_rate": 0.5},
        },
        "target": {"batch_size": 8, "sample_shape": [2, 2, 5, 5, 2], "seed": 7},
    }
    for node in data["nodes"]:
        node.setdefault("params", {}).update(params.get(node["id"], {}))
    data["training"].update(batch_size=4, validation_split=0.25)
    return nodes.from_json(data)


@pytest.fixture(scope="module")
def five_epochs():
    """What the diverging graph reaches after its 5 finished epochs."""
    with np.errstate(all="ignore"):
        result = train_document(_diverging_doc(), backend="numpy", epochs=5)
    return result.history, weights_dict(result.graph.layers)


def test_a_diverging_training_keeps_what_its_finished_epochs_reached(five_epochs):
    diverging = _diverging_doc()
    with (
        pytest.raises(TrainingInterrupted, match="is inf: training stopped") as caught,
        np.errstate(all="ignore"),
    ):
        train_document(diverging, backend="numpy")
    exc = caught.value
    assert exc.epochs_finished == 5 and exc.history == five_epochs[0]
    assert _same(exc.weights, five_epochs[1])


def test_train_saves_the_history_and_weights_of_the_finished_epochs(tmp_path, capsys, five_epochs):
    graph, weights, history = (tmp_path / n for n in ("d.json", "w.npz", "h.json"))
    _diverging_doc().save(graph)
    args = ["train", str(graph), "--backend", "numpy", "--weights-out", str(weights)]
    with np.errstate(all="ignore"):
        assert main([*args, "--history", str(history)]) == 2
    out, err = capsys.readouterr()
    assert json.loads(history.read_text())["loss"] == five_epochs[0]["loss"]  # nothing before
    with np.load(weights) as saved:
        assert _same(dict(saved), five_epochs[1])
    assert f"saved weights of epoch 5, the last finished: {weights}" in out
    assert f"--weights-in {weights} --initial-epoch 5" in out
    assert "saved history of the 5 finished epoch(s)" in out
    assert err.strip().splitlines()[-1].endswith("5 epoch(s) had finished")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's overflow, in the job's thread
def test_the_editor_keeps_the_weights_of_a_diverging_trainings_finished_epochs(
    make_window, qtbot, five_epochs
):
    doc = _diverging_doc()
    w = make_window(doc)
    with qtbot.waitSignal(w.training.train_failed, timeout=TIMEOUT_MS):
        assert w.training.train()
    assert _same(w.training.weights, five_epochs[1])
    assert w.training.epochs_done == 5 and w.training.has_unsaved_weights()
    assert "the weights of epoch 5, the last finished, are kept" in w.log.text()


# ---------------------------------------------------------------------- (13) graph file size
def test_the_command_line_refuses_a_graph_file_too_large_in_one_line(tmp_path, capsys):
    from conv3dt_studio.nodes.graph_document import MAX_GRAPH_FILE_BYTES

    big = tmp_path / "big.json"
    with open(big, "wb") as fh:
        fh.truncate(MAX_GRAPH_FILE_BYTES + 1)  # sparse
    assert main(["validate", str(big)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "is too large: 512.0 MiB, above the 512 MiB a graph file" in line
