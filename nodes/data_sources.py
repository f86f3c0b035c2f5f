"""Where samples come from: a seeded generator or a .npy/.npz file (never unpickled)."""

from __future__ import annotations

import zipfile
from typing import IO, Any

import numpy as np

from .files import FileError, load_arrays, require_file


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


def _pick(arrays: dict[str, np.ndarray], path: str, array_name: str) -> np.ndarray:
    if "" in arrays:  # .npy
        return arrays[""]
    if array_name:
        if array_name not in arrays:
            raise FileError(
                f"File `{path}` has no array `{array_name}`: it holds "
                f"{', '.join(sorted(arrays)) or 'nothing'}"
            )
        return arrays[array_name]
    if len(arrays) != 1:
        raise FileError(
            f"File `{path}` holds {len(arrays)} arrays ({', '.join(sorted(arrays))}): "
            "set `array_name` to choose one"
        )
    return next(iter(arrays.values()))


def load_file(path: str, array_name: str = "") -> np.ndarray:
    """A numeric array from .npy or .npz, as float32."""
    if not path:
        raise FileError("No data file given: set `path` (a .npy or .npz file)")
    a = _pick(load_arrays(path), path, array_name)
    if a.dtype.kind not in "biuf":
        raise FileError(f"File `{path}` holds a {a.dtype} array; expected numbers")
    return a.astype(np.float32, copy=False)


def peek_shape(path: str, array_name: str = "") -> tuple[int, ...]:
    """The array's shape from its header only (no data read), for live shape inference."""
    if not path:
        raise FileError("No data file given: set `path` (a .npy or .npz file)")
    p = require_file(path)
    try:
        if zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as zf:
                names = {n[:-4]: n for n in zf.namelist() if n.endswith(".npy")}
                if array_name:
                    if array_name not in names:
                        raise FileError(
                            f"File `{path}` has no array `{array_name}`: it holds "
                            f"{', '.join(sorted(names)) or 'nothing'}"
                        )
                    name = names[array_name]
                elif len(names) == 1:
                    name = next(iter(names.values()))
                else:
                    raise FileError(
                        f"File `{path}` holds {len(names)} arrays "
                        f"({', '.join(sorted(names))}): set `array_name` to choose one"
                    )
                with zf.open(name) as fh:
                    return _header_shape(fh, path)
        with open(p, "rb") as fh:
            return _header_shape(fh, path)
    except FileError:
        raise
    except Exception as exc:
        raise FileError(f"File `{p}` is not a readable .npy/.npz file: {exc}") from exc


def _header_shape(fh: IO[bytes], path: str) -> tuple[int, ...]:
    fmt = np.lib.format
    version = fmt.read_magic(fh)
    read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    shape, _fortran, dtype = read(fh)
    if dtype.kind not in "biuf" and not dtype.hasobject:
        raise FileError(
            f"File `{path}` holds {dtype} values; expected real numbers (bool, integer or float)"
        )
    if dtype.hasobject:
        raise FileError(
            f"File `{path}` holds Python objects (pickled data), which are never "
            "loaded; only numeric arrays are accepted"
        )
    return tuple(int(s) for s in shape)
