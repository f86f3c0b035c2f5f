"""Hostile files through the import and export API: a .keras whose config.json or weights file
declares more than it holds (estimated before Keras builds anything), non-finite weights, an
existing folder given to the PyTorch export, `.` as an output, torch's pickle notices, and
suffixes in upper case."""

from __future__ import annotations

import io
import json
import os
import pickle
import stat
import warnings
import zipfile

os.environ.setdefault("KERAS_BACKEND", "jax")

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import safetensors.numpy  # noqa: E402
import torch  # noqa: E402
from interop_helpers import chain_doc, stride_and_dilation, sweep  # noqa: E402

from conv3dt_studio.nodes import memory as node_memory  # noqa: E402
from conv3dt_studio.nodes.interop import (  # noqa: E402
    InteropError,
    export_document,
    import_model,
    keras_format,
)
from conv3dt_studio.nodes.interop.common import model_spec  # noqa: E402
from conv3dt_studio.nodes.weights import decode_weights  # noqa: E402

EXPORT_FILES = ("model.py", "weights.safetensors", "architecture.json", "train_ddp.py")
# Keras's JAX variables on NumPy 2 (not ours)
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


@pytest.fixture
def doc():
    return chain_doc((2, 1, 2, 2, 2), [{"n_filters": 2, "activation": "tanh"}])


@pytest.fixture
def keras_file(doc, tmp_path):
    """A valid .keras file the studio exported (one TimeDistributed(Conv3DTranspose))."""
    return export_document(doc, "keras", tmp_path / "model.keras").path


@pytest.fixture
def keras_never_loads(monkeypatch):
    """Fail the test if Keras is asked to load the file: it must be refused before."""

    def load_model(*args, **kwargs):
        raise AssertionError("keras.saving.load_model was called")

    monkeypatch.setattr(keras.saving, "load_model", load_model)


def rewritten(src, dst, config=None, weights=None):
    """``src`` (a .keras zip) copied to ``dst`` with config.json passed through ``config`` and
    model.weights.h5 replaced by ``weights`` (bytes)."""
    with zipfile.ZipFile(src) as zin:
        files = {name: zin.read(name) for name in zin.namelist()}
    if config is not None:
        data = json.loads(files["config.json"])
        config(data)
        files["config.json"] = json.dumps(data).encode()
    if weights is not None:
        files["model.weights.h5"] = weights
    with zipfile.ZipFile(dst, "w") as out:
        for name, data in files.items():
            out.writestr(name, data)
    return dst


def first_conv(config):
    """The Conv3DTranspose configuration inside the first TimeDistributed of config.json."""
    layers = config["config"]["layers"]
    return next(x for x in layers if x["class_name"] == "TimeDistributed")["config"]["layer"]


# ------------------------------------------------------------------- (4) declared sizes, .keras
def test_a_config_declaring_far_more_weights_than_the_file_holds_is_refused_unloaded(
    keras_file, tmp_path, keras_never_loads
):
    def huge(config):
        conv = first_conv(config)["config"]
        conv["filters"], conv["kernel_size"] = 4096, [64, 64, 64]

    path = rewritten(keras_file, tmp_path / "huge.keras", config=huge)
    with pytest.raises(InteropError) as info:
        import_model(path)
    message = str(info.value)
    assert message.startswith("`huge.keras`: config.json declares 1,073,745,920 weight values")
    assert "a 64×64×64×4096×1 kernel" in message and "model.weights.h5 holds 56:" in message
    assert "\n" not in message


def _declared_values(config: dict, source: str) -> int:
    layers = keras_format._declared_layers(config, source)
    chain, bad = keras_format._read_layers(layers, source)
    assert bad == []
    return keras_format._declared_weights(layers, chain, source).values


def test_the_estimate_counts_every_weight_of_the_sweep_exactly(tmp_path):
    """Both data formats, mixed stacks, strides, dilations, output_padding: the weights that
    config.json declares are those of the graph, read from the build shapes Keras saves and,
    without them, from the Input's shape carried through the layers."""
    for name, doc in sweep().items():
        if stride_and_dilation(doc):
            continue  # Keras cannot hold it
        path = export_document(doc, "keras", tmp_path / f"{name}.keras").path
        with zipfile.ZipFile(path) as zf:
            config = json.loads(zf.read("config.json"))
        want = sum(a.size for a in model_spec(doc).weights().values())
        assert _declared_values(config, name) == want, name
        text = json.dumps(config).replace('"build_config"', '"unused"')
        assert _declared_values(json.loads(text), name) == want, name


def test_declared_weights_above_the_memory_limit_are_refused_unloaded(
    keras_file, monkeypatch, keras_never_loads
):
    monkeypatch.setattr(node_memory, "default_limit", lambda: 1000)
    with pytest.raises(InteropError) as info:
        import_model(keras_file)
    message = str(info.value)
    assert message.startswith(f"File `{keras_file}` would take about ")
    assert (
        "once loaded (config.json declares 0.0 MiB of weights, the largest a 3×3×3×2×1 kernel"
        in message
    )
    assert message.endswith("above the memory limit of 0.0 MiB")


def test_a_weights_file_declaring_huge_arrays_is_refused_unloaded(
    keras_file, tmp_path, keras_never_loads
):
    """An HDF5 dataset that declares 16 TiB and stores none of it (its fill value): Keras would
    read it whole before comparing its shape."""
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h5:
        h5.create_dataset("layers/x/vars/0", shape=(2**40, 4), dtype="<f4", chunks=(1, 4))
    path = rewritten(keras_file, tmp_path / "bomb.keras", weights=buf.getvalue())
    with pytest.raises(InteropError, match=r"model\.weights\.h5 declares 16,777,216\.0 MiB"):
        import_model(path)


def test_unsupported_layers_are_refused_before_keras_builds_them(
    keras_file, tmp_path, keras_never_loads
):
    def dense(config):
        layers = config["config"]["layers"]
        layers.append(
            {
                "module": "keras.layers",
                "class_name": "Dense",
                "config": {"name": "head", "units": 2**40},
                "registered_name": None,
            }
        )

    path = rewritten(keras_file, tmp_path / "dense.keras", config=dense)
    with pytest.raises(InteropError, match=r"^`dense.keras`: cannot import layers head \(Dense\)"):
        import_model(path)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda c: c.update(config=[]), r"config\.json does not declare a model of layers"),
        (lambda c: c["config"]["layers"].append(3), r"config\.json: layer 2 is malformed"),
        (
            lambda c: first_conv(c)["config"].update(filters="many"),
            r"layer `td_0` has a malformed configuration \(ValueError",
        ),
        (
            lambda c: first_conv(c)["config"].update(filters=2**40),
            r"declares a kernel of \(3, 3, 3, 1099511627776, 1\) \(kernel_size, filters",
        ),
    ],
)
def test_a_malformed_config_is_one_line(keras_file, tmp_path, keras_never_loads, change, match):
    path = rewritten(keras_file, tmp_path / "bad.keras", config=change)
    with pytest.raises(InteropError, match=match) as info:
        import_model(path)
    assert "\n" not in str(info.value)


def test_a_keras_archive_without_config_is_refused(tmp_path, keras_never_loads):
    path = tmp_path / "empty.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", "{}")
    with pytest.raises(InteropError, match=r"not a Keras 3 model file \(the archive has no"):
        import_model(path)


# ------------------------------------------------------------------- (7) non-finite weights
def _safetensors_with(doc, tmp_path, value, index=0):
    folder = export_document(doc, "pytorch", tmp_path / "pt").path
    arrays = safetensors.numpy.load_file(str(folder / "weights.safetensors"))
    arrays["layers.0.conv.weight"].reshape(-1)[index] = value
    path = tmp_path / "bad.safetensors"
    text = (folder / "architecture.json").read_text()
    safetensors.numpy.save_file(arrays, str(path), metadata={"conv3dt_studio.architecture": text})
    return path


@pytest.mark.parametrize(
    ("value", "counts"), [(np.nan, "(1 NaN, 0 Inf)"), (np.inf, "(0 NaN, 1 Inf)")]
)
def test_non_finite_safetensors_weights_are_refused_naming_the_tensor(doc, tmp_path, value, counts):
    path = _safetensors_with(doc, tmp_path, value)
    with pytest.raises(InteropError) as info:
        import_model(path)
    assert str(info.value) == (
        "`bad.safetensors`: weights must be finite: tensor `layers.0.conv.weight` holds 1 "
        f"non-finite value {counts} of 54"
    )


def test_non_finite_pt_weights_are_refused(doc, tmp_path):
    folder = export_document(doc, "pytorch", tmp_path / "pt").path
    state = {
        k: torch.from_numpy(v)
        for k, v in safetensors.numpy.load_file(str(folder / "weights.safetensors")).items()
    }
    state["layers.0.conv.bias"][:] = float("-inf")
    torch.save(state, folder / "sd.pt")
    with pytest.raises(
        InteropError, match=r"tensor `layers.0.conv.bias` holds 2 non-finite values"
    ):
        import_model(folder / "sd.pt")


def test_non_finite_keras_weights_are_refused(keras_file, tmp_path):
    model = keras.saving.load_model(keras_file)
    kernel, bias = model.get_weights()
    kernel.reshape(-1)[:2] = np.nan
    model.set_weights([kernel, bias])
    model.save(tmp_path / "nan.keras")
    with pytest.raises(InteropError) as info:
        import_model(tmp_path / "nan.keras")
    assert str(info.value) == (
        "`nan.keras`: weights must be finite: tensor `conv_0/kernel` holds 2 non-finite values "
        "(2 NaN, 0 Inf) of 54"
    )


# ------------------------------------------------------------------- (5) an existing folder
def test_force_writes_into_an_existing_folder_and_keeps_its_other_files(doc, tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "graph.json").write_text("the graph")
    (folder / "notes.txt").write_text("precious")
    (folder / "data").mkdir()
    (folder / "data" / "x.npy").write_bytes(b"data")
    (folder / "model.py").write_text("an old export")
    os.chmod(folder / "model.py", 0o640)
    with pytest.raises(InteropError) as info:
        export_document(doc, "pytorch", folder)
    assert "already exists: pass force=True to replace its export (model.py," in str(info.value)
    assert "the other files in it are kept" in str(info.value)
    assert (folder / "model.py").read_text() == "an old export"

    export_document(doc, "pytorch", folder, force=True)
    assert (folder / "graph.json").read_text() == "the graph"
    assert (folder / "notes.txt").read_text() == "precious"
    assert (folder / "data" / "x.npy").read_bytes() == b"data"
    assert "load_model" in (folder / "model.py").read_text()
    assert stat.S_IMODE((folder / "model.py").stat().st_mode) == 0o640  # a replaced file's
    names = {p.name for p in folder.iterdir()}
    assert names == {"graph.json", "notes.txt", "data", *EXPORT_FILES}  # no temporary left
    back = decode_weights(import_model(folder).extras["weights"])
    assert set(back) == {"conv_0/kernel", "conv_0/bias"}


def test_a_folder_where_an_export_file_should_be_is_refused(doc, tmp_path):
    (tmp_path / "out" / "weights.safetensors").mkdir(parents=True)
    with pytest.raises(InteropError, match=r"`.*weights.safetensors` is a folder, where the"):
        export_document(doc, "pytorch", tmp_path / "out", force=True)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["weights.safetensors"]


def test_the_graph_being_exported_is_never_replaced(doc, tmp_path):
    source = tmp_path / "architecture.json"
    doc.save(source)
    before = source.read_bytes()
    with pytest.raises(InteropError, match="it is the graph being exported"):
        export_document(doc, "pytorch", tmp_path, force=True, source=source)
    assert source.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["architecture.json"]


def test_a_file_format_never_replaces_a_folder(doc, tmp_path):
    (tmp_path / "m.keras").mkdir()
    (tmp_path / "m.keras" / "inside.txt").write_text("kept")
    with pytest.raises(InteropError, match="`.*m.keras`: it is a folder"):
        export_document(doc, "keras", tmp_path / "m.keras", force=True)
    assert (tmp_path / "m.keras" / "inside.txt").read_text() == "kept"


# ------------------------------------------------------------------- (6) `.` and empty names
@pytest.mark.parametrize("fmt", ["onnx", "keras", "python"])
@pytest.mark.parametrize("name", [".", "..", ""])
def test_a_file_format_refuses_a_folder_name_in_one_line(doc, tmp_path, monkeypatch, fmt, name):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InteropError, match=r"^Invalid value for `path`: expected a file name") as e:
        export_document(doc, fmt, name, force=True)
    assert e.value.param == "path"
    assert list(tmp_path.iterdir()) == []


def test_pytorch_export_to_dot_writes_into_the_current_folder(doc, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    doc.save("graph.json")
    with pytest.raises(InteropError, match=r"^Folder `\.` already exists"):
        export_document(doc, "pytorch", ".")
    result = export_document(doc, "pytorch", ".", force=True, source="graph.json")
    assert str(result.path) == "."
    assert {p.name for p in tmp_path.iterdir()} == {"graph.json", *EXPORT_FILES}


def test_an_empty_folder_name_is_refused(doc):
    with pytest.raises(InteropError, match="expected a folder name .*Received: an empty name"):
        export_document(doc, "pytorch", "", force=True)


# ------------------------------------------------------------------- (12) torch's notices
def test_a_plain_pickle_named_pt_is_refused_without_torch_warnings(tmp_path):
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"x": 1}, protocol=4))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(InteropError, match="not a PyTorch state dict file"):
            import_model(path)
    assert [str(w.message) for w in seen] == []


# ------------------------------------------------------------------- (14) upper-case suffixes
def test_an_upper_case_keras_suffix_imports_as_the_lower_case_one(keras_file, tmp_path):
    upper = tmp_path / "MODEL.KERAS"
    upper.write_bytes(keras_file.read_bytes())
    assert import_model(upper).extras["weights"] == import_model(keras_file).extras["weights"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["MODEL.KERAS", "model.keras"]


@pytest.mark.parametrize(("fmt", "name"), [("keras", "M.KERAS"), ("onnx", "M.Onnx")])
def test_upper_case_output_suffixes_are_kept(doc, tmp_path, fmt, name):
    assert export_document(doc, fmt, tmp_path / name).path == tmp_path / name
    assert (tmp_path / name).is_file()


@pytest.mark.parametrize("name", ["W.SAFETENSORS", "W.PT"])
def test_upper_case_weights_suffixes_import(doc, tmp_path, name):
    folder = export_document(doc, "pytorch", tmp_path / "pt").path
    arrays = safetensors.numpy.load_file(str(folder / "weights.safetensors"))
    if name.endswith(".PT"):
        torch.save({k: torch.from_numpy(v) for k, v in arrays.items()}, folder / name)
    else:
        (folder / name).write_bytes((folder / "weights.safetensors").read_bytes())
    assert import_model(folder / name).extras["weights"] == import_model(folder).extras["weights"]
