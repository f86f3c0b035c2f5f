"""The check every output option makes before any work: ``run --out``, ``train --weights-out`` and
``--history``, ``snippet -o``, ``import -o`` and ``bench --json``.

An option whose file has one format (``run --out``: .npy, ``import -o``: .json, ``snippet -o``:
.png) adds that suffix to a name without one and refuses another suffix, so that no file hides its
format behind a wrong name. A command that would compute for minutes and then fail to save must fail first instead. An output
is refused when its name is empty, names a folder, lies in a missing folder or under a file, already
exists (a dangling link included) without ``--force``, is a device, FIFO or socket, lies in a
folder where no file can be created, or is named by two options of one command; writability is
tried with a temporary file, because permissions alone do not tell (root, read-only or virtual
file systems such as /proc). A symbolic link is checked where the save writes, in its target's
folder. The file itself is written later, atomically.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .errors import UsageError


def output_problem(name: str, force: bool, option: str) -> str | None:
    """Why the output ``name`` of ``option`` cannot be written, as one line; None when it can.
    A symbolic link (replaced only with ``force``) is checked where the save will write: in its
    target's folder, as :func:`~conv3dt_studio.nodes.files.atomic_write_bytes` follows it."""
    from conv3dt_studio.nodes.files import write_target

    if not name.strip():
        return f"{option}: give a file name. Received: an empty name"
    path = Path(name)
    if path.is_dir():
        return f"{option} `{path}` is a folder, not a file"
    special = _special_kind(path)
    if special:
        return f"{option} `{path}` is {special}, not a regular file; give a file to write"
    if (path.exists() or path.is_symlink()) and not force:
        return f"`{path}` already exists: choose another {option} or add --force"
    target = write_target(path)
    folder = target.parent
    where = f"cannot save `{path}`" + (f" (a link to `{target}`)" if target != path else "")
    if folder.exists() and not folder.is_dir():
        return f"{where}: `{folder}` is a file, not a folder"
    if not folder.is_dir():
        return f"{where}: folder `{folder}` does not exist"
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return f"{where}: cannot write in folder `{folder}` ({exc.strerror or exc})"
    return None


def _special_kind(path: Path) -> str | None:
    """What ``path`` is when it exists as something a file cannot replace (device, FIFO...)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None  # missing, or a dangling link: handled as an existing name
    kinds = (
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((kind for test, kind in kinds if test(mode)), None)


def distinct_outputs(outputs: dict[str, str | None]) -> None:
    """Refuse two output options naming one file (the second would silently replace the
    first): ``outputs`` maps an option to its file name, or None when not given."""
    seen: dict[str, str] = {}
    for option, name in outputs.items():
        if not name:
            continue
        key = os.path.realpath(name)
        if key in seen:
            raise UsageError(
                f"{seen[key]} and {option} name the same file `{name}`: give each its own file"
            )
        seen[key] = option


def suffixed(name: str, suffix: str, option: str) -> str:
    """``name`` with ``suffix`` added when it has none (a name ending in another suffix is a
    :class:`UsageError`). An empty name, a folder or a device is left as it is: it is refused as
    such by :func:`output_problem`."""
    path = Path(name)
    if not name.strip() or name.endswith(os.sep) or path.is_dir() or _special_kind(path):
        return name
    if not path.suffix:
        return name + suffix
    if path.suffix.lower() != suffix:
        raise UsageError(
            f"Invalid value for {option}: expected a {suffix} file (a name without an extension "
            f"gets {suffix}). Received: `{name}`"
        )
    return name


def checked_output(
    name: str | None, force: bool, option: str, suffix: str | None = None
) -> Path | None:
    """The output path of ``option`` (None when not given), ``suffix`` added to a name without
    one (see :func:`suffixed`); a :class:`UsageError` when it cannot be written."""
    if name is None:
        return None
    if suffix is not None:
        name = suffixed(name, suffix, option)
    problem = output_problem(name, force, option)
    if problem:
        raise UsageError(problem)
    return Path(name)
