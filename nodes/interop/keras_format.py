"""Export to and import from Keras 3 ``.keras`` files.

Keras runs on JAX here: ``KERAS_BACKEND`` is set to ``jax`` (unless already set) before Keras is
first imported, which happens only when a Keras file is written or read.

Export: ``keras.Input(shape=(None, *sample))`` (any number of time steps) followed, per layer, by
``TimeDistributed(Conv3DTranspose(...))`` named as the graph names them, and a built-in layer where
our activation's constants differ from the Keras function of that name: ``LeakyReLU(0.3)``,
``ReLU(threshold=1.0)`` for thresholded_relu (``x if x > 1 else 0``, as ours) and
``Softmax(axis=2)`` for softmax over a channels_first layer's channels. Keras's Conv3DTranspose
has the same output length, crop and output_padding as ours (ours follows Keras 3); it refuses
stride > 1 together with dilation > 1, so such a graph is refused with the node named.
``keras.saving.load_model(path)`` opens the file without custom objects. The file holds the
weights; its layers' initializers are "zeros" (a random one costs JAX an XLA compilation per
kernel shape at every load, seconds on a small CPU). The graph's settings that a Keras model has
no place for (the time length, the Data generator's settings, the seed) are recorded as the
architecture JSON under ``conv3dt_studio.architecture`` in the archive's ``metadata.json``, which
Keras writes and never reads back.

Import: any Keras 3 model that is one chain Input -> TimeDistributed(Conv3DTranspose)... with,
optionally, after each, one of the activation layers above (``Activation``, ``LeakyReLU``,
``ReLU``, ``ELU``, ``Softmax``, bare or in TimeDistributed) when it matches one of our 15
activations with our constants. Every other layer is listed in one error. The file is loaded with
``safe_mode=True`` (no lambda code); a file that is not a zip archive is refused before Keras sees
it. A file exported by the studio comes back with the time length and Data settings recorded in
it (while its input and layers still match them); otherwise a time axis of unknown length imports
as 1 time step, and the import says so in a note.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from conv3dt_studio.compute.activations import ELU_ALPHA, LEAKY_RELU_ALPHA, THRESHOLDED_RELU_THETA
from conv3dt_studio.nodes.graph_document import GraphDocument

from .common import (
    ARCHITECTURE_KEY,
    ImportedLayer,
    InteropError,
    LayerSpec,
    ModelSpec,
    architecture,
    document_from_layers,
    generator_params,
    read_architecture,
    replace_path,
    require,
    temporary_folder_beside,
)

KERAS_METADATA = "metadata.json"  # in the .keras zip: Keras writes it on save, never reads it
MAX_METADATA_BYTES = 1 << 20

# our activation -> the Keras activation string with the same function (on the Conv3DTranspose)
SAME_NAME = {
    "elu": "elu",
    "exponential": "exponential",
    "gelu": "gelu",  # Keras 3: approximate=False by default, the erf form
    "hard_sigmoid": "hard_sigmoid",  # Keras 3: relu6(x + 3) / 6
    "linear": "linear",
    "relu": "relu",
    "selu": "selu",
    "sigmoid": "sigmoid",
    "softplus": "softplus",
    "softsign": "softsign",
    "swish": "silu",
    "tanh": "tanh",
}
# Keras activation names (and aliases) read back as ours
FROM_KERAS = {**{v: k for k, v in SAME_NAME.items()}, "swish": "swish", "silu": "swish"}


def keras_module(what: str) -> Any:
    """Keras, on JAX unless KERAS_BACKEND says otherwise."""
    if os.environ.setdefault("KERAS_BACKEND", "jax") == "jax":
        require("jax", what)
    return require("keras", what)


# ---------------------------------------------------------------------------- export
def refusal(layer: LayerSpec) -> str | None:
    """Why Keras cannot hold this layer, or None."""
    stride, dilation = layer.params["stride"], layer.params["dilation_rate"]
    if max(stride) > 1 and max(dilation) > 1:
        node = layer.node or layer.conv_name
        return (
            f"node `{node}`: Keras cannot export `dilation_rate` {list(dilation)} with `stride` "
            f"{list(stride)} (Conv3DTranspose refuses dilation > 1 with stride > 1); export to "
            "ONNX or PyTorch instead"
        )
    return None


def build_model(spec: ModelSpec) -> Any:
    """The Keras model of ``spec`` with its weights set."""
    reasons = [r for r in map(refusal, spec.layers) if r]
    if reasons:
        raise InteropError("; ".join(reasons))
    keras = keras_module("Export to Keras")
    try:
        return _build(keras, spec)
    except (ValueError, TypeError) as exc:  # e.g. a layer name Keras does not accept
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InteropError(f"Keras refuses the model: {first}") from exc


def _build(keras: Any, spec: ModelSpec) -> Any:
    """Input -> TimeDistributed(Conv3DTranspose) [-> activation layer] per layer."""
    layers = keras.layers
    x = inputs = keras.Input(shape=(None, *spec.input_shape[1:]), name=spec.input_name)
    convs = []
    for layer in spec.layers:
        p = layer.params
        inner, after = _activation_layers(keras, layer)
        conv = layers.Conv3DTranspose(
            filters=p["n_filters"],
            kernel_size=tuple(p["size"]),
            strides=tuple(p["stride"]),
            padding="same" if p["padding"] else "valid",
            output_padding=None if p["output_padding"] is None else tuple(p["output_padding"]),
            data_format=p["data_format"],
            dilation_rate=tuple(p["dilation_rate"]),
            activation=inner,
            use_bias=p["use_bias"],
            # the weights are set below; a random initializer would cost JAX a compilation per
            # kernel shape, here and in every load_model
            kernel_initializer="zeros",
            bias_initializer="zeros",
            name=layer.conv_name,
        )
        x = layers.TimeDistributed(conv, name=layer.name)(x)
        if after is not None:
            x = after(x)
        convs.append((conv, layer))
    model = keras.Model(inputs, x, name="conv3dt_studio_graph")
    for conv, layer in convs:
        conv.set_weights([layer.kernel] if layer.bias is None else [layer.kernel, layer.bias])
    return model


def _activation_layers(keras: Any, layer: LayerSpec) -> tuple[str, Any]:
    """(activation string for the Conv3DTranspose, layer applied after it or None)."""
    act = layer.params["activation"]
    name = f"{layer.name}_{act}"
    if act in SAME_NAME:
        return SAME_NAME[act], None
    if act == "softmax" and not layer.channels_first:
        return "softmax", None  # Keras's softmax is over the last axis: the channels here
    if act == "softmax":
        return "linear", keras.layers.Softmax(axis=2, name=name)
    if act == "leaky_relu":
        return "linear", keras.layers.LeakyReLU(negative_slope=LEAKY_RELU_ALPHA, name=name)
    if act == "thresholded_relu":
        return "linear", keras.layers.ReLU(threshold=THRESHOLDED_RELU_THETA, name=name)
    raise InteropError(f"layer `{layer.name}`: activation {act!r} has no Keras form")


def export_keras(spec: ModelSpec, path: Path) -> None:
    """Save ``spec`` as a .keras file at ``path`` (written beside it, then renamed)."""
    model = build_model(spec)
    with temporary_folder_beside(path) as tmp:
        saved = tmp / "saved.keras"
        model.save(saved)
        target = tmp / "model.keras"
        _record_architecture(saved, target, architecture(spec))
        replace_path(target, path)


def _record_architecture(src: Path, dst: Path, arch: dict[str, Any]) -> None:
    """Copy the .keras zip ``src`` to ``dst`` with ``arch`` added to its metadata.json."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename == KERAS_METADATA:
                meta = json.loads(zin.read(info))
                meta[ARCHITECTURE_KEY] = arch
                zout.writestr(info, json.dumps(meta, indent=4))
                continue
            with zin.open(info) as fin, zout.open(info, "w") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)


# ---------------------------------------------------------------------------- import
def import_keras(path: Path, notes: list[str] | None = None) -> GraphDocument:
    """A graph document from a .keras file (see the module docstring); what the import chose
    itself is appended to ``notes``."""
    if not zipfile.is_zipfile(path):
        raise InteropError(
            f"`{path}` is not a Keras model file (a .keras file is a zip archive; this is not one)"
        )
    keras = keras_module("Import from Keras")
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InteropError(f"`{path.name}`: Keras cannot open it: {first}") from exc
    inputs = getattr(model, "inputs", None) or []
    outputs = getattr(model, "outputs", None) or []
    if len(inputs) != 1 or len(outputs) != 1:
        raise InteropError(
            f"`{path.name}`: expected a model with one input and one output. "
            f"Received: {len(inputs)} inputs, {len(outputs)} outputs"
        )
    shape = tuple(inputs[0].shape)
    if len(shape) != 6 or any(s is None for s in shape[2:]):
        raise InteropError(
            f"`{path.name}`: expected a 6-D input (batch, time, ...) with known sizes after "
            f"time. Received: input shape {shape}"
        )
    layers, bad = _read_layers(keras, model)
    if not bad:
        _check_chain(keras, model, path.name)
    if bad:
        raise InteropError(
            f"`{path.name}`: cannot import layers {', '.join(bad)}: only "
            "TimeDistributed(Conv3DTranspose) layers, each optionally followed by an activation "
            "layer with our constants (Activation, LeakyReLU(0.3), ReLU(threshold=1), ELU, "
            "Softmax over the channels), are supported"
        )
    if not layers:
        raise InteropError(f"`{path.name}`: no TimeDistributed(Conv3DTranspose) layer to import")
    input_name = _input_name(model)
    arch = _recorded_architecture(path, shape, layers)
    time_steps = shape[1]
    if time_steps is None and arch is not None:
        time_steps = int(arch["input"]["shape"][0])
    if time_steps is None:
        time_steps = 1
        if notes is not None:
            notes.append(
                f"`{path}`: the model takes any number of time steps; the graph's Input "
                f"`{input_name}` and Data use 1 (shape {[1, *shape[2:]]}): set the Input's "
                "`shape` to your data's time length"
            )
    return document_from_layers(
        input_name,
        (time_steps, *shape[2:]),
        layers,
        path.name,
        data=None if arch is None else generator_params(arch.get("data")),
        seed=0 if arch is None else int(arch.get("seed", 0) or 0),
    )


def _recorded_architecture(
    path: Path, shape: tuple, layers: list[ImportedLayer]
) -> dict[str, Any] | None:
    """The architecture JSON our export recorded in the file, while it still describes the
    model (the same sample shape after time, the same layers); None for any other file."""
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(KERAS_METADATA)
            if info.file_size > MAX_METADATA_BYTES:
                return None
            meta = json.loads(zf.read(info))
    except (KeyError, OSError, ValueError, zipfile.BadZipFile):
        return None
    recorded = meta.get(ARCHITECTURE_KEY) if isinstance(meta, dict) else None
    if recorded is None:
        return None
    try:
        arch = read_architecture(recorded, path.name)
    except InteropError:
        return None
    same_sample = [int(s) for s in arch["input"]["shape"][1:]] == list(shape[2:])
    names = [x.get("name") if isinstance(x, dict) else None for x in arch["layers"]]
    same_layers = names == [x.name for x in layers]
    return arch if same_sample and same_layers else None


def _input_name(model: Any) -> str:
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            return layer.name
    return "input"


def _read_layers(keras: Any, model: Any) -> tuple[list[ImportedLayer], list[str]]:
    """The chain's layers and the description of every layer that cannot be imported."""
    out: list[ImportedLayer] = []
    bad: list[str] = []
    previous: ImportedLayer | None = None  # the layer an activation layer may join
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "InputLayer":
            continue
        inner = layer.layer if kind == "TimeDistributed" else None
        if inner is not None and type(inner).__name__ == "Conv3DTranspose":
            imported = _conv_layer(layer, inner)
            previous = imported if isinstance(imported, ImportedLayer) else None
            if previous is None:
                bad.append(f"{layer.name} ({imported})")
            else:
                out.append(previous)
            continue
        act = _activation_of(inner if inner is not None else layer)
        merged = _merge(previous, act) if previous is not None and act is not None else None
        previous = merged
        if merged is None:
            described = f"TimeDistributed({type(inner).__name__})" if inner is not None else kind
            bad.append(f"{layer.name} ({described})")
            continue
        out[-1] = merged
    return out, bad


def _check_chain(keras: Any, model: Any, source: str) -> None:
    """Each layer takes the previous one's output: one chain, no branches (a Sequential model
    is one by construction)."""
    if isinstance(model, keras.Sequential):
        return
    previous = model.inputs[0]
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        try:
            taken = layer.input
        except (AttributeError, ValueError) as exc:
            raise InteropError(
                f"`{source}`: layer `{layer.name}` is used more than once or has no single "
                "input: only one chain of layers can be imported"
            ) from exc
        if taken is not previous:
            raise InteropError(
                f"`{source}`: layer `{layer.name}` does not take the previous layer's output: "
                "only one chain of layers (no branches) can be imported"
            )
        previous = layer.output
    if previous is not model.outputs[0]:
        raise InteropError(f"`{source}`: the model's output is not its last layer's")


def _conv_layer(td: Any, conv: Any) -> ImportedLayer | str:
    """The layer, or why it cannot be imported."""
    cfg = conv.get_config()
    act = cfg.get("activation")
    act = act if isinstance(act, str) else getattr(act, "__name__", str(act))
    ours = FROM_KERAS.get(act)
    if act == "softmax" and cfg["data_format"] == "channels_last":
        ours = "softmax"
    if ours is None:
        return f"TimeDistributed(Conv3DTranspose) with activation {act!r}"
    if getattr(conv, "groups", 1) != 1:
        return f"TimeDistributed(Conv3DTranspose) with groups={conv.groups}"
    weights = conv.get_weights()
    op = cfg.get("output_padding")
    params = {
        "n_filters": int(cfg["filters"]),
        "size": [int(v) for v in cfg["kernel_size"]],
        "stride": [int(v) for v in cfg["strides"]],
        "dilation_rate": [int(v) for v in cfg["dilation_rate"]],
        "activation": ours,
        "use_bias": bool(cfg["use_bias"]),
        "padding": cfg["padding"] == "same",
        "data_format": cfg["data_format"],
        "output_padding": None if op is None else [int(v) for v in _triple(op)],
    }
    bias = np.asarray(weights[1], np.float32) if params["use_bias"] else None
    kernel = np.asarray(weights[0], np.float32)
    return ImportedLayer(td.name, conv.name, params, kernel, bias)


def _triple(value: Any) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,) * 3


def _activation_of(layer: Any) -> dict[str, Any] | None:
    """What an activation layer computes, as {"name", ...constants}; None for other layers."""
    if layer is None:
        return None
    kind = type(layer).__name__
    cfg = layer.get_config()
    if kind == "Activation":
        act = cfg["activation"]
        return {"name": act if isinstance(act, str) else getattr(act, "__name__", "?")}
    if kind == "LeakyReLU":
        return {"name": "leaky_relu", "slope": float(cfg["negative_slope"])}
    if kind == "ReLU":
        return {
            "name": "relu_layer",
            "max_value": cfg.get("max_value"),
            "slope": float(cfg.get("negative_slope", 0.0)),
            "threshold": float(cfg.get("threshold", 0.0)),
        }
    if kind == "ELU":
        return {"name": "elu_layer", "alpha": float(cfg.get("alpha", 1.0))}
    if kind == "Softmax":
        return {"name": "softmax_layer", "axis": cfg.get("axis", -1)}
    return None


def _ours(act: dict[str, Any], channels_first: bool) -> str | None:
    """Our activation equal to ``act`` applied to a layer's 6-D output, or None."""
    name = act["name"]
    channel_axes = (2, -4) if channels_first else (5, -1)
    if name == "leaky_relu":
        return "leaky_relu" if math.isclose(act["slope"], LEAKY_RELU_ALPHA) else None
    if name == "relu_layer":
        if act["max_value"] is not None or act["slope"] != 0.0:
            return None
        if act["threshold"] == 0.0:
            return "relu"
        return "thresholded_relu" if act["threshold"] == THRESHOLDED_RELU_THETA else None
    if name == "elu_layer":
        return "elu" if act["alpha"] == ELU_ALPHA else None
    if name == "softmax_layer":
        axis = act["axis"]
        axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
        return "softmax" if len(axes) == 1 and axes[0] in channel_axes else None
    if name == "softmax":  # Activation("softmax"): the last axis
        return None if channels_first else "softmax"
    return FROM_KERAS.get(name)


def _merge(prev: ImportedLayer, act: dict[str, Any]) -> ImportedLayer | None:
    """``prev`` with ``act`` as its activation, when it had none and ours has it."""
    if prev.params["activation"] != "linear":
        return None
    ours = _ours(act, prev.params["data_format"] == "channels_first")
    if ours is None:
        return None
    return ImportedLayer(
        prev.name, prev.conv_name, {**prev.params, "activation": ours}, prev.kernel, prev.bias
    )
