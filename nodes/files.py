"""Safe file writing and reading: atomic replace, no pickle, one-line errors naming the file."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import math
import os
import stat
import tempfile
import time
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np

from conv3dt_studio.compute import Conv3DTStudioError

from . import memory


class FileError(Conv3DTStudioError, OSError):
    """A file could not be read or written; the message names it. ``param`` names the argument
    or parameter to change when the fault is its (e.g. ``array_name`` for a .npz holding several
    arrays), so that a caller can place or phrase the message in its own terms."""

    param: str | None = None

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        if param is not None:
            self.param = param


def current_umask() -> int:
    """The process's umask (new files get ``0666 & ~umask``, new folders ``0777 & ~umask``)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


TMP_SUFFIX = ".tmp"
STALE_AFTER_S = 24 * 3600  # a temporary whose writer cannot be told is removed after a day


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    except OverflowError:
        return False
    return True


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Remove the temporaries that saves of ``target`` left behind when killed: named
    ``.<name>.<pid>.<random>.tmp`` by :func:`atomic_write_bytes`, they are stale once their
    writer's process is gone (or, without a pid, after a day). Returns what was removed."""
    removed: list[Path] = []
    prefix = f".{target.name}."
    directory = target.parent if str(target.parent) else Path(".")
    try:
        candidates = [p for p in directory.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return removed
    for path in candidates:
        if not path.name.endswith(TMP_SUFFIX) or path.is_symlink() or not path.is_file():
            continue
        middle = path.name[len(prefix) : -len(TMP_SUFFIX)]
        pid_text = middle.split(".", 1)[0]
        try:
            stale = (
                not _alive(int(pid_text))
                if pid_text.isdigit() and "." in middle
                else time.time() - path.stat().st_mtime > STALE_AFTER_S
            )
            if stale:
                path.unlink()
                removed.append(path)
        except OSError:
            continue
    return removed


def write_target(path: str | os.PathLike) -> Path:
    """The file that saving ``path`` replaces: the target of a symbolic link, followed to the end
    (a dangling one included), else ``path`` itself. :func:`atomic_write_bytes` writes its
    temporary file in this file's folder, so that is the folder to check before any work."""
    given = Path(path)
    return Path(os.path.realpath(given)) if given.is_symlink() else given


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, then rename it over
    ``path``. On any error the previous file, if any, is untouched. A symbolic link is followed
    (its target is replaced, the link stays); anything but a regular file is refused; an existing
    file keeps its permissions, a new one gets the usual ``0666 & ~umask``."""
    given = Path(path)
    target = write_target(given)
    if target.exists() and not target.is_file():
        kind = "a folder" if target.is_dir() else "not a regular file"
        raise FileError(f"Cannot save `{given}`: it is {kind}")
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        where = f"folder `{directory}` does not exist"
        if directory.exists():
            where = f"`{directory}` is a file, not a folder"
        raise FileError(f"Cannot save `{given}`: {where}")
    mode = target.stat().st_mode & 0o7777 if target.exists() else 0o666 & ~current_umask()
    remove_stale_temporaries(target)
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{target.name}.{os.getpid()}.", suffix=TMP_SUFFIX, dir=directory
        )
    except OSError as exc:
        raise FileError(f"Cannot save `{given}`: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise FileError(f"Cannot save `{given}`: {exc.strerror or exc}") from exc
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Atomically save one array as .npy (no pickle)."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def save_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Atomically save named arrays as .npz (no pickle)."""
    buf = io.BytesIO()
    named: dict[str, Any] = {k: np.asarray(v) for k, v in arrays.items()}
    np.savez(buf, **named)
    atomic_write_bytes(path, buf.getvalue())


def require_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path when it is a regular file (or a link to one) to read; otherwise a
    :class:`FileError` saying what it is instead: missing, a folder, a broken link, a link loop,
    a FIFO, a device or a socket. An empty name is refused as such (``Path("")`` would be the
    current folder)."""
    if not os.fspath(path):
        raise FileError("give a file name. Received: an empty name")
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FileError(f"`{p}` is a symbolic link loop; a regular file is needed") from exc
        if p.is_symlink():
            raise FileError(f"`{p}` is a broken symbolic link (its target does not exist)") from exc
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise FileError(f"File `{p}` does not exist") from exc
        raise FileError(f"Cannot read `{p}`: {exc.strerror or exc}") from exc
    if stat.S_ISREG(mode):
        return p
    kind = (
        "a folder"
        if stat.S_ISDIR(mode)
        else "a FIFO (named pipe)"
        if stat.S_ISFIFO(mode)
        else "a character device"
        if stat.S_ISCHR(mode)
        else "a block device"
        if stat.S_ISBLK(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "not a regular file"
    )
    raise FileError(f"`{p}` is {kind}, not a file; a regular file is needed")


SMALL_READ_BYTES = 2**20  # reading and parsing less takes less than the interpreter itself


def read_bounded(
    path: str | os.PathLike, max_bytes: int, what: str, factor: int = 1, limit: int | None = None
) -> bytes:
    """The bytes of the regular file ``path``, refused unread when it is larger than
    ``max_bytes`` (``what`` names the kind of file: "a graph file") or when ``factor`` bytes of
    memory per byte of it (what reading and parsing it take) exceed ``limit`` (default: half the
    available memory; files of at most :data:`SMALL_READ_BYTES` are not compared with it). At
    most ``max_bytes + 1`` bytes are read, even from a growing file."""
    p = require_file(path)
    try:
        size = p.stat().st_size
        if SMALL_READ_BYTES < size <= max_bytes:
            check_fits(p, factor * size, limit)
        if size <= max_bytes:
            with open(p, "rb") as fh:
                data = fh.read(max_bytes + 1)
            size = len(data)
    except OSError as exc:
        if isinstance(exc, FileError):
            raise
        raise FileError(f"Cannot read `{p}`: {exc.strerror or exc}") from exc
    if size > max_bytes:
        raise FileError(
            f"`{p}` is too large: {size / 2**20:,.1f} MiB, above the {max_bytes / 2**20:,.0f} MiB "
            f"{what} may have; refused unread"
        )
    return data


def _pickled(p: Path) -> FileError:
    return FileError(
        f"File `{p}` holds Python objects (pickled data), which are never loaded; only numeric "
        "arrays are accepted"
    )


def _read_header(fh: IO[bytes], p: Path) -> tuple[tuple[int, ...], np.dtype]:
    fmt = np.lib.format
    version = fmt.read_magic(fh)
    read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    shape, _fortran, dtype = read(fh)
    if dtype.hasobject:
        raise _pickled(p)
    return tuple(int(s) for s in shape), dtype


NPY_MAGIC, ZIP_MAGIC = b"\x93NUMPY", b"PK"  # how a .npy and a .npz (a zip) file begin


def is_array_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` begins as a .npy or .npz file does (by its bytes, whatever its name)."""
    p = require_file(path)
    try:
        with open(p, "rb") as fh:
            magic = fh.read(len(NPY_MAGIC))
    except OSError as exc:
        raise FileError(f"Cannot read `{p}`: {exc.strerror or exc}") from exc
    return magic.startswith((NPY_MAGIC, ZIP_MAGIC))


def array_headers(path: str | os.PathLike) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of every array of a .npz file (``""`` for a .npy file), read from the
    headers only: nothing is inflated or loaded."""
    p = require_file(path)
    try:
        with open(p, "rb") as fh:
            magic = fh.read(len(NPY_MAGIC))
            if magic == NPY_MAGIC:
                fh.seek(0)
                return {"": _read_header(fh, p)}
        if not magic.startswith(ZIP_MAGIC):
            # np.load would take any other bytes for a pickle and blame pickling
            raise FileError(f"File `{p}` is not a readable .npy/.npz file (no NumPy or zip header)")
        with zipfile.ZipFile(p) as zf:
            out = {}
            for member in zf.namelist():
                if member.endswith(".npy"):
                    with zf.open(member) as fh:
                        out[member[:-4]] = _read_header(fh, p)
            return out
    except FileError:
        raise
    except Exception as exc:  # a damaged header or zip directory, whatever the library says
        raise FileError(f"File `{p}` is not a readable .npy/.npz file: {exc}") from exc


def loaded_bytes(header: tuple[tuple[int, ...], np.dtype]) -> int:
    """Bytes an array takes once loaded and made float32 (at least 4 per element)."""
    shape, dtype = header
    return math.prod(shape) * max(dtype.itemsize, 4)


def check_fits(path: str | os.PathLike, need: int, limit: int | None) -> None:
    """Refuse to read ``path`` when it would take ``need`` bytes once loaded, above ``limit``
    (default: half the available memory)."""
    limit = memory.default_limit() if limit is None else limit
    if need > limit:
        raise FileError(
            f"File `{path}` would take about {memory.mib(need)} once loaded, above the memory "
            f"limit of {memory.mib(limit)}"
        )


def load_arrays(
    path: str | os.PathLike, names: list[str] | None = None, limit: int | None = None
) -> dict[str, np.ndarray]:
    """The arrays of a .npz file (all, or ``names``), or ``{"": array}`` for a .npy file, never
    unpickling. Their declared sizes are read first: arrays that would need more than ``limit``
    bytes (default: half the available memory) are refused before anything is inflated."""
    p = require_file(path)
    headers = array_headers(p)
    chosen = list(headers) if names is None else [n for n in names if n in headers]
    check_fits(p, sum(loaded_bytes(headers[n]) for n in chosen), limit)
    try:
        data = np.load(p, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            return {"": data}
        with data:
            return {k: data[k] for k in chosen}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise _pickled(p) from exc
        raise FileError(f"File `{p}` is not a readable .npy/.npz file: {exc}") from exc
    except Exception as exc:
        raise FileError(f"File `{p}` is not a readable .npy/.npz file: {exc}") from exc


# ---------------------------------------------------------------------------- .safetensors
# the safetensors format: an 8-byte little-endian header length, a JSON header naming each
# tensor's dtype, shape and byte range, then the bytes (little-endian, C order)
SAFETENSORS_DTYPES = {
    "BOOL": "|b1",
    "U8": "|u1",
    "I8": "|i1",
    "U16": "<u2",
    "I16": "<i2",
    "F16": "<f2",
    "BF16": "<u2",  # NumPy has no bfloat16: the upper half of a float32, widened on reading
    "U32": "<u4",
    "I32": "<i4",
    "F32": "<f4",
    "U64": "<u8",
    "I64": "<i8",
    "F64": "<f8",
}
MAX_SAFETENSORS_HEADER = 100_000_000  # the safetensors library's own limit


def read_safetensors(
    path: str | os.PathLike, limit: int | None = None
) -> tuple[dict[str, np.ndarray], dict[str, str] | None]:
    """The tensors of a .safetensors file and its ``__metadata__`` (None when it has none),
    without torch: float16 and bfloat16 tensors become float32 (NumPy has no bfloat16), other
    dtypes stay as they are. The header is checked whole (dtypes, shapes, byte ranges inside the
    file) and the tensors' sizes once loaded compared with ``limit`` (default: half the available
    memory) before any tensor is read; a damaged file is a :class:`FileError` naming it."""
    p = require_file(path)
    try:
        with open(p, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            entries, metadata, start = _safetensors_header(fh, size, p)
            check_fits(p, sum(_loaded_size(e) for e in entries.values()), limit)
            out = {}
            for name, (dtype, shape, begin, end) in entries.items():
                fh.seek(start + begin)
                raw = fh.read(end - begin)
                if len(raw) != end - begin:
                    raise FileError(f"`{p}` is truncated: tensor `{name}` runs past the end")
                out[name] = _widened(np.frombuffer(raw, SAFETENSORS_DTYPES[dtype]), dtype, shape)
    except OSError as exc:
        if isinstance(exc, FileError):
            raise
        raise FileError(f"Cannot read `{p}`: {exc.strerror or exc}") from exc
    return out, metadata


SafetensorsEntry = tuple[str, tuple[int, ...], int, int]  # dtype, shape, begin, end


def _safetensors_header(
    fh: IO[bytes], size: int, p: Path
) -> tuple[dict[str, SafetensorsEntry], dict[str, str] | None, int]:
    """The header's tensors, its metadata and where the tensors' bytes begin."""

    def damaged(why: str) -> FileError:
        return FileError(f"`{p}` is not a readable .safetensors file: {why}")

    head = fh.read(8)
    if len(head) < 8:
        raise damaged("shorter than its 8-byte header length")
    length = int.from_bytes(head, "little")
    if length > min(MAX_SAFETENSORS_HEADER, size - 8):
        raise damaged(f"a header of {length} bytes in a file of {size}")
    try:
        header = json.loads(fh.read(length).decode("utf-8"), object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as exc:
        raise damaged(f"its header is not JSON ({' '.join(str(exc).split())[:120]})") from None
    if not isinstance(header, dict):
        raise damaged("its header is not a JSON object")
    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())
    ):
        raise damaged("`__metadata__` must map names to strings")
    available = size - 8 - length
    entries = {}
    for name, entry in header.items():
        entries[name] = _safetensors_entry(name, entry, available, damaged)
    return entries, metadata, 8 + length


def _safetensors_entry(name: str, entry: Any, available: int, damaged: Any) -> SafetensorsEntry:
    if not isinstance(entry, dict):
        raise damaged(f"tensor `{name}` is not described by an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in SAFETENSORS_DTYPES:
        raise damaged(
            f"tensor `{name}` has data type {dtype!r:.40}, which is not read here (expected one "
            f"of {', '.join(SAFETENSORS_DTYPES)}); save the weights as float32, float16 or "
            "bfloat16"
        )
    if not (
        isinstance(shape, list)
        and len(shape) <= 32
        and all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**31 for s in shape)
    ):
        raise damaged(f"tensor `{name}` has a shape that is not 0 to 32 sizes 0..2**31-1")
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        and 0 <= offsets[0] <= offsets[1] <= available
    ):
        raise damaged(f"tensor `{name}` has byte offsets outside the file's data")
    begin, end = offsets
    if end - begin != math.prod(shape) * np.dtype(SAFETENSORS_DTYPES[dtype]).itemsize:
        raise damaged(
            f"tensor `{name}` takes {end - begin} bytes; its shape {tuple(shape)} and {dtype} "
            "need another number"
        )
    return dtype, tuple(shape), begin, end


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r:.60}")
        out[key] = value
    return out


def _loaded_size(entry: SafetensorsEntry) -> int:
    """Bytes a tensor takes once read (float16 and bfloat16 widened to float32)."""
    dtype, shape, _begin, _end = entry
    itemsize = np.dtype(SAFETENSORS_DTYPES[dtype]).itemsize
    return math.prod(shape) * (4 if dtype in ("F16", "BF16") else itemsize)


def _widened(flat: np.ndarray, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """A tensor's values in its shape: bfloat16 (read as its 16 bits) and float16 as float32."""
    if dtype == "BF16":
        flat = (flat.astype(np.uint32) << 16).view(np.float32)
    elif dtype == "F16":
        flat = flat.astype(np.float32)
    else:
        flat = flat.copy()  # writable, and not a view of the bytes read
    return flat.reshape(shape)
