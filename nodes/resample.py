"""Resampling samples on the data path: crop or pad each sample to a shape, then shrink each of its
axes by an integer factor, by the mean of each block or by taking every n-th value.

Both act on the sample axes (the batch axis is left alone) and are anchored at the start: a crop
keeps the leading values, a pad appends zeros, and a mean drops the remainder of an axis that the
factor does not divide (a stride keeps it: ``x[::f]``). So a source cropped to a shape and the
same source cropped and shrunk stay aligned voxel for voxel.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from conv3dt_studio.compute import ShapeError

METHODS = ("mean", "stride")


def problem(params: dict[str, Any], shape: tuple[int, ...]) -> tuple[str, str] | None:
    """(parameter, message) when ``params`` do not fit data of ``shape`` (batch first)."""
    n = len(shape) - 1
    for name in ("factors", "shape") if params["crop_pad"] else ("factors",):
        value = list(params[name])
        if len(value) != n:
            return name, (
                f"Invalid value for `{name}`: expected {n} integers, one per sample axis of the "
                f"data ({', '.join(str(s) for s in shape[1:])}). Received: {name}={value}"
            )
    sizes = params["shape"] if params["crop_pad"] else shape[1:]
    if params["method"] == "mean" and any(s < f for s, f in zip(sizes, params["factors"])):
        return "factors", (
            f"Invalid value for `factors`: each must be at most its axis's length "
            f"({', '.join(str(s) for s in sizes)}) to average. Received: "
            f"factors={list(params['factors'])}"
        )
    return None


def resampled_shape(params: dict[str, Any], shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of resampled data of ``shape`` (batch first)."""
    sizes = params["shape"] if params["crop_pad"] else shape[1:]
    shrink = math.floor if params["method"] == "mean" else math.ceil
    return (shape[0], *(shrink(s / f) for s, f in zip(sizes, params["factors"])))


def resample(params: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """``x`` (batch first) cropped or padded to ``shape`` (when ``crop_pad``), then shrunk by
    ``factors`` with ``method``."""
    found = problem(params, x.shape)
    if found:
        raise ShapeError(found[1])
    if params["crop_pad"]:
        x = crop_pad(x, (x.shape[0], *params["shape"]))
    factors = tuple(params["factors"])
    if params["method"] == "stride":
        every = (slice(None),) + tuple(slice(None, None, f) for f in factors)
        return np.ascontiguousarray(x[every])
    kept = tuple(s - s % f for s, f in zip(x.shape[1:], factors))
    x = x[(slice(None),) + tuple(slice(0, k) for k in kept)]
    blocks = [x.shape[0]]
    for k, f in zip(kept, factors):
        blocks += [k // f, f]
    axes = tuple(range(2, 2 * len(factors) + 1, 2))
    return x.reshape(blocks).mean(axis=axes, dtype=np.float32)


def crop_pad(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``x`` cut or zero-padded at the end of each axis to ``shape``."""
    x = x[tuple(slice(0, n) for n in shape)]
    if x.shape == tuple(shape):
        return x
    return np.pad(x, [(0, n - s) for s, n in zip(x.shape, shape)])


def nearest_upsampled(x: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    """``x`` (batch first) with each value repeated ``factors[i]`` times along sample axis i:
    the nearest-neighbour inverse of a shrink by ``factors``."""
    for axis, f in enumerate(factors, start=1):
        if f > 1:
            x = np.repeat(x, f, axis=axis)
    return x
