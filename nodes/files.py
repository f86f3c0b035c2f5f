"""Safe file writing and reading: atomic replace, no pickle, one-line errors naming the file."""

from __future__ import annotations

import contextlib
import errno
import io
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


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, then rename it over
    ``path``. On any error the previous file, if any, is untouched. A symbolic link is followed
    (its target is replaced, the link stays); anything but a regular file is refused; an existing
    file keeps its permissions, a new one gets the usual ``0666 & ~umask``."""
    given = Path(path)
    target = Path(os.path.realpath(given)) if given.is_symlink() else given
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
    a FIFO, a device or a socket."""
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
