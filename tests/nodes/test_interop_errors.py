"""Every way an export or import is refused: one line, naming the file, node or parameter."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import numpy as np
import pytest
from interop_helpers import chain_doc

from conv3dt_studio.nodes import DocumentProblems, FileError
from conv3dt_studio.nodes.interop import (
    FORMATS,
    ExportResult,
    InteropError,
    MissingExtraError,
    export_document,
    import_model,
    importable,
)

# Keras's JAX variables on NumPy 2 (not ours)
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)
SUFFIX = {"onnx": ".onnx", "keras": ".keras", "pytorch": "", "python": ".py"}


@pytest.fixture
def doc():
    return chain_doc((2, 1, 2, 2, 2), [{"n_filters": 2, "activation": "tanh"}])


@pytest.mark.parametrize(
    "fmt,module,extra",
    [
        ("onnx", "onnx", "onnx"),
        ("keras", "keras", "keras"),
        ("keras", "jax", "keras"),
        ("pytorch", "safetensors", "torch"),
    ],
)
def test_a_missing_library_names_the_extra_to_install(
    fmt, module, extra, doc, tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    with pytest.raises(MissingExtraError) as info:
        export_document(doc, fmt, tmp_path / f"out{SUFFIX[fmt]}")
    assert f"needs the `{extra}` extra: pip install 'conv3dt-studio[{extra}]'" in str(info.value)
    assert isinstance(info.value, InteropError) and isinstance(info.value, ValueError)
    assert list(tmp_path.iterdir()) == []


def test_importing_a_pt_file_without_torch_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "w.pt").write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'conv3dt-studio\[torch\]'"):
        import_model(tmp_path / "w.pt")


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_existing_output_is_kept_without_force(fmt, doc, tmp_path):
    target = tmp_path / f"out{SUFFIX[fmt]}"
    first = export_document(doc, fmt, target)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    with pytest.raises(InteropError, match=r"already exists: pass force=True to replace it"):
        export_document(doc, fmt, target, seed=3)
    assert sorted((p.name, p.stat().st_mtime_ns) for p in tmp_path.rglob("*")) == before
    again = export_document(doc, fmt, target, seed=3, force=True)
    assert again.path == first.path
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_python_export_refuses_when_only_its_weights_file_exists(doc, tmp_path):
    (tmp_path / "script.npz").write_bytes(b"mine")
    with pytest.raises(InteropError, match="script.npz` already exists"):
        export_document(doc, "python", tmp_path / "script.py")
    assert not (tmp_path / "script.py").exists()


def test_an_invalid_graph_raises_the_validation_problems(doc, tmp_path):
    doc.disconnect("conv_0", "layer", "td_0", "layer")
    with pytest.raises(DocumentProblems) as info:
        export_document(doc, "onnx", tmp_path / "m.onnx")
    assert any(p.node == "td_0" and p.param == "layer" for p in info.value.problems)
    assert not (tmp_path / "m.onnx").exists()


def test_an_unknown_prediction_node_is_a_problem(doc, tmp_path):
    with pytest.raises(DocumentProblems, match="no Prediction 6D node `nope`"):
        export_document(doc, "onnx", tmp_path / "m.onnx", prediction="nope")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"fmt": "tflite"}, r"Invalid value for `format`: expected one of onnx, keras, pytorch, "),
        ({"seed": -1}, r"Invalid value for `seed`: expected a non-negative integer"),
        ({"path": "model.h5"}, r"expected a file name ending in \.keras"),
        ({"path": "missing/m.keras"}, r"folder `.*missing` does not exist"),
    ],
)
def test_bad_arguments_are_one_line(kwargs, match, doc, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = {"fmt": "keras", "path": "m.keras", **kwargs}
    with pytest.raises(InteropError, match=match) as info:
        export_document(doc, args.pop("fmt"), args.pop("path"), **args)
    assert "\n" not in str(info.value)


def test_a_name_without_suffix_gets_the_formats(doc, tmp_path):
    result = export_document(doc, "keras", tmp_path / "model")
    assert isinstance(result, ExportResult)
    assert result.path == tmp_path / "model.keras" and result.path.is_file()
    assert result.format == "keras" and result.layer_names == ("td_0",)
    assert result.input_shape == (None, None, 1, 2, 2, 2)
    assert result.output_name == "td_0"
    assert "td_0" in result.summary and "\n" not in result.summary


def test_importable_by_form(doc, tmp_path):
    folder = export_document(doc, "pytorch", tmp_path / "pt").path
    keras_file = export_document(doc, "keras", tmp_path / "m.keras").path
    (tmp_path / "x.pth").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("")
    assert importable(folder) and importable(keras_file) and importable(tmp_path / "x.pth")
    assert importable(folder / "weights.safetensors")
    assert not importable(tmp_path / "notes.txt")
    assert not importable(tmp_path)  # a folder without model.py
    assert not importable(tmp_path / "absent.keras")


def test_import_refuses_other_files(tmp_path):
    (tmp_path / "graph.json").write_text("{}")
    with pytest.raises(InteropError, match=r"cannot import it: expected a \.keras file"):
        import_model(tmp_path / "graph.json")
    with pytest.raises(InteropError, match="does not exist"):
        import_model(tmp_path / "absent.keras")


def test_a_keras_file_that_is_not_a_zip_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "imp").mkdir()
    (tmp_path / "imp" / "broken.keras").write_bytes(b"not a zip")
    with pytest.raises(InteropError) as info:
        import_model("imp/broken.keras")
    assert str(info.value) == (
        "`imp/broken.keras` is not a Keras model file (a .keras file is a zip archive; "
        "this is not one)"
    )


@pytest.mark.parametrize("name", ["model.py", "model.onnx", "w.safetensors", "g.json"])
def test_the_folder_format_refuses_a_file_name(name, doc, tmp_path):
    with pytest.raises(InteropError) as info:
        export_document(doc, "pytorch", tmp_path / name)
    message = str(info.value)
    assert message.startswith("Invalid value for `path`: expected a folder name (PyTorch ")
    assert message.endswith(f"Received: path={str(tmp_path / name)!r}") and "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_a_folder_name_with_a_dot_is_a_folder(doc, tmp_path):
    assert export_document(doc, "pytorch", tmp_path / "run.v2").path.is_dir()


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_a_pytorch_folder_gets_the_permissions_of_new_files(umask, doc, tmp_path):
    old = os.umask(umask)
    try:
        folder = export_document(doc, "pytorch", tmp_path / "pt").path
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    assert "weights.safetensors" in modes
    assert modes == dict.fromkeys(modes, 0o666 & ~umask)


def test_importing_the_package_loads_no_optional_library():
    code = (
        "import sys, conv3dt_studio.nodes.interop\n"
        "print([m for m in sys.modules if m.split('.')[0] in "
        "('onnx', 'onnxruntime', 'keras', 'jax', 'torch', 'safetensors')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_weights_for_another_graph_are_refused(doc, tmp_path):
    np.savez(tmp_path / "w.npz", **{"other/kernel": np.zeros((3, 3, 3, 2, 1), np.float32)})
    with pytest.raises(FileError, match="has no weights for layer `conv_0`"):
        export_document(doc, "onnx", tmp_path / "m.onnx", weights=tmp_path / "w.npz")
