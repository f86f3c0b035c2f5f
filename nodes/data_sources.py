"""Where samples come from: a seeded generator, a .npy/.npz file (never unpickled), a TIFF stack,
a video or a folder of images (:mod:`.media`). A file's axes may be named (``axes``, e.g.
``"TZCYX"``) to map them to ours, (batch, time, channel, d1, d2, d3); shapes are read from headers
only, and a file is read only when its size fits the memory limit."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from conv3dt_studio.compute import ShapeError

from . import media
from .files import FileError, array_headers, check_fits, is_array_file, load_arrays

BLOBS = 3  # blobs per sample of the "blobs" generator


def generated_shape(params: dict[str, Any]) -> tuple[int, ...]:
    return (params["batch_size"], *params["sample_shape"])


def generate(params: dict[str, Any], seed: int | None = None) -> np.ndarray:
    """Seeded float32 samples: normal (0, 1), uniform [0, 1), zeros, ones, or moving blobs."""
    shape = generated_shape(params)
    dist = params["distribution"]
    if dist == "zeros":
        return np.zeros(shape, np.float32)
    if dist == "ones":
        return np.ones(shape, np.float32)
    rng = np.random.default_rng(params["seed"] if seed is None else seed)
    if dist == "normal":
        return rng.standard_normal(shape, dtype=np.float32)
    if dist == "blobs":
        return blobs(shape, rng)
    return rng.random(shape, dtype=np.float32)


def blobs_problem(sample_shape: tuple[int, ...]) -> str | None:
    """Why the blobs generator cannot fill samples of this shape (None: it can)."""
    if len(sample_shape) != 5:
        return (
            "Invalid value for `sample_shape`: the blobs generator needs 5 axes (time, channel, "
            f"d1, d2, d3). Received: sample_shape={list(sample_shape)}"
        )
    return None


def blobs(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Smooth 3-D Gaussian blobs gliding through the volume over time (bouncing off its walls):
    float32 (batch, time, channel, d1, d2, d3), each channel its own brightness per blob."""
    problem = blobs_problem(shape[1:])
    if problem:
        raise ShapeError(problem)
    b, t, c, *spatial = shape
    size = np.asarray(spatial, np.float64)
    start = rng.random((b, 1, BLOBS, 3)) * size
    velocity = rng.normal(0.0, 1.0, (b, 1, BLOBS, 3)) * size / 12  # voxels per time step
    travel = start + velocity * np.arange(t)[None, :, None, None]
    period = np.mod(travel, 2 * size)
    centre = np.where(period < size, period, 2 * size - period)  # (b, t, blob, axis)
    sigma = (0.07 + 0.07 * rng.random((b, 1, BLOBS, 1))) * size
    brightness = 0.5 + 0.5 * rng.random((b, BLOBS, c))
    profiles = [
        np.exp(-0.5 * ((np.arange(n) - centre[..., i, None]) / sigma[..., i, None]) ** 2)
        for i, n in enumerate(spatial)
    ]
    out = np.einsum("bkc,btkz,btky,btkx->btczyx", brightness, *profiles, optimize=True)
    return out.astype(np.float32)


def _pick(names: list[str], path: str, array_name: str) -> str:
    """The array of a file to use: the .npy's one, the named one, or a .npz's only one."""
    if names == [""]:  # .npy
        return ""
    if array_name:
        if array_name not in names:
            raise FileError(
                f"File `{path}` has no array `{array_name}`: it holds "
                f"{', '.join(sorted(names)) or 'nothing'}",
                param="array_name",
            )
        return array_name
    if len(names) != 1:
        raise FileError(
            f"File `{path}` holds {len(names)} arrays ({', '.join(sorted(names))}): "
            "set `array_name` to choose one",
            param="array_name",
        )
    return names[0]


ARRAY_SUFFIXES = (".npy", ".npz")
# what a Data node (and the CLI's --data) reads
DATA_FORMATS = (
    f"a .npy or .npz file, a TIFF stack ({', '.join(media.TIFF_SUFFIXES)}), a video "
    f"({', '.join(media.VIDEO_SUFFIXES)}) or a folder of images"
)
NO_FILE = f"No data file given: set `path` ({DATA_FORMATS})"


def _not_data(path: str) -> FileError:
    """A file that none of the readers takes: what is accepted, and what it is."""
    single_image = Path(path).suffix.lower() in media.IMAGE_SUFFIXES
    received = (
        "a single image (give the folder holding the images, one per frame)"
        if single_image
        else "a file without a NumPy or zip header"
    )
    return FileError(
        f"File `{path}` is not a data file: expected {DATA_FORMATS}. Received: {received}"
    )


def _header(path: str, array_name: str) -> tuple[media.Header, str]:
    """The array's header (media: from metadata; .npy/.npz: the chosen array's) and the name
    of that array in a .npz file."""
    if not path:
        raise FileError(NO_FILE)
    if media.kind_of(path) is not None:
        header = media.media_header(path)
        name = ""
    else:
        if Path(path).suffix.lower() not in ARRAY_SUFFIXES and not is_array_file(path):
            raise _not_data(path)  # (a damaged .npy or .npz is told as such by its reader)
        headers = array_headers(path)
        name = _pick(list(headers), path, array_name)
        header = media.Header(*headers[name], axes="")
    _check_numeric(header.dtype, path)
    return header, name


def load_file(
    path: str,
    array_name: str = "",
    limit: int | None = None,
    axes: str = "",
    progress: Callable[[float, str], None] | None = None,
) -> np.ndarray:
    """A numeric array from .npy/.npz, a TIFF, a video or a folder of images, as float32, with
    its axes mapped to ours (``axes``, else the file's own). Only that array is read, and only
    when its size (from the header) fits the memory limit."""
    header, name = _header(path, array_name)
    order = media.checked_axes(axes, header, path)
    if media.kind_of(path) is None:
        array = load_arrays(path, [name], limit)[name].astype(np.float32, copy=False)
    else:
        check_fits(path, 4 * math.prod(header.shape), limit)
        array = media.read_media(path, header, progress)
    return media.mapped(array, order) if order else array


def peek_shape(path: str, array_name: str = "", axes: str = "") -> tuple[int, ...]:
    """The array's shape from its header only (no pixel read), axes mapped as :func:`load_file`
    maps them, for live shape inference."""
    header, _ = _header(path, array_name)
    order = media.checked_axes(axes, header, path)
    return media.mapped_shape(header.shape, order) if order else header.shape


def _check_numeric(dtype: np.dtype, path: str) -> None:
    if dtype.kind not in "biuf":
        raise FileError(
            f"File `{path}` holds {dtype} values; expected numbers (bool, integer or float)"
        )
