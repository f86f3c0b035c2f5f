"""File -> Export -> ONNX / Keras / PyTorch / Python in the editor (one code path with the CLI),
and models from other frameworks opened with File -> Open or dropped on the canvas."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, QUrl
from PySide6.QtGui import QAction

from conv3dt_studio import nodes
from conv3dt_studio.nodes.interop import export_document
from conv3dt_studio.nodes.weights import decode_weights

TIMEOUT_MS = 60_000


@pytest.mark.parametrize("fmt", ["onnx", "keras", "pytorch", "python"])
def test_every_export_action_exists_in_the_file_menu(window, fmt):
    action = window.findChild(QAction, f"action_export_{fmt}")
    assert action is not None and action.isEnabled()
    menu = next(m for m in window.menuBar().actions() if m.text() == "&File").menu()
    export = next(a for a in menu.actions() if a.menu() and a.text() == "E&xport").menu()
    assert action in export.actions()


def test_export_through_the_dialog_writes_the_file(window, qtbot, fake_dialogs, tmp_path):
    target = tmp_path / "model.onnx"
    fake_dialogs.save_paths.append(str(target))
    with qtbot.waitSignal(window.exports.exported, timeout=TIMEOUT_MS) as done:
        window.findChild(QAction, "action_export_onnx").trigger()
    assert target.is_file() and done.args[0].path == target
    assert "Exported 1 layer" in window.log.text()


def test_export_uses_the_trained_weights(window, qtbot, tmp_path):
    conv = window.canvas.doc.params("conv3d_transpose")
    kernel = np.full((3, 3, 3, conv["n_filters"], 2), 0.5, np.float32)
    window.training.weights = {
        "conv3d_transpose/kernel": kernel,
        "conv3d_transpose/bias": np.zeros(conv["n_filters"], np.float32),
    }
    with qtbot.waitSignal(window.exports.exported, timeout=TIMEOUT_MS):
        window.exports.export("keras", tmp_path / "m.keras")
    arrays = decode_weights(nodes.load(tmp_path / "m.keras").extras["weights"])
    (exported,) = [v for k, v in arrays.items() if k.endswith("/kernel")]
    np.testing.assert_array_equal(exported, kernel)


def test_a_failed_export_is_a_message(window, qtbot, fake_dialogs, tmp_path):
    (tmp_path / "taken.onnx").write_bytes(b"precious")
    with qtbot.waitSignal(window.exports.export_failed, timeout=TIMEOUT_MS):
        window.exports.export("onnx", tmp_path / "taken.onnx")
    assert fake_dialogs.messages[-1][0] == "Cannot export"
    assert "already exists" in fake_dialogs.messages[-1][1]
    assert (tmp_path / "taken.onnx").read_bytes() == b"precious"


@pytest.fixture
def pytorch_model(tmp_path, make_doc):
    folder = tmp_path / "exported"
    export_document(make_doc({"activation": "tanh"}), "pytorch", folder)
    return folder


def test_open_a_pytorch_model_through_its_model_py(window, pytorch_model):
    assert window.open_path(pytorch_model / "model.py")
    doc = window.canvas.doc
    assert doc.extras.get("weights") and nodes.validate(doc).ok
    assert window.path is None and window.is_modified()  # Save asks for a graph file


def test_drop_a_model_on_the_canvas_adds_its_nodes(window, pytorch_model):
    before = len(window.canvas.doc.nodes)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(pytorch_model))])
    window.canvas.drop(mime, QPointF(100, 100))
    assert len(window.canvas.doc.nodes) == before + 5


def test_opening_a_keras_model_of_any_time_length_logs_the_chosen_one(window, tmp_path):
    import os

    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras

    x = keras.Input(shape=(None, 2, 3, 3, 1), name="frames")
    y = keras.layers.TimeDistributed(keras.layers.Conv3DTranspose(2, 2), name="up")(x)
    keras.Model(x, y).save(tmp_path / "user.keras")
    assert window.open_path(tmp_path / "user.keras")
    assert window.canvas.doc.nodes["frames"].params["shape"][0] == 1
    warned = [e.text for e in window.log.entries if e.level == "warning"]
    assert any("any number of time steps" in t for t in warned)
    # dropped on the canvas, the same note
    before = len(warned)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tmp_path / "user.keras"))])
    window.canvas.drop(mime, QPointF(0, 0))
    warned = [e.text for e in window.log.entries if e.level == "warning"]
    assert len(warned) == before + 1 and "any number of time steps" in warned[-1]
