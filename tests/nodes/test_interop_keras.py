"""Keras 3 (on JAX): exported .keras files open with keras.saving.load_model and predict as we
do; round trips keep the weights bit for bit; models built in Keras import; what cannot be
exported or imported is said in one line."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from interop_helpers import (  # noqa: E402
    TOLERANCE,
    all_cases,
    case_doc,
    chain_doc,
    reference,
    relative_error,
    stride_and_dilation,
)

from conv3dt_studio.nodes import run_document  # noqa: E402
from conv3dt_studio.nodes.interop import InteropError, export_document, import_model  # noqa: E402
from conv3dt_studio.nodes.interop.common import ARCH_PARAMS, model_spec  # noqa: E402
from conv3dt_studio.nodes.weights import decode_weights  # noqa: E402

# Keras's JAX variables on NumPy 2 (not ours)
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)
KERAS_CASES = [c for c in all_cases() if not stride_and_dilation(case_doc(*c))]
REFUSED = [c for c in all_cases() if stride_and_dilation(case_doc(*c))]


def _conv_params(doc) -> list[dict]:
    """Each layer's architecture, in chain order."""
    from conv3dt_studio.nodes import plan

    p = plan(doc)
    return [{k: doc.params(doc.upstream(td, "layer")[0])[k] for k in ARCH_PARAMS} for td in p.chain]


def test_the_sweep_has_enough_keras_cases():
    assert len([c for c in KERAS_CASES if c[0] == "sweep"]) >= 30


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``exported(kind, name)``: the case's .keras file, written once per module."""
    folder = tmp_path_factory.mktemp("keras")
    paths = {}

    def get(kind: str, name: str):
        if name not in paths:
            paths[name] = export_document(case_doc(kind, name), "keras", folder / f"{name}.keras")
        return paths[name]

    return get


def _predict(model, x: np.ndarray) -> np.ndarray:
    """Keras's own inference (one compiled XLA program: faster than op by op on JAX)."""
    return np.asarray(model.predict(x, verbose=0))


@pytest.mark.parametrize("kind,name", KERAS_CASES, ids=[n for _, n in KERAS_CASES])
def test_load_model_reproduces_our_prediction(kind, name, exported):
    x, want = reference(kind, name)
    model = keras.saving.load_model(exported(kind, name).path)
    assert relative_error(_predict(model, x), want) <= TOLERANCE


@pytest.mark.parametrize("kind,name", KERAS_CASES, ids=[n for _, n in KERAS_CASES])
def test_round_trip_keeps_weights_and_layers(kind, name, exported):
    """Weights bit for bit, the layers' parameters, names, the time length (recorded in the
    file: the .keras model itself takes any number of time steps) and the prediction."""
    doc = case_doc(kind, name)
    back = import_model(exported(kind, name).path)
    want = model_spec(doc).weights()
    got = decode_weights(back.extras["weights"])
    assert sorted(got) == sorted(want)
    assert all(np.array_equal(got[k], want[k]) for k in want)
    assert _conv_params(back) == _conv_params(doc)
    assert back.params("input")["shape"] == doc.params("input")["shape"]
    x, prediction = reference(kind, name)
    assert np.array_equal(run_document(back, data=x, backend="numpy").prediction, prediction)


@pytest.mark.parametrize("kind,name", REFUSED, ids=[n for _, n in REFUSED])
def test_stride_with_dilation_is_refused_in_one_line(kind, name, tmp_path):
    with pytest.raises(InteropError) as info:
        export_document(case_doc(kind, name), "keras", tmp_path / "model.keras")
    message = str(info.value)
    assert "Keras cannot export `dilation_rate`" in message
    assert "export to ONNX or PyTorch instead" in message
    assert message.startswith("node `conv_")
    assert "\n" not in message
    assert not (tmp_path / "model.keras").exists()


def test_the_refusal_names_node_and_values(tmp_path):
    doc = chain_doc((1, 1, 2, 2, 2), [{"stride": 2, "dilation_rate": 2}])
    with pytest.raises(InteropError, match=r"^node `conv_0`: Keras cannot export `dilation_rate` "):
        export_document(doc, "keras", tmp_path / "m.keras")
    assert "[2, 2, 2] with `stride` [2, 2, 2]" in str(
        pytest.raises(InteropError, export_document, doc, "keras", tmp_path / "m.keras").value
    )


# ---------------------------------------------------------------------------- foreign models
def _randomize(model, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            layer.set_weights([rng.standard_normal(w.shape).astype(np.float32) for w in ws])


def _functional_model():
    """Built directly in Keras: mixed formats, strides, dilation, output_padding, activations
    as layers (LeakyReLU(0.3), Softmax over channels_first channels, TimeDistributed(Activation))."""
    layers = keras.layers
    x = inputs = keras.Input(shape=(3, 4, 3, 2, 2), name="frames")
    conv = layers.Conv3DTranspose(
        4, (2, 3, 1), strides=(2, 1, 1), padding="same", output_padding=(1, 0, 0)
    )
    x = layers.TimeDistributed(conv, name="up")(x)
    x = layers.LeakyReLU(negative_slope=0.3, name="leaky")(x)
    conv = layers.Conv3DTranspose(
        2, 3, data_format="channels_first", dilation_rate=(1, 2, 1), activation="tanh", name="c2"
    )
    x = layers.TimeDistributed(conv)(x)
    conv = layers.Conv3DTranspose(3, 2, data_format="channels_first", use_bias=False, name="c3")
    x = layers.TimeDistributed(conv, name="td3")(x)
    x = layers.Softmax(axis=2, name="channel_softmax")(x)
    conv = layers.Conv3DTranspose(2, 1, strides=3, padding="valid", name="c4")
    x = layers.TimeDistributed(conv, name="td4")(x)
    x = layers.TimeDistributed(layers.Activation("gelu"), name="td_gelu")(x)
    model = keras.Model(inputs, x)
    _randomize(model, 0)
    return model


def _sequential_model():
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input(shape=(None, 2, 3, 3, 2)),
            layers.TimeDistributed(
                layers.Conv3DTranspose(3, 2, strides=2, padding="same", activation="swish")
            ),
            layers.TimeDistributed(layers.Conv3DTranspose(2, (1, 2, 3))),
            layers.ReLU(threshold=1.0),
        ]
    )
    _randomize(model, 1)
    return model


EXPECTED_ACTIVATIONS = {
    "functional": ["leaky_relu", "tanh", "softmax", "gelu"],
    "sequential": ["swish", "thresholded_relu"],
}


@pytest.mark.parametrize("kind", ["functional", "sequential"])
def test_a_model_built_in_keras_imports_and_predicts_the_same(kind, tmp_path):
    model = _functional_model() if kind == "functional" else _sequential_model()
    path = tmp_path / f"{kind}.keras"
    model.save(path)
    doc = import_model(path)
    assert [p["activation"] for p in _conv_params(doc)] == EXPECTED_ACTIVATIONS[kind]
    shape = (2, 2 if kind == "sequential" else 3, *model.inputs[0].shape[2:])
    x = np.random.default_rng(2).standard_normal(shape, dtype=np.float32)
    if kind == "sequential":  # time steps unknown: imported as 1; here 2
        (inp,) = [n.id for n in doc.nodes.values() if n.type == "input"]
        assert doc.params(inp)["shape"][0] == 1
        doc.set_param(inp, "shape", list(shape[1:]))
    ours = run_document(doc, data=x, backend="numpy").prediction
    assert relative_error(ours, _predict(model, x)) <= TOLERANCE


def test_an_imported_model_is_laid_out_left_to_right(tmp_path):
    path = tmp_path / "f.keras"
    _functional_model().save(path)
    doc = import_model(path)
    xs = {n.type: n.pos[0] for n in doc.nodes.values() if n.type != "conv3d_transpose"}
    assert xs["data"] < xs["input"] < xs["time_distributed"] < xs["prediction_6d"]
    tds = [n.pos[0] for n in doc.nodes.values() if n.type == "time_distributed"]
    assert tds == sorted(tds) and len(set(tds)) == len(tds) == 4
    assert doc.nodes["frames"].type == "input"


def test_unsupported_layers_are_all_listed(tmp_path):
    layers = keras.layers
    inputs = keras.Input(shape=(2, 2, 3, 3, 2))
    x = layers.TimeDistributed(layers.Conv3DTranspose(2, 2), name="ok")(inputs)
    x = layers.ReLU(max_value=6.0, name="relu_six")(x)
    x = layers.TimeDistributed(layers.Conv3DTranspose(2, 2, activation="leaky_relu"), name="lk")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(3, name="dense")(x)
    path = tmp_path / "model.keras"
    keras.Model(inputs, x).save(path)
    with pytest.raises(InteropError) as info:
        import_model(path)
    message = str(info.value)
    assert message.startswith("`model.keras`: cannot import layers relu_six (ReLU), lk (")
    assert "flatten (Flatten), dense (Dense): only TimeDistributed(Conv3DTranspose)" in message
    assert "activation 'leaky_relu'" in message
    assert "\n" not in message


def test_a_branching_model_is_refused(tmp_path):
    layers = keras.layers
    inputs = keras.Input(shape=(1, 1, 2, 2, 2))
    a = layers.TimeDistributed(layers.Conv3DTranspose(1, 1), name="a")(inputs)
    b = layers.TimeDistributed(layers.Conv3DTranspose(1, 1), name="b")(inputs)
    path = tmp_path / "branches.keras"
    keras.Model(inputs, layers.Add()([a, b])).save(path)
    with pytest.raises(InteropError, match="cannot import layers add"):
        import_model(path)
    keras.Model(inputs, [a, b]).save(path)
    with pytest.raises(InteropError, match="one input and one output"):
        import_model(path)
