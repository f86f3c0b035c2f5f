"""Weights (and optimizer state) as .npz files with named arrays - Keras kernel layout, no pickle.

Keys: ``<layer>/kernel``, ``<layer>/bias``, and with the optimizer state ``<layer>/optimizer/iterations``,
``<layer>/optimizer/u_product``, ``<layer>/optimizer/<weight index>/<slot>``. ``<layer>`` is the
Conv3DTranspose layer's name (its node's name, else its node id).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np

from compute import Conv3DTranspose, ShapeError

from .files import FileError, load_arrays, save_npz


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


def apply_weights(arrays: dict[str, np.ndarray], layers: Iterable, source: str = "weights") -> None:
    """Set each layer's weights (and optimizer state when present) from named arrays."""
    for layer in conv_layers(layers):
        key = f"{layer.name}/kernel"
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
        try:
            layer.set_weights(ws)
        except ShapeError as exc:
            raise FileError(f"`{source}`: {exc}") from exc
        prefix = f"{layer.name}/optimizer/"
        state = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
        if state:
            layer.optimizer.set_state(
                {
                    **state,
                    "iterations": int(state["iterations"]),
                    "u_product": float(state["u_product"]),
                },
                layer._weights(),
            )


def load_weights(path: str | os.PathLike, layers: Iterable) -> None:
    apply_weights(load_arrays(path), layers, source=str(path))
