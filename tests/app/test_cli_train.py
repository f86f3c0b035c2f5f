"""`conv3dt-studio train`: per-epoch lines, weights and history files, train -> run round trip."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from conv3dt_studio.app.cli import main
from conv3dt_studio.nodes import EXAMPLES, load, run_document
from conv3dt_studio.nodes.examples import teacher_student

GRAPH = str(EXAMPLES / "teacher_student.json")


def test_train_then_run_with_the_trained_weights(tmp_path, capsys):
    weights, history = tmp_path / "w.npz", tmp_path / "h.json"
    code = main(
        [
            "train",
            GRAPH,
            "--epochs",
            "4",
            "--backend",
            "numpy",
            "--weights-out",
            str(weights),
            "--history",
            str(history),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert [ln.split(":")[0] for ln in out.splitlines() if ln.startswith("epoch")] == [
        "epoch 1",
        "epoch 2",
        "epoch 3",
        "epoch 4",
    ]
    losses = json.loads(history.read_text())["loss"]
    assert len(losses) == 4 and losses[-1] < losses[0]
    with np.load(weights, allow_pickle=False) as w:
        assert "conv3d_transpose/kernel" in w.files
        assert "conv3d_transpose/optimizer/iterations" in w.files
    predicted = tmp_path / "y.npy"
    assert main(["run", GRAPH, "--weights", str(weights), "--out", str(predicted)]) == 0
    y = np.load(predicted, allow_pickle=False)
    fresh = run_document(load(GRAPH), backend="numpy").prediction
    trained = run_document(load(GRAPH), backend="numpy", weights=str(weights)).prediction
    assert np.array_equal(y, trained) and not np.array_equal(y, fresh)


def test_resumed_training_continues_the_same_losses(tmp_path, capsys):
    w = tmp_path / "w.npz"
    h_full, h_a, h_b = (tmp_path / f"{n}.json" for n in ("full", "a", "b"))
    assert main(["train", GRAPH, "--epochs", "3", "--history", str(h_full)]) == 0
    assert (
        main(["train", GRAPH, "--epochs", "2", "--history", str(h_a), "--weights-out", str(w)]) == 0
    )
    assert (
        main(
            [
                "train",
                GRAPH,
                "--epochs",
                "3",
                "--initial-epoch",
                "2",
                "--weights-in",
                str(w),
                "--history",
                str(h_b),
            ]
        )
        == 0
    )
    capsys.readouterr()
    full, a, b = (json.loads(p.read_text()) for p in (h_full, h_a, h_b))
    assert a["loss"] + b["loss"] == full["loss"]


def test_training_data_from_files(tmp_path, capsys):
    doc = teacher_student()
    x = np.random.default_rng(3).standard_normal((8, 4, 2, 8, 8, 3), dtype=np.float32)
    y = np.zeros((8, 4, 3, 10, 10, 5), np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    graph = tmp_path / "g.json"
    doc.save(graph)
    assert (
        main(
            [
                "train",
                str(graph),
                "--x",
                str(tmp_path / "x.npy"),
                "--y",
                str(tmp_path / "y.npy"),
                "--epochs",
                "1",
                "--batch-size",
                "2",
            ]
        )
        == 0
    )
    assert "epoch 1: loss:" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", str(EXAMPLES / "toolkit_example.json")], "not trainable: add a Target"),
        (["train", GRAPH, "--loss", "nope"], "Invalid value for `loss`"),
        (["train", GRAPH, "--epochs", "0"], "expected an integer >= 1 and <= 2147483647, got '0'"),
    ],
)
def test_bad_training_input(args, message, capsys):
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_target_of_the_wrong_shape(tmp_path, capsys):
    np.save(tmp_path / "y.npy", np.zeros((32, 4, 3, 9, 9, 5), np.float32))
    assert main(["train", GRAPH, "--y", str(tmp_path / "y.npy"), "--epochs", "1"]) == 2
    assert "must equal the prediction (32, 4, 3, 10, 10, 5)" in capsys.readouterr().err


def test_existing_outputs_are_not_overwritten(tmp_path, capsys):
    w = tmp_path / "w.npz"
    w.write_bytes(b"precious")
    assert main(["train", GRAPH, "--epochs", "1", "--weights-out", str(w)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert w.read_bytes() == b"precious"


def test_progress_off_a_terminal_is_plain_lines_beside_the_epoch_lines(capsys):
    assert main(["train", GRAPH, "--epochs", "3", "--batch-size", "4"]) == 0
    captured = capsys.readouterr()
    progress = captured.err.splitlines()
    assert "\r" not in captured.err and 1 <= len(progress) <= 10
    assert all(re.fullmatch(r" *\d+% epoch [1-3]/3, batch \d+/\d+", line) for line in progress)
    assert progress[-1].startswith("100% epoch 3/3")
    epochs = [line for line in captured.out.splitlines() if line.startswith("epoch")]
    assert [line.split(":")[0] for line in epochs] == ["epoch 1", "epoch 2", "epoch 3"]


def test_a_teacher_with_the_graphs_own_seed_is_warned_about(capsys, tmp_path):
    """A teacher Target whose seed is the graph's seed is the student itself: loss 0 from the
    first epoch. The run still works, and a warning says why nothing is learned."""
    doc = teacher_student()
    doc.set_param("target", "seed", doc.settings["seed"])
    doc.save(tmp_path / "same.json")
    assert main(["train", str(tmp_path / "same.json"), "--epochs", "1"]) == 0
    err = capsys.readouterr().err
    assert "conv3dt-studio: warning: the first epoch's loss is 0" in err


def test_a_new_teacher_target_does_not_share_the_graphs_default_seed():
    from conv3dt_studio.nodes import GraphDocument

    doc = GraphDocument()
    target = doc.add_node("target", {"source": "teacher"})
    assert target.params["seed"] != doc.settings["seed"]
