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

EMBEDDED = "embedded weights"  # how messages name the weights a graph document holds


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
        if not all_finite(ws):
            raise FileError(non_finite_message(source, layer.name))
        try:
            layer.set_weights(ws)
        except (ShapeError, ParameterError) as exc:
            raise FileError(f"`{source}`: {exc}") from exc
        _apply_optimizer_state(layer, arrays, ws, source)


def all_finite(arrays: Iterable[np.ndarray]) -> bool:
    """Whether every value of ``arrays`` (numbers) is finite."""
    return all(np.isfinite(np.asarray(a)).all() for a in arrays)


def non_finite_message(source: str, layer: str) -> str:
    """What a run and validation say of a layer whose weights in ``source`` hold NaN or Inf."""
    return f"`{source}`: Layer `{layer}`: weights must be finite. Received NaN or Inf"


def non_finite_layers(arrays: dict[str, np.ndarray], layers: dict[str, bool]) -> list[str]:
    """The layers of ``layers`` (name -> whether it uses a bias) whose kernel, or bias when it
    uses one, holds NaN or Inf in ``arrays`` (decoded weights); arrays a run would not give the
    layer (another layer's, a bias it does not use, a missing one) are not looked at."""
    out = []
    for name, use_bias in layers.items():
        keys = [f"{name}/kernel", *([f"{name}/bias"] if use_bias else [])]
        given = [arrays[k] for k in keys if k in arrays and np.asarray(arrays[k]).dtype.kind == "f"]
        if not all_finite(given):
            out.append(name)
    return out


# optimizer slots that are sums, means or maxima of squares or magnitudes: never negative (adam's,
# nadam's v, adamax's u, adagrad's accumulator, adadelta's two); rmsprop's velocity is a mean
# square too, momentum's (inertia, nesterov) velocity is not
NON_NEGATIVE_SLOTS = frozenset({"v", "u", "accumulator", "accumulated_grad", "accumulated_delta"})


def _apply_optimizer_state(
    layer: Conv3DTranspose, arrays: dict[str, np.ndarray], ws: list, source: str
) -> None:
    """Give ``layer``'s optimizer the state saved with its weights, if any, checked first: a
    damaged state (a missing entry, a step count that is not a whole number, NaN or negative
    values where the algorithm keeps none) is a :class:`FileError` naming the entry, never a
    silent fresh start. A state of another algorithm is dropped (the optimizer starts afresh,
    as Keras does when the optimizer differs)."""
    optimizer = layer.optimizer  # built by set_weights
    prefix = f"{layer.name}/optimizer/"
    state = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
    if not state or optimizer is None:
        return
    # the layer's own arrays, which its optimizer updates (compute offers no public accessor:
    # get_weights() gives copies; this module has always used it here)
    live = layer._weights()
    afresh = {"iterations": 0, "u_product": 1.0}
    saved = state.get("algorithm")
    if saved is not None and str(saved) != optimizer.algorithm:
        optimizer.set_state(afresh, live)
        return
    where = f"`{source}`: layer `{layer.name}`"
    for key in ("iterations", "u_product"):
        if key not in state:
            raise FileError(
                f"{where}: the optimizer state has no `{prefix}{key}`; save the weights again, "
                f"or remove every `{prefix}` entry to start the optimizer afresh"
            )
    algorithm = optimizer.algorithm
    checked = {k: _checked_entry(k, v, ws, algorithm, where, prefix) for k, v in state.items()}
    try:
        optimizer.set_state(checked, live)
    except KeyError as exc:  # a slot this algorithm keeps is missing
        names = {n for slots in optimizer.slots or [] for n in slots}
        given = {k.partition("/")[2] for k in state if "/" in k}
        if saved is None and not names & given:  # an unrecorded state of another algorithm
            optimizer.set_state(afresh, live)
            return
        raise FileError(
            f"{where}: the optimizer state has no `{prefix}{exc.args[0]}` ({optimizer.algorithm} "
            f"keeps {', '.join(sorted(names))} for each weight); save the weights again, or "
            f"remove every `{prefix}` entry to start the optimizer afresh"
        ) from None
    except ValueError:  # an unrecorded state that this algorithm could not have produced
        optimizer.set_state(afresh, live)


def _checked_entry(key: str, value: Any, ws: list, algorithm: str, where: str, prefix: str) -> Any:
    """One entry of a saved optimizer state, as ``set_state`` takes it; a :class:`FileError`
    naming it when it is damaged."""
    name = f"`{prefix}{key}`"
    if key == "algorithm":
        return value
    if key == "iterations":
        try:
            return _iterations(value)
        except ValueError:
            raise FileError(
                f"{where}: {name} must be a whole number >= 0 (the optimizer's step count). "
                f"Received: {_shown(value)}"
            ) from None
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise FileError(f"{where}: {name} holds {array.dtype} values; expected numbers")
    if key == "u_product":
        number = float(array.reshape(-1)[0]) if array.size == 1 else math.nan
        if not 0.0 <= number <= 1.0:
            raise FileError(
                f"{where}: {name} must be a number from 0 to 1 (a product of momentum "
                f"factors). Received: {_shown(value)}"
            )
        return number
    if not np.isfinite(array).all():
        raise FileError(
            f"{where}: optimizer slot {name} holds NaN or infinite values; expected finite numbers"
        )
    index, _, slot = key.partition("/")
    squares = slot in NON_NEGATIVE_SLOTS or (slot == "velocity" and algorithm == "rmsprop")
    if squares and (array < 0).any():
        raise FileError(
            f"{where}: optimizer slot {name} holds negative values; {algorithm}'s `{slot}` is "
            "never negative"
        )
    if index.isdigit() and int(index) < len(ws) and array.shape != np.shape(ws[int(index)]):
        raise FileError(
            f"{where}: optimizer slot {name} has shape {array.shape}; expected "
            f"{np.shape(ws[int(index)])}, the shape of the weight it belongs to"
        )
    return array


def _shown(value: Any) -> str:
    """A saved value as a message shows it: the number itself, or the array's shape."""
    array = np.asarray(value)
    return (
        repr(array.reshape(-1)[0].item()) if array.size == 1 else f"an array of shape {array.shape}"
    )


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


def decode_weights(data: object, source: str = EMBEDDED) -> dict[str, np.ndarray]:
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
        return EMBEDDED
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
