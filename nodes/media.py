"""TIFF stacks, videos and folders of images as samples, read with each format's own library:
tifffile for TIFF, imageio with its ffmpeg plugin for videos, imageio (Pillow) for image files.

Our axes are (batch, time, channel, d1, d2, d3), named by the letters ``B T C Z Y X``. An ``axes``
string names each of a file's axes in order (``"TZCYX"``); an axis it leaves out has length 1.
Without one, a TIFF's own metadata names them (ImageJ or OME; ``S``, the samples of an RGB pixel,
is a channel and ``I``, an image sequence, is time) and a video or a folder of images is
``TYXC``: frames are time, colour the channels, height and width two spatial axes, depth 1.

Shapes come from headers and metadata only (cached per file version, since the editor infers
shapes on every edit); pixels are read only by :func:`read_media`, frame by frame with progress.
Every failure is a :class:`FileError` of one line naming the file; a TIFF holding less than it
declares (truncated, or damaged: tifffile then reads what it can and only logs) is one too.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .files import FileError, require_file

OUR_AXES = "BTCZYX"
AXES_TEXT = "letters from B (batch), T (time), C (channel), Z, Y, X (d1, d2, d3), each at most once"
FRAME_AXES = "TYXC"  # a video or a folder of images: frames, height, width, colour
TIFF_SUFFIXES = (".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp")
# a TIFF's metadata axes (tifffile's codes) in ours
_TIFF_TO_OURS = {"T": "T", "C": "C", "S": "C", "Z": "Z", "Y": "Y", "X": "X", "I": "T"}

Progress = Callable[[float, str], None]


class AxesError(FileError):
    """The ``axes`` parameter does not fit the file (the problem is the parameter's)."""

    param = "axes"


@dataclass(frozen=True)
class Header:
    """A file's array as its header describes it, before any pixel is read."""

    shape: tuple[int, ...]
    dtype: np.dtype
    axes: str  # the file's own axes in our letters; "" when it names none we can use
    native: str = ""  # a TIFF's axes in tifffile's letters (its metadata, or Q: unnamed)


def kind_of(path: str) -> str | None:
    """``"tiff"``, ``"video"`` or ``"folder"`` (of images); None for anything else (.npy/.npz)."""
    if os.path.isdir(path):
        return "folder"
    suffix = Path(path).suffix.lower()
    if suffix in TIFF_SUFFIXES:
        return "tiff"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


# ---------------------------------------------------------------------- axes
def checked_axes(axes: str, header: Header, path: str) -> str:
    """The axes to map ``path``'s array with: ``axes`` when given (checked against the header),
    else the file's own."""
    if axes != axes.upper() or any(a not in OUR_AXES for a in axes) or len(set(axes)) < len(axes):
        raise AxesError(f"Invalid value for `axes`: expected {AXES_TEXT}. Received: axes={axes!r}")
    if axes and len(axes) != len(header.shape):
        raise AxesError(
            f"Invalid value for `axes`: file `{path}` has {len(header.shape)} axes (shape "
            f"{_fmt(header.shape)}{_own(header)}) but axes={axes!r} names {len(axes)}"
        )
    if not axes and not header.axes and header.native:
        raise AxesError(
            f"File `{path}` does not name its axes as ours (shape {_fmt(header.shape)}, TIFF "
            f"axes {header.native}): set `axes` to {len(header.shape)} {AXES_TEXT}"
        )
    return axes or header.axes


def mapped_shape(shape: tuple[int, ...], axes: str) -> tuple[int, ...]:
    """``shape`` (a file's, in the order ``axes`` names) as ours: (B, T, C, Z, Y, X)."""
    return tuple(shape[axes.index(a)] if a in axes else 1 for a in OUR_AXES)


def mapped(array: np.ndarray, axes: str) -> np.ndarray:
    """``array`` (axes named by ``axes``) moved into our order, missing axes of length 1."""
    present = [a for a in OUR_AXES if a in axes]
    moved = np.transpose(array, [axes.index(a) for a in present])
    return moved.reshape(mapped_shape(array.shape, axes))


def _fmt(shape: tuple[int, ...]) -> str:
    return "×".join(str(s) for s in shape)


def _own(header: Header) -> str:
    own = header.axes or header.native
    return f", its own axes {own}" if own else ""


# ---------------------------------------------------------------------- headers
def media_header(path: str) -> Header:
    """The shape, dtype and own axes of a TIFF, a video or a folder of images, from headers and
    metadata only."""
    p = Path(path)
    if kind_of(path) == "folder":
        return _cached_header(str(p), _folder_signature(p))
    st = require_file(p).stat()
    return _cached_header(str(p), (st.st_mtime_ns, st.st_size))


@functools.lru_cache(maxsize=64)
def _cached_header(path: str, signature: Any) -> Header:
    kind = kind_of(path)
    if kind == "folder":
        return _folder_header(Path(path))
    if kind == "video":
        return _video_header(Path(path))
    return _tiff_header(Path(path))


class _Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # tifffile starts its messages with the object at fault, e.g. "<tifffile.TiffFile 'a.tif'>"
        self.messages.append(re.sub(r"^<[^>]*>\s*", "", record.getMessage()))


@contextlib.contextmanager
def _library_errors(logger: str) -> Iterator[list[str]]:
    """Collect the errors a library logs for a while instead of printing them (tifffile logs a
    damaged file and goes on with what it could read): they come back as our one line."""
    log = logging.getLogger(logger)
    handler = _Collected()
    saved = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.ERROR)
    log.propagate = False
    try:
        yield handler.messages
    finally:
        log.removeHandler(handler)
        log.setLevel(saved[0])
        log.propagate = saved[1]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _tiff_header(p: Path) -> Header:
    import tifffile

    try:
        with _library_errors("tifffile") as errors, tifffile.TiffFile(p) as tif:
            series = tif.series[0]
            shape, dtype, own = (
                tuple(int(s) for s in series.shape),
                np.dtype(series.dtype),
                series.axes,
            )
            end = _tiff_data_end(series)
            _refuse_damage(p, tif, series, errors)
    except FileError:
        raise
    except Exception as exc:
        raise FileError(f"File `{p}` is not a readable TIFF file: {_first_line(exc)}") from exc
    size = p.stat().st_size
    if end > size:
        raise FileError(
            f"File `{p}` is truncated: its pixel data end at byte {end:,}, the file has "
            f"{size:,} bytes"
        )
    ours = "".join(_TIFF_TO_OURS.get(a, "?") for a in own)
    if "?" in ours or len(set(ours)) < len(ours):
        ours = ""  # the file's axes have no (unique) meaning here: `axes` must name them
    return Header(shape, dtype, ours, own)


def _refuse_damage(p: Path, tif: Any, series: Any, errors: list[str]) -> None:
    """A :class:`FileError` when a TIFF holds less than it declares: tifffile reads what it can
    of a truncated or damaged file (its first page, say) and only logs the damage (``errors``)."""
    declared = tif.imagej_metadata.get("images") if tif.is_imagej else None
    images = math.prod(series.shape) // max(math.prod(series.keyframe.shape), 1)
    why = None
    if isinstance(declared, int) and declared > images:
        why = f"its ImageJ metadata declares {declared:,} images (pages), the file holds {images:,}"
    elif errors:
        why = f"{errors[0]} (the file has {p.stat().st_size:,} bytes)"
    if why:
        raise FileError(f"File `{p}` is truncated or damaged: {why}")


def _tiff_data_end(series: Any) -> int:
    """Where the series' pixel data end in the file (from the page headers)."""
    if series.dataoffset is not None:
        return int(series.dataoffset) + int(series.nbytes)
    ends = [
        int(o) + int(c)
        for page in series.pages
        if page is not None
        for o, c in zip(page.dataoffsets, page.databytecounts)
    ]
    return max(ends, default=0)


def _video_reader(p: Path) -> Any:
    import imageio.v2 as iio

    try:
        return iio.get_reader(p, format="FFMPEG")
    except Exception as exc:
        raise FileError(f"File `{p}` is not a readable video: {_first_line(exc)}") from exc


def _video_header(p: Path) -> Header:
    reader = _video_reader(p)
    try:
        width, height = reader.get_meta_data()["size"]
        frames = int(reader.count_frames())
    except Exception as exc:
        raise FileError(f"File `{p}` is not a readable video: {_first_line(exc)}") from exc
    finally:
        reader.close()
    if frames < 1:
        raise FileError(f"File `{p}` is a video without frames")
    return Header((frames, int(height), int(width), 3), np.dtype(np.uint8), FRAME_AXES)


def image_files(folder: Path) -> list[Path]:
    """The images of a folder, sorted by name (hidden files left out)."""
    try:
        entries = sorted(folder.iterdir(), key=lambda e: e.name)
    except OSError as exc:
        raise FileError(f"Cannot read folder `{folder}`: {exc.strerror or exc}") from exc
    files = [
        e
        for e in entries
        if e.suffix.lower() in IMAGE_SUFFIXES and not e.name.startswith(".") and e.is_file()
    ]
    if not files:
        raise FileError(
            f"Folder `{folder}` holds no images: expected files ending in "
            f"{', '.join(IMAGE_SUFFIXES)}"
        )
    return files


def _folder_signature(folder: Path) -> tuple[tuple[str, int, int], ...]:
    out = []
    for f in image_files(folder):
        st = f.stat()
        out.append((f.name, st.st_mtime_ns, st.st_size))
    return tuple(out)


_MODE_DTYPES = {"I;16": np.uint16, "I;16B": np.uint16, "I": np.int32, "F": np.float32}


def _image_header(f: Path) -> tuple[tuple[int, int, int], np.dtype]:
    from PIL import Image  # imageio's own reader of image files

    try:
        with Image.open(f) as im:
            width, height = im.size
            return (height, width, len(im.getbands())), np.dtype(_MODE_DTYPES.get(im.mode, "u1"))
    except Exception as exc:
        raise FileError(f"File `{f}` is not a readable image: {_first_line(exc)}") from exc


def _folder_header(folder: Path) -> Header:
    files = image_files(folder)
    first, dtype = _image_header(files[0])
    for f in files[1:]:
        shape, _ = _image_header(f)
        if shape != first:
            raise FileError(
                f"Folder `{folder}` holds images of different sizes: `{files[0].name}` is "
                f"{_fmt(first)}, `{f.name}` is {_fmt(shape)} (height×width×colours); every "
                "frame must have one size"
            )
    return Header((len(files), *first), dtype, FRAME_AXES)


# ---------------------------------------------------------------------- pixels
def read_media(path: str, header: Header, progress: Progress | None = None) -> np.ndarray:
    """The pixels of a TIFF, a video or a folder of images as float32, in the file's own axes
    (``header.shape``), a few frames at a time with ``progress(fraction, message)``."""
    out = np.empty(header.shape, np.float32)
    kind = kind_of(path)
    frames = (
        _folder_frames(Path(path))
        if kind == "folder"
        else _video_frames(Path(path))
        if kind == "video"
        else _tiff_frames(Path(path))
    )
    flat, done, name = out.reshape(-1), 0, Path(path).name
    for chunk in frames:
        if done + chunk.size > flat.size:
            raise FileError(
                f"File `{path}` holds more pixels than its header says ({_fmt(header.shape)})"
            )
        flat[done : done + chunk.size] = chunk.reshape(-1)
        done += chunk.size
        if progress is not None:
            progress(done / max(flat.size, 1), f"reading {name}")
    if done != flat.size:
        raise FileError(
            f"File `{path}` ended after {done:,} of the {flat.size:,} values its header announces"
        )
    return out


def _tiff_frames(p: Path) -> Iterator[np.ndarray]:
    """The TIFF's first series, a few pages at a time (pages are stored in its axes' order)."""
    import tifffile

    try:
        with _library_errors("tifffile") as errors, tifffile.TiffFile(p) as tif:
            series = tif.series[0]
            _refuse_damage(p, tif, series, errors)
            pages = len(series.pages)
            if pages < 2 or math.prod(series.shape) % pages:
                yield np.asarray(series.asarray())
                return
            step = max(1, pages // 20)
            for start in range(0, pages, step):
                yield np.asarray(tif.asarray(key=slice(start, min(pages, start + step)), series=0))
    except FileError:
        raise
    except Exception as exc:
        raise FileError(f"File `{p}` is not a readable TIFF file: {_first_line(exc)}") from exc


def _video_frames(p: Path) -> Iterator[np.ndarray]:
    reader = _video_reader(p)
    try:
        for frame in reader:
            yield np.asarray(frame)[None]
    except FileError:
        raise
    except Exception as exc:
        raise FileError(f"File `{p}` is not a readable video: {_first_line(exc)}") from exc
    finally:
        reader.close()


def _folder_frames(folder: Path) -> Iterator[np.ndarray]:
    import imageio.v3 as iio

    for f in image_files(folder):
        try:
            image = np.asarray(iio.imread(f))
        except Exception as exc:
            raise FileError(f"File `{f}` is not a readable image: {_first_line(exc)}") from exc
        yield image[None]
