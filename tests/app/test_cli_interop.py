"""`conv3dt-studio export` and `import`: every format from the command line, a round trip back to
a graph with the same weights, and the one-line refusals (invalid graph, missing extra, existing
output)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from small_graphs import small_doc

from conv3dt_studio import nodes
from conv3dt_studio.app.cli import main
from conv3dt_studio.nodes.weights import decode_weights

ERR = "conv3dt-studio: error: "


@pytest.fixture
def graph(tmp_path):
    path = tmp_path / "g.json"
    small_doc({"activation": "tanh", "stride": 2, "padding": True}).save(path)
    return path


def _seeded_weights(path) -> dict[str, np.ndarray]:
    result = nodes.run_document(nodes.load(path), backend="numpy")
    kernel, bias = result.graph.layers[1].layer.get_weights()
    return {"kernel": kernel, "bias": bias}


@pytest.mark.parametrize(
    ("fmt", "name", "written"),
    [
        ("onnx", "m.onnx", ["m.onnx"]),
        ("pytorch", "m", ["m/model.py", "m/weights.safetensors"]),
        ("python", "m", ["m.py", "m.npz"]),
    ],
)
def test_export_writes_the_format(capsys, graph, tmp_path, fmt, name, written):
    assert main(["export", str(graph), "--format", fmt, "-o", str(tmp_path / name)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Exported 1 layer (time_distributed) to ")
    for file in written:
        assert (tmp_path / file).is_file()


@pytest.mark.parametrize(("fmt", "name"), [("keras", "m.keras"), ("pytorch", "m")])
def test_export_then_import_gives_back_the_same_weights(capsys, graph, tmp_path, fmt, name):
    model = tmp_path / name
    assert main(["export", str(graph), "--format", fmt, "-o", str(model)]) == 0
    back = tmp_path / "back.json"
    assert main(["import", str(model), "-o", str(back)]) == 0
    assert f"imported 1 layer from `{model}`" in capsys.readouterr().out
    doc = nodes.load(back)
    arrays = decode_weights(doc.extras["weights"])
    kernel = next(v for k, v in arrays.items() if k.endswith("/kernel"))
    np.testing.assert_array_equal(kernel, _seeded_weights(graph)["kernel"])
    assert nodes.validate(doc).ok


def test_an_invalid_graph_prints_its_problems(capsys, tmp_path):
    doc = small_doc()
    doc.disconnect("conv3d_transpose", "layer", "time_distributed", "layer")
    doc.save(tmp_path / "bad.json")
    code = main(["export", str(tmp_path / "bad.json"), "--format", "onnx", "-o", "x.onnx"])
    err = capsys.readouterr().err
    assert code == 2 and "missing link" in err and "`layer`" in err
    assert all(line.startswith(ERR) for line in err.splitlines())
    assert not (tmp_path / "x.onnx").exists()


def test_a_missing_extra_names_the_pip_install(capsys, graph, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` fails as if not installed
    assert main(["export", str(graph), "--format", "onnx", "-o", str(tmp_path / "m")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "pip install 'conv3dt-studio[onnx]'" in line


def test_existing_outputs_are_kept(capsys, graph, tmp_path):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"precious")
    assert main(["export", str(graph), "--format", "onnx", "-o", str(target)]) == 2
    assert "already exists" in capsys.readouterr().err and target.read_bytes() == b"precious"
    (tmp_path / "g2.json").write_text("precious")
    assert main(["import", str(graph), "-o", str(tmp_path / "g2.json")]) == 2
    assert (tmp_path / "g2.json").read_text() == "precious"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["export", "G", "--format", "tflite", "-o", "x"], "invalid choice: 'tflite'"),
        (["export", "G", "-o", "x"], "--format"),
        (["import", "model.h5"], "-o"),
    ],
)
def test_usage_errors_are_one_line(capsys, argv, needle):
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert needle in line


def test_importing_something_else_is_one_line(capsys, graph, tmp_path):
    assert main(["import", str(graph), "-o", str(tmp_path / "out.json")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert str(graph) in line


def test_an_import_says_what_it_chose(capsys, tmp_path):
    """A Keras model of any time length comes in with 1 time step, and a warning says so."""
    import keras

    x = keras.Input(shape=(None, 2, 3, 3, 1), name="frames")
    y = keras.layers.TimeDistributed(keras.layers.Conv3DTranspose(2, 2), name="up")(x)
    keras.Model(x, y).save(tmp_path / "user.keras")
    assert main(["import", str(tmp_path / "user.keras"), "-o", str(tmp_path / "g.json")]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("imported 1 layer from ")
    (line,) = captured.err.splitlines()
    assert line.startswith("conv3dt-studio: warning: ") and "any number of time steps" in line
    assert nodes.load(tmp_path / "g.json").nodes["frames"].params["shape"][0] == 1


def test_a_keras_round_trip_keeps_the_time_length(capsys, tmp_path):
    doc = small_doc(batch=3)
    time_steps = doc.params("input")["shape"][0]
    doc.save(tmp_path / "g.json")
    model, back = tmp_path / "m.keras", tmp_path / "back.json"
    assert main(["export", str(tmp_path / "g.json"), "--format", "keras", "-o", str(model)]) == 0
    assert main(["import", str(model), "-o", str(back)]) == 0
    assert capsys.readouterr().err == ""
    doc_back = nodes.load(back)
    (inp,) = [n for n in doc_back.nodes.values() if n.type == "input"]
    (data,) = [n for n in doc_back.nodes.values() if n.type == "data"]
    assert inp.params["shape"][0] == time_steps and data.params["batch_size"] == 3


@pytest.mark.parametrize("name", ["model.py", "m.json"])
def test_a_pytorch_folder_with_a_file_name_is_refused(capsys, graph, tmp_path, name):
    assert main(["export", str(graph), "--format", "pytorch", "-o", str(tmp_path / name)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "expected a folder name" in line and f"Received: -o '{tmp_path / name}'" in line
    assert not (tmp_path / name).exists()
