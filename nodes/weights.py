"""Weights (and optimizer state) as .npz files with named arrays - Keras kernel layout, no pickle.

Keys: ``<layer>/kernel``, ``<layer>/bias``, and with the optimizer state ``<layer>/optimizer/iterations``,
``<layer>/optimizer/u_product``, ``<layer>/optimizer/<weight index>/<slot>``. ``<layer>`` is the
Conv3DTranspose layer's name (its node's name, else its node id).
"""

from __future__ import annotations

import base64
import binascii
import math
import os
from collections.abc import Iterable
from typing import Any, TypeAlias

import numpy as np

from conv3dt_studio.compute import Conv3DTranspose, ParameterError, ShapeError

from .files import FileError, array_headers, load_arrays, save_npz


def conv_layers(layers: Iterable) -> list[Conv3DTranspose]:
    """The Conv3DTranspose layers in ``layers`` (unwrapping TimeDistributed)."""
    out = []
    for layer in layers:
        inner = getattr(layer, "layer", layer)
        if isinstance(inner, Conv3DTranspose):
            out.append(inner)
    return out


def weights_dict(layers: Iterable, include_optimizer: bool = True) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    for layer in conv_layers(layers):
        w = layer.get_weights()
        arrays[f"{layer.name}/kernel"] = w[0]
        if len(w) > 1:
            arrays[f"{layer.name}/bias"] = w[1]
        if include_optimizer and layer.optimizer is not None:
            for key, value in layer.optimizer.get_state().items():
                arrays[f"{layer.name}/optimizer/{key}"] = np.asarray(value)
    return arrays


def save_weights(path: str | os.PathLike, layers: Iterable, include_optimizer: bool = True) -> None:
    save_npz(path, weights_dict(layers, include_optimizer))


def apply_weights(
    arrays: dict[str, np.ndarray], layers: Iterable, source: str = "weights", partial: bool = False
) -> None:
    """Set each layer's weights (and optimizer state when present) from named arrays. A layer
    the arrays do not name is an error, or with ``partial`` keeps its own weights."""
    for layer in conv_layers(layers):
        key = f"{layer.name}/kernel"
        if key not in arrays and partial:
            continue
        if key not in arrays:
            names = sorted({k.split("/")[0] for k in arrays})
            raise FileError(
                f"`{source}` has no weights for layer `{layer.name}` (it has: "
                f"{', '.join(names) or 'nothing'})"
            )
        ws = [arrays[key]]
        if layer.config["use_bias"]:
            if f"{layer.name}/bias" not in arrays:
                raise FileError(f"`{source}` has no bias for layer `{layer.name}`")
            ws.append(arrays[f"{layer.name}/bias"])
        for name, w in zip(("kernel", "bias"), ws):
            kind = np.asarray(w).dtype
            if kind.kind not in "biuf":
                raise FileError(
                    f"`{source}`: the {name} of layer `{layer.name}` holds {kind} values; "
                    "expected numbers"
                )
        try:
            layer.set_weights(ws)
        except (ShapeError, ParameterError) as exc:
            raise FileError(f"`{source}`: {exc}") from exc
        prefix = f"{layer.name}/optimizer/"
        state = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
        optimizer = layer.optimizer  # built by set_weights
        if state and optimizer is not None:
            try:
                optimizer.set_state(
                    {
                        **state,
                        "iterations": _iterations(state["iterations"]),
                        "u_product": float(state["u_product"]),
                    },
                    layer._weights(),
                )
            except (KeyError, ValueError, TypeError, OverflowError):
                # saved by another algorithm (or damaged): the weights load, the optimizer starts
                # afresh - as Keras does when the optimizer differs
                optimizer.set_state({"iterations": 0, "u_product": 1.0}, layer._weights())


def _iterations(value: Any) -> int:
    """An optimizer's step count from a file: a finite, non-negative whole number."""
    array = np.asarray(value)
    number = float(array.reshape(-1)[0]) if array.size == 1 else math.nan
    if not math.isfinite(number) or number < 0 or number != int(number) or number >= 2**53:
        raise ValueError(f"iterations must be a whole number >= 0, not {value!r}")
    return int(number)


def read_weights_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The named arrays of a weights .npz file; a .npy file (one unnamed array, e.g. data given
    by mistake) is refused before it is read."""
    headers = array_headers(path)
    if "" in headers:
        shape, dtype = headers[""]
        raise FileError(
            f"`{path}` is not a weights file: expected a .npz file of named arrays "
            f"(<layer>/kernel, <layer>/bias). Received: a .npy file holding one {dtype} array "
            f"of shape {tuple(shape)}"
        )
    return load_arrays(path)


def load_weights(path: str | os.PathLike, layers: Iterable) -> None:
    apply_weights(read_weights_file(path), layers, source=str(path))


def encode_weights(arrays: dict[str, np.ndarray]) -> dict[str, dict]:
    """Named arrays as JSON data (for embedding in a graph document): dtype, shape and the
    little-endian bytes in base64."""
    out = {}
    for key, value in arrays.items():
        a = np.asarray(value)
        if a.dtype.kind == "U":  # a name (the optimizer's algorithm)
            text = base64.b64encode(str(a).encode("utf-8")).decode("ascii")
            out[key] = {"dtype": "utf8", "shape": [], "data": text}
            continue
        dtype = "<f4" if a.dtype.kind == "f" else "<i8"
        out[key] = {
            "dtype": dtype,
            "shape": list(a.shape),
            "data": base64.b64encode(a.astype(dtype).tobytes()).decode("ascii"),
        }
    return out


def decode_weights(data: object, source: str = "embedded weights") -> dict[str, np.ndarray]:
    """The inverse of :func:`encode_weights`; malformed data gives a :class:`FileError`."""
    if not isinstance(data, dict):
        raise FileError(f"{source}: expected an object of named arrays")
    out = {}
    for key, item in data.items():
        try:
            if item["dtype"] == "utf8":
                raw = base64.b64decode(item["data"], validate=True)
                out[key] = np.asarray(raw.decode("utf-8"))
                continue
            dtype = np.dtype({"<f4": "<f4", "<i8": "<i8"}[item["dtype"]])
            shape = tuple(_dimension(s) for s in item["shape"])
            raw = base64.b64decode(item["data"], validate=True)
            out[key] = (
                np.frombuffer(raw, dtype=dtype)
                .reshape(shape)
                .astype(np.float32 if dtype.kind == "f" else np.int64)
            )
        except (KeyError, TypeError, ValueError, OverflowError, binascii.Error) as exc:
            raise FileError(f"{source}: array `{key}` is malformed ({exc})") from exc
    return out


def _dimension(value: object) -> int:
    """One axis length of an embedded array: a non-negative integer that fits in 32 bits."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        raise ValueError(f"shape entries must be integers 0..2**31-1, not {value!r}")
    return value


# what a run or training takes as weights: a .npz path, named arrays, or None (embedded / seeded)
WeightsSource: TypeAlias = "str | os.PathLike[str] | dict[str, np.ndarray] | None"


def weights_source(weights: WeightsSource) -> str:
    """How to name ``weights`` in a message: the file, or what kind of arrays they are."""
    if weights is None:
        return "embedded weights"
    if isinstance(weights, dict):
        return "the trained weights"
    return str(weights)


def resolve_weights(weights: WeightsSource, doc: Any = None) -> dict[str, np.ndarray] | None:
    """Weights from a .npz path, a dict of arrays, or else the document's embedded weights."""
    if weights is None:
        embedded = doc.extras.get("weights") if doc is not None else None
        return decode_weights(embedded) if embedded else None
    if isinstance(weights, dict):
        return weights
    return read_weights_file(weights)


def apply_run_weights(weights: WeightsSource, doc: Any, layers: Iterable) -> None:
    """Give a run's or a training's layers their weights: ``weights`` (a .npz path, which must
    cover the graph, or named arrays - the editor's trained weights - which may cover one branch:
    the layers they do not name keep their seeded weights), else the document's embedded weights,
    else nothing (the seeded weights stay)."""
    arrays = resolve_weights(weights, doc)
    if arrays is not None:
        partial = isinstance(weights, dict)
        apply_weights(arrays, layers, source=weights_source(weights), partial=partial)
