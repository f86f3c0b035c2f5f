"""Round trips out of the studio and back: a graph exported to Keras or PyTorch and imported again
keeps its time length, its Data generator's settings and its seed; a Keras model of the user's
that takes any number of time steps imports with 1 and says so."""

from __future__ import annotations

import json
import os
import zipfile

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from interop_helpers import chain_doc  # noqa: E402

from conv3dt_studio.nodes import run_document  # noqa: E402
from conv3dt_studio.nodes.interop import export_document, import_model  # noqa: E402

# Keras's JAX variables on NumPy 2 (not ours)
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)
SAMPLE = (4, 2, 3, 3, 2)  # time 4: more than the 1 a model of any time length would give
CONV = {"n_filters": 2, "size": [2, 2, 2], "data_format": "channels_first"}
MODEL = {"keras": "m.keras", "pytorch": "m"}


@pytest.fixture
def doc():
    d = chain_doc(SAMPLE, [CONV], batch=3, seed=7)
    d.set_param("data", "distribution", "uniform")
    return d


def _of(doc, node_type: str) -> dict:
    (node,) = [n for n in doc.nodes.values() if n.type == node_type]
    return dict(node.params)


def _kept(doc) -> dict:
    """What a round trip should keep besides the layers and weights."""
    data = _of(doc, "data")
    return {
        "input shape": list(_of(doc, "input")["shape"]),
        "sample_shape": list(data["sample_shape"]),
        "data": {k: data[k] for k in ("source", "distribution", "batch_size", "seed")},
        "seed": doc.settings["seed"],
    }


@pytest.mark.parametrize("fmt", ["keras", "pytorch"])
def test_a_round_trip_keeps_time_length_and_data_settings(fmt, doc, tmp_path):
    path = export_document(doc, fmt, tmp_path / MODEL[fmt]).path
    back = import_model(path)
    assert _kept(back) == _kept(doc)


def test_a_keras_round_trip_runs_on_the_original_data(doc, tmp_path):
    back = import_model(export_document(doc, "keras", tmp_path / "m.keras").path)
    x = np.random.default_rng(0).standard_normal((2, *SAMPLE), dtype=np.float32)
    want = run_document(doc, data=x, backend="numpy").prediction
    np.testing.assert_array_equal(run_document(back, data=x, backend="numpy").prediction, want)


def test_keras_still_loads_the_export_for_any_time_length(doc, tmp_path):
    model = keras.saving.load_model(export_document(doc, "keras", tmp_path / "m.keras").path)
    assert tuple(model.inputs[0].shape) == (None, None, *SAMPLE[1:])
    x = np.random.default_rng(1).standard_normal((1, 6, *SAMPLE[1:]), dtype=np.float32)
    assert np.asarray(model.predict(x, verbose=0)).shape[:2] == (1, 6)


def _any_time_model(path) -> None:
    x = keras.Input(shape=(None, 2, 3, 3, 1), name="frames")
    y = keras.layers.TimeDistributed(keras.layers.Conv3DTranspose(2, 2), name="up")(x)
    keras.Model(x, y).save(path)


def test_a_users_model_of_any_time_length_imports_with_one_step_and_says_so(tmp_path):
    path = tmp_path / "user.keras"
    _any_time_model(path)
    notes: list[str] = []
    back = import_model(path, notes=notes)
    assert list(_of(back, "input")["shape"]) == [1, 2, 3, 3, 1]
    (note,) = notes
    assert f"`{path}`: the model takes any number of time steps" in note
    assert "use 1 (shape [1, 2, 3, 3, 1])" in note and "\n" not in note


def _rewrite_metadata(path, edit) -> None:
    with zipfile.ZipFile(path) as zin:
        entries = {i.filename: zin.read(i) for i in zin.infolist()}
    meta = json.loads(entries["metadata.json"])
    edit(meta)
    entries["metadata.json"] = json.dumps(meta).encode()
    with zipfile.ZipFile(path, "w") as zout:
        for name, data in entries.items():
            zout.writestr(name, data)


@pytest.mark.parametrize(
    "edit",
    [
        lambda meta: meta.pop("conv3dt_studio.architecture"),  # saved again by Keras
        lambda meta: meta["conv3dt_studio.architecture"]["input"].update(shape=[4, 9, 9, 9, 9]),
        lambda meta: meta["conv3dt_studio.architecture"]["layers"][0].update(name="renamed"),
        lambda meta: meta.update({"conv3dt_studio.architecture": "garbage"}),
    ],
    ids=["absent", "other-input", "other-layers", "malformed"],
)
def test_a_recording_that_does_not_fit_the_model_is_not_used(edit, doc, tmp_path):
    path = export_document(doc, "keras", tmp_path / "m.keras").path
    _rewrite_metadata(path, edit)
    notes: list[str] = []
    back = import_model(path, notes=notes)
    assert _of(back, "input")["shape"][0] == 1 and _of(back, "data")["batch_size"] == 1
    assert len(notes) == 1
