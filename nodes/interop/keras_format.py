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
activations with our constants. Every other layer is listed in one error. Before Keras sees the
file, it is refused when it is not a zip archive, when its ``config.json`` declares a layer that
cannot be imported, and when the weights its ``config.json`` and its weights file declare would
not fit the memory limit (:func:`check_declared`: Keras allocates what a configuration declares
before anything can be checked). The file is loaded with ``safe_mode=True`` (no lambda code), under
a name ending in ``.keras`` (Keras requires it in lower case; ``MODEL.KERAS`` is ours too).
Weights that are not finite are refused, naming the tensor. A file exported by the studio comes
back with the time length and Data settings recorded in it (while its input and layers still match
them); otherwise a time axis of unknown length imports as 1 time step, and the import says so in a
note.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from conv3dt_studio.compute.activations import ELU_ALPHA, LEAKY_RELU_ALPHA, THRESHOLDED_RELU_THETA
from conv3dt_studio.compute.memory import UNLIMITED, mib
from conv3dt_studio.nodes import memory as node_memory
from conv3dt_studio.nodes.graph_document import GraphDocument

from .common import (
    ARCHITECTURE_KEY,
    ImportedLayer,
    InteropError,
    LayerSpec,
    ModelSpec,
    architecture,
    document_from_layers,
    finite_float32,
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
    check_declared(path)
    try:
        with keras_name(path) as named:
            model = keras.saving.load_model(named, compile=False, safe_mode=True)
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
    chain, bad = _read_layers(_loaded_layers(model), path.name)
    if not bad:
        _check_chain(keras, model, path.name)
    if bad:
        raise _unsupported(path.name, bad)
    if not chain:
        raise InteropError(f"`{path.name}`: no TimeDistributed(Conv3DTranspose) layer to import")
    layers = [_with_weights(c, path.name) for c in chain]
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


@contextlib.contextmanager
def keras_name(path: Path) -> Iterator[Path]:
    """``path`` under a name that ends in ``.keras``, which ``keras.saving.load_model`` requires
    (in lower case): a link to it in a temporary folder for ``MODEL.KERAS`` (a copy where links
    cannot be made). Our suffixes are case-insensitive everywhere."""
    if path.name.endswith(".keras"):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="conv3dt-keras-") as tmp:
        named = Path(tmp) / "model.keras"
        try:
            os.symlink(path.resolve(), named)
        except OSError:
            shutil.copyfile(path, named)
        yield named


def _unsupported(source: str, bad: list[str]) -> InteropError:
    return InteropError(
        f"`{source}`: cannot import layers {', '.join(bad)}: only "
        "TimeDistributed(Conv3DTranspose) layers, each optionally followed by an activation "
        "layer with our constants (Activation, LeakyReLU(0.3), ReLU(threshold=1), ELU, "
        "Softmax over the channels), are supported"
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


# ---------------------------------------------------------------------------- the layers
@dataclass(frozen=True)
class Described:
    """One layer of a model as Keras loaded it, or as the file's config.json declares it
    (before Keras builds anything): its class, its configuration and, for a TimeDistributed,
    the wrapped layer's."""

    name: str
    kind: str  # the class name
    config: dict[str, Any]
    inner_kind: str | None = None  # the layer a TimeDistributed wraps
    inner_config: dict[str, Any] | None = None
    shapes: tuple[Any, ...] = ()  # input shapes declared in config.json (build_config)
    conv: Any = None  # the loaded Conv3DTranspose (its weights); None from config.json


@dataclass(frozen=True)
class Chained:
    """A TimeDistributed(Conv3DTranspose) of the chain with our parameters (ARCH_PARAMS)."""

    layer: Described
    params: dict[str, Any]


def _loaded_layers(model: Any) -> list[Described]:
    out = []
    for layer in model.layers:
        inner = layer.layer if type(layer).__name__ == "TimeDistributed" else None
        inner_config = None
        if inner is not None:
            inner_config = {"groups": getattr(inner, "groups", 1), **inner.get_config()}
        out.append(
            Described(
                layer.name,
                type(layer).__name__,
                layer.get_config(),
                None if inner is None else type(inner).__name__,
                inner_config,
                conv=inner,
            )
        )
    return out


def _read_layers(layers: list[Described], source: str) -> tuple[list[Chained], list[str]]:
    """The chain's layers and the description of every layer that cannot be imported."""
    out: list[Chained] = []
    bad: list[str] = []
    previous: Chained | None = None  # the layer an activation layer may join
    for layer in layers:
        if layer.kind == "InputLayer":
            continue
        try:
            if layer.inner_kind == "Conv3DTranspose" and layer.inner_config is not None:
                params = _conv_params(layer.inner_config)
                previous = Chained(layer, params) if isinstance(params, dict) else None
                if previous is None:
                    bad.append(f"{layer.name} ({params})")
                else:
                    out.append(previous)
                continue
            if layer.inner_kind is not None:
                act = _activation_of(layer.inner_kind, layer.inner_config or {})
            else:
                act = _activation_of(layer.kind, layer.config)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise InteropError(
                f"`{source}`: layer `{layer.name}` has a malformed configuration ({exc!r})"
            ) from exc
        merged = _merge(previous, act) if previous is not None and act is not None else None
        previous = merged
        if merged is None:
            inner = layer.inner_kind
            described = layer.kind if inner is None else f"TimeDistributed({inner})"
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


def _conv_params(cfg: dict[str, Any]) -> dict[str, Any] | str:
    """Our parameters of a Conv3DTranspose configuration, or why it cannot be imported. Keys a
    configuration may leave out take Keras's defaults."""
    act = cfg.get("activation") or "linear"  # None: Keras's linear
    act = act if isinstance(act, str) else getattr(act, "__name__", str(act))
    data_format = cfg.get("data_format") or "channels_last"  # Keras's image_data_format
    ours = FROM_KERAS.get(act)
    if act == "softmax" and data_format == "channels_last":
        ours = "softmax"
    if ours is None:
        return f"TimeDistributed(Conv3DTranspose) with activation {act!r}"
    if cfg.get("groups", 1) != 1:
        return f"TimeDistributed(Conv3DTranspose) with groups={cfg['groups']}"
    op = cfg.get("output_padding")
    return {
        "n_filters": int(cfg["filters"]),
        "size": [int(v) for v in _triple(cfg["kernel_size"])],
        "stride": [int(v) for v in _triple(cfg.get("strides", 1))],
        "dilation_rate": [int(v) for v in _triple(cfg.get("dilation_rate", 1))],
        "activation": ours,
        "use_bias": bool(cfg.get("use_bias", True)),
        "padding": cfg.get("padding", "valid") == "same",
        "data_format": data_format,
        "output_padding": None if op is None else [int(v) for v in _triple(op)],
    }


def _with_weights(chained: Chained, source: str) -> ImportedLayer:
    """The loaded layer with its weights, refused when they are not finite."""
    layer, conv = chained.layer, chained.layer.conv
    weights = conv.get_weights()
    kernel = finite_float32(weights[0], source, f"{conv.name}/kernel")
    bias = None
    if chained.params["use_bias"]:
        bias = finite_float32(weights[1], source, f"{conv.name}/bias")
    return ImportedLayer(layer.name, conv.name, chained.params, kernel, bias)


def _triple(value: Any) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,) * 3


def _activation_of(kind: str, cfg: dict[str, Any]) -> dict[str, Any] | None:
    """What an activation layer computes, as {"name", ...constants}; None for other layers.
    Keys a configuration may leave out take Keras's defaults."""
    if kind == "Activation":
        act = cfg["activation"]
        return {"name": act if isinstance(act, str) else getattr(act, "__name__", "?")}
    if kind == "LeakyReLU":
        return {"name": "leaky_relu", "slope": float(cfg.get("negative_slope", 0.3))}
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


def _merge(prev: Chained, act: dict[str, Any]) -> Chained | None:
    """``prev`` with ``act`` as its activation, when it had none and ours has it."""
    if prev.params["activation"] != "linear":
        return None
    ours = _ours(act, prev.params["data_format"] == "channels_first")
    if ours is None:
        return None
    return Chained(prev.layer, {**prev.params, "activation": ours})


# ---------------------------------------------------------------------------- the memory guard
# Keras on JAX holds a layer's weights several times while it loads them (the variable it
# builds, the array read from model.weights.h5, its device copy), and the import then copies and
# encodes them: an import needs about this many times the weights a .keras file declares, plus
# the weights file itself. Measured (peak RSS above a tiny import's): 5.4 times for a valid
# 256 MiB kernel; 4.2 times a 2 GiB kernel declared in config.json only, 3.1 times a 2 GiB
# array declared in model.weights.h5 only.
LOAD_COPIES = 5
MAX_CONFIG_BYTES = 16 << 20  # config.json: a chain of thousands of layers takes a few MiB
KERAS_CONFIG = "config.json"
KERAS_WEIGHTS = ("model.weights.h5", "model.weights.npz")


@dataclass(frozen=True)
class Declared:
    """Weights declared by a .keras file, in bytes and values: by its config.json (the
    variables Keras builds) or by its weights file (the arrays Keras reads)."""

    nbytes: int
    values: int
    file: str  # config.json or the weights file's name
    largest: str = ""  # the largest kernel and its layer
    read: int = 0  # bytes of the file itself, read into memory whole

    def described(self, amount: str) -> str:
        return f"{self.file} declares {amount}{self.largest}"


def check_declared(path: Path) -> None:
    """Refuse ``path`` before Keras builds anything when its config.json declares layers that
    cannot be imported, declares weights that its weights file does not hold (Keras would build
    them all, then fail), or weights that, with the arrays its weights file declares, would not
    fit the memory limit: Keras allocates every variable that the configuration declares, and
    reads every array that the weights file declares, before any of it can be checked."""
    try:
        with zipfile.ZipFile(path) as zf:
            config = _config_json(zf, path.name)
            layers = _declared_layers(config, path.name)
            chain, bad = _read_layers(layers, path.name)
            if bad:
                raise _unsupported(path.name, bad)
            built = _declared_weights(layers, chain, path.name)
            stored = _stored_arrays(zf, path.name)
    except (OSError, zipfile.BadZipFile, RuntimeError, EOFError, zlib.error) as exc:
        raise InteropError(f"`{path.name}`: not a readable Keras model file ({exc})") from exc
    if stored is not None and built.values > stored.values:
        raise InteropError(
            f"`{path.name}`: {built.described(f'{built.values:,} weight values')}, but "
            f"{stored.file} holds {stored.values:,}: the weights do not match the configuration "
            "(a damaged or edited file)"
        )
    arrays, read = (0, 0) if stored is None else (stored.nbytes, stored.read)
    need = min(LOAD_COPIES * max(built.nbytes, arrays) + read, UNLIMITED)
    limit = node_memory.default_limit()
    if need > limit:
        declared = built.described(f"{mib(min(built.nbytes, UNLIMITED))} of weights")
        if stored is not None:
            declared += f"; {stored.described(f'{mib(min(arrays, UNLIMITED))} of arrays')}"
        raise InteropError(
            f"File `{path}` would take about {mib(need)} once loaded ({declared}), above the "
            f"memory limit of {mib(limit)}"
        )


def _config_json(zf: zipfile.ZipFile, source: str) -> Any:
    try:
        info = zf.getinfo(KERAS_CONFIG)
    except KeyError:
        raise InteropError(
            f"`{source}`: not a Keras 3 model file (the archive has no {KERAS_CONFIG})"
        ) from None
    if info.file_size > MAX_CONFIG_BYTES:
        raise InteropError(
            f"`{source}`: {KERAS_CONFIG} takes {mib(info.file_size)}; a model's configuration "
            f"takes at most {mib(MAX_CONFIG_BYTES)}"
        )
    try:
        return json.loads(zf.read(info))
    except (ValueError, RecursionError) as exc:  # JSON, UTF-8; nesting too deep
        raise InteropError(f"`{source}`: {KERAS_CONFIG} is not valid JSON ({exc})") from exc


def _declared_layers(config: Any, source: str) -> list[Described]:
    """The layers config.json declares (a Functional or Sequential model's list)."""
    inner = config.get("config") if isinstance(config, dict) else None
    entries = inner.get("layers") if isinstance(inner, dict) else None
    if not isinstance(entries, list):
        raise InteropError(
            f"`{source}`: {KERAS_CONFIG} does not declare a model of layers (a Functional or "
            "Sequential model's configuration has a list of layers)"
        )
    out = []
    for i, entry in enumerate(entries):
        layer = _class_and_config(entry)
        wrapped = layer[1].get("layer") if layer and layer[0] == "TimeDistributed" else None
        inner_layer = _class_and_config(wrapped)
        if layer is None or (wrapped is not None and inner_layer is None):
            raise InteropError(
                f"`{source}`: {KERAS_CONFIG}: layer {i} is malformed (expected an object with "
                '"class_name" and "config")'
            )
        kind, cfg = layer
        shapes = (_build_shape(entry), _build_shape(wrapped))
        name = str(cfg.get("name", entry.get("name", i)))
        if inner_layer is None:
            out.append(Described(name, kind, cfg, shapes=shapes))
        else:
            out.append(Described(name, kind, cfg, inner_layer[0], inner_layer[1], shapes))
    return out


def _class_and_config(entry: Any) -> tuple[str, dict[str, Any]] | None:
    if not isinstance(entry, dict):
        return None
    kind, cfg = entry.get("class_name"), entry.get("config")
    return (kind, cfg) if isinstance(kind, str) and isinstance(cfg, dict) else None


def _build_shape(entry: Any) -> Any:
    build = entry.get("build_config") if isinstance(entry, dict) else None
    return build.get("input_shape") if isinstance(build, dict) else None


def _declared_weights(layers: list[Described], chain: list[Chained], source: str) -> Declared:
    """The weights that Keras builds for ``chain`` from the declared shapes: a layer's input
    channels are those its build_config declares (Keras builds the layer with them), else its
    TimeDistributed's, else those of the tensor it is called on (from the Input's shape)."""
    first = next((x.config for x in layers if x.kind == "InputLayer"), {})
    shape = first.get("batch_shape") or first.get("batch_input_shape")
    nbytes = values = largest = 0
    biggest = ""
    for c in chain:
        p = c.params
        build_shape, inner_shape = c.layer.shapes
        if _rank(build_shape, 6):
            shape = build_shape
        data_format = p["data_format"]
        channels = _channel(inner_shape, data_format, 5) or _channel(shape, data_format, 6) or 1
        dims = (*p["size"], p["n_filters"], channels)
        if min(dims) < 1 or max(dims) >= 2**31:
            declared = f"{dims}"[:120]
            raise InteropError(
                f"`{source}`: layer `{c.layer.name}` declares a kernel of {declared} (kernel_size, "
                "filters, input channels): expected integers from 1 to 2**31 - 1"
            )
        layer_values = math.prod(p["size"]) * p["n_filters"] * channels
        layer_values += p["n_filters"] if p["use_bias"] else 0
        values += layer_values
        nbytes += _itemsize(c.layer.inner_config or {}) * layer_values
        if layer_values > largest:
            kernel = "×".join(map(str, dims))
            largest, biggest = layer_values, f", the largest a {kernel} kernel (`{c.layer.name}`)"
        shape = _output_shape(shape, p)
    return Declared(nbytes, values, KERAS_CONFIG, biggest)


def _rank(shape: Any, rank: int) -> bool:
    """Whether ``shape`` is a declared shape of ``rank`` axes (None or integers)."""
    return (
        isinstance(shape, list)
        and len(shape) == rank
        and all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in shape)
    )


def _channel(shape: Any, data_format: str, rank: int) -> int | None:
    """The channels of a declared input ``shape`` of ``rank`` axes as a layer of that
    ``data_format`` reads them; None when not declared."""
    if not _rank(shape, rank):
        return None
    value = shape[rank - 4] if data_format == "channels_first" else shape[-1]
    return value if isinstance(value, int) and value > 0 else None


def _output_shape(shape: Any, p: dict[str, Any]) -> list[int | None] | None:
    """The 6-D output shape of a layer with our parameters ``p`` on the input ``shape`` (Keras's
    lengths); None when the input's spatial lengths are not declared."""
    if not _rank(shape, 6):
        return None
    first = p["data_format"] == "channels_first"
    spatial = shape[3:] if first else shape[2:5]
    if not all(isinstance(n, int) and 0 < n < 2**31 for n in spatial):
        return None
    op = p["output_padding"] or [None] * 3
    out = [
        _out_len(n, k, s, d, p["padding"], o)
        for n, k, s, d, o in zip(spatial, p["size"], p["stride"], p["dilation_rate"], op)
    ]
    f = p["n_filters"]
    return [shape[0], shape[1], f, *out] if first else [shape[0], shape[1], *out, f]


def _out_len(n: int, k: int, s: int, d: int, same: bool, op: int | None) -> int:
    """Keras's ``deconv_output_length``."""
    k = (k - 1) * d + 1
    if op is None:
        return n * s if same else n * s + max(k - s, 0)
    return (n - 1) * s + k - 2 * (k // 2 if same else 0) + op


def _itemsize(cfg: dict[str, Any]) -> int:
    """Bytes per weight in a layer's dtype policy (4, or 8 for float64)."""
    dtype = cfg.get("dtype")
    if isinstance(dtype, dict):
        inner = dtype.get("config")
        dtype = inner.get("name") if isinstance(inner, dict) else None
    return 8 if isinstance(dtype, str) and "float64" in dtype else 4


def _stored_arrays(zf: zipfile.ZipFile, source: str) -> Declared | None:
    """The arrays that the weights file declares (Keras reads each whole before comparing its
    shape with its variable's), with the file itself (read into memory); None without one."""
    names = set(zf.namelist())
    name = next((n for n in KERAS_WEIGHTS if n in names), None)
    if name is None:
        return None
    size = zf.getinfo(name).file_size
    try:
        with zf.open(name) as fh:
            shapes = _h5_shapes(fh) if name.endswith(".h5") else _npz_shapes(fh)
    except Exception as exc:  # noqa: BLE001 - h5py and NumPy raise many kinds on damaged data
        raise InteropError(f"`{source}`: its weights ({name}) cannot be read ({exc})") from exc
    values = sum(math.prod(shape) for shape, _ in shapes)
    nbytes = sum(math.prod(shape) * itemsize for shape, itemsize in shapes)
    return Declared(nbytes, values, name, read=size)


def _h5_shapes(fh: Any) -> list[tuple[tuple[int, ...], int]]:
    """(shape, bytes per value) of every dataset of an HDF5 file, from its headers."""
    import h5py  # type: ignore[import-untyped]  # noqa: PLC0415 - comes with Keras

    out: list[tuple[tuple[int, ...], int]] = []

    def add(_name: str, item: Any) -> None:
        if isinstance(item, h5py.Dataset):
            out.append((tuple(item.shape or ()), item.dtype.itemsize))

    with h5py.File(fh, "r") as h5:
        h5.visititems(add)
    return out


def _npz_shapes(fh: Any) -> list[tuple[tuple[int, ...], int]]:
    """(shape, bytes per value) of every array of a .npz file, from its headers."""
    out = []
    with zipfile.ZipFile(fh) as npz:
        for info in npz.infolist():
            if info.filename.endswith(".npy"):
                with npz.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _order, dtype = read(member)
                    out.append((tuple(shape), dtype.itemsize))
    return out
