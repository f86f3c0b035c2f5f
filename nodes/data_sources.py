"""Where samples come from: a seeded generator or a .npy/.npz file (never unpickled)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .files import FileError, array_headers, load_arrays


def generated_shape(params: dict[str, Any]) -> tuple[int, ...]:
    return (params["batch_size"], *params["sample_shape"])


def generate(params: dict[str, Any], seed: int | None = None) -> np.ndarray:
    """Seeded float32 samples: normal (0, 1), uniform [0, 1), zeros or ones."""
    shape = generated_shape(params)
    dist = params["distribution"]
    if dist == "zeros":
        return np.zeros(shape, np.float32)
    if dist == "ones":
        return np.ones(shape, np.float32)
    rng = np.random.default_rng(params["seed"] if seed is None else seed)
    if dist == "normal":
        return rng.standard_normal(shape, dtype=np.float32)
    return rng.random(shape, dtype=np.float32)


def _pick(names: list[str], path: str, array_name: str) -> str:
    """The array of a file to use: the .npy's one, the named one, or a .npz's only one."""
    if names == [""]:  # .npy
        return ""
    if array_name:
        if array_name not in names:
            raise FileError(
                f"File `{path}` has no array `{array_name}`: it holds "
                f"{', '.join(sorted(names)) or 'nothing'}"
            )
        return array_name
    if len(names) != 1:
        raise FileError(
            f"File `{path}` holds {len(names)} arrays ({', '.join(sorted(names))}): "
            "set `array_name` to choose one"
        )
    return names[0]


def load_file(path: str, array_name: str = "", limit: int | None = None) -> np.ndarray:
    """A numeric array from .npy or .npz, as float32; only that array is read, and only when
    its declared size fits the memory limit."""
    if not path:
        raise FileError("No data file given: set `path` (a .npy or .npz file)")
    headers = array_headers(path)
    name = _pick(list(headers), path, array_name)
    _check_numeric(headers[name][1], path)
    return load_arrays(path, [name], limit)[name].astype(np.float32, copy=False)


def peek_shape(path: str, array_name: str = "") -> tuple[int, ...]:
    """The array's shape from its header only (no data read), for live shape inference."""
    if not path:
        raise FileError("No data file given: set `path` (a .npy or .npz file)")
    headers = array_headers(path)
    shape, dtype = headers[_pick(list(headers), path, array_name)]
    _check_numeric(dtype, path)
    return shape


def _check_numeric(dtype: np.dtype, path: str) -> None:
    if dtype.kind not in "biuf":
        raise FileError(
            f"File `{path}` holds {dtype} values; expected numbers (bool, integer or float)"
        )
