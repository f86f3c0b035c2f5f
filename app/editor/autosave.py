"""Autosave and crash recovery.

Each open window writes its document to ``autosave-<token>.json`` in the user data folder a few
seconds after a change, and deletes it when its work is saved or it closes normally. A file left
behind by a process that is gone (a crash) is offered for restore on the next start. The folder is
``platformdirs.user_data_dir("conv3dt-studio")``, or ``$CONV3DT_STUDIO_DATA_DIR`` when set (tests).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
from PySide6.QtCore import QObject, QTimer, Signal

from conv3dt_studio.nodes.files import FileError, atomic_write_text, read_bounded
from conv3dt_studio.nodes.graph_document import MAX_GRAPH_FILE_BYTES, PARSE_FACTOR

ENV_DATA_DIR = "CONV3DT_STUDIO_DATA_DIR"
APP_NAME = "conv3dt-studio"
FORMAT = "conv3dt-studio/autosave"
DEFAULT_DELAY_MS = 3000
FIELDS = {  # what an autosave file holds besides its format
    "pid": int,
    "token": str,
    "time": (int, float),
    "path": (str, type(None)),
    "document": dict,
}
CURVE_KEYS = ("loss", "val_loss")  # an epoch of a learning curve: its loss, a validation loss
PID_MAX = 2**31 - 1  # pid_t is a signed 32-bit int; beyond it os.kill overflows
_LIVE_TOKENS: set[str] = set()  # windows of this process that own their autosave file


def data_dir() -> Path:
    """The user data folder (created on demand)."""
    path = Path(os.environ.get(ENV_DATA_DIR) or platformdirs.user_data_dir(APP_NAME, False))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:  # read-only home and the like: autosave still works, in the temp folder
        path = Path(tempfile.gettempdir()) / APP_NAME
        path.mkdir(parents=True, exist_ok=True)
    return path


def process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, Linux's /proc/<pid>/stat field 22),
    or None where that cannot be read. With the pid it names one process: a pid reused by an
    unrelated process later has another start time."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as fh:
            stat = fh.read().decode("ascii", "replace")
        # the command name (field 2) is in parentheses and may hold spaces or parentheses
        return int(stat[stat.rindex(")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _owner_alive(pid: int, started: int | None, host: str | None) -> bool:
    """Whether the process that wrote an autosave still runs: its pid is alive and, where the
    file and the system tell, it is the same process (same host, same start time)."""
    if host is not None and host != socket.gethostname():
        return True  # another machine's session (a shared home folder): never ours to take
    if not _pid_alive(pid):
        return False
    now = process_start(pid) if started is not None else None
    return now is None or now == started


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    # os.kill(pid, 0) would terminate the process on Windows; with 0 or less it would ask about a
    # process group, not a process
    if sys.platform == "win32" or not 0 < pid <= PID_MAX:
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True
    except (OSError, OverflowError):  # ProcessLookupError among them
        return False
    return True


@dataclass
class Recovery:
    """An autosave left by a crashed session."""

    file: Path
    document: dict[str, Any]
    path: str | None  # the file the work belonged to, if it had been saved before
    saved_at: float
    # the state of the weights embedded in ``document`` (epochs, curve, unsaved, embed), if any
    trained: dict[str, Any] | None = None

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.saved_at))
        return f"{self.path or 'an unsaved graph'} (autosaved {when})"

    def discard(self) -> None:
        self.file.unlink(missing_ok=True)


@dataclass
class Unreadable:
    """An autosave file that cannot be read back. It is kept on disk, never deleted: it may hold
    the only copy of the user's work."""

    file: Path
    reason: str

    def describe(self) -> str:
        return f"Autosave `{self.file}` cannot be read ({self.reason}); the file is kept"


def scan() -> tuple[list[Recovery], list[Unreadable]]:
    """Autosaves whose owner is gone (newest first), and the autosave files that cannot be read."""
    found, unreadable = [], []
    for file in sorted(data_dir().glob("autosave-*.json")):
        try:
            data = _read(file)
        except FileNotFoundError:  # discarded by its window meanwhile
            continue
        except ValueError as exc:
            unreadable.append(Unreadable(file, str(exc)))
            continue
        except Exception as exc:  # noqa: BLE001 - a damaged file must never stop the editor
            unreadable.append(Unreadable(file, f"{type(exc).__name__}: {exc}"))
            continue
        pid, token = data["pid"], data["token"]
        alive = _owner_alive(pid, data.get("started"), data.get("host"))
        if alive and (pid != os.getpid() or token in _LIVE_TOKENS):
            continue
        found.append(
            Recovery(
                file, data["document"], data.get("path"), float(data["time"]), data.get("trained")
            )
        )
    return sorted(found, key=lambda r: r.saved_at, reverse=True), unreadable


def orphans() -> list[Recovery]:
    """Autosaves whose owner is gone, newest first (see :func:`scan` for the unreadable ones)."""
    return scan()[0]


def _read(file: Path) -> dict[str, Any]:
    """An autosave's fields; ValueError saying why when the file cannot be used."""
    try:
        raw = read_bounded(file, MAX_GRAPH_FILE_BYTES, "an autosave", PARSE_FACTOR)
        data = json.loads(raw.decode("utf-8"))
    except FileError as exc:
        if isinstance(exc.__cause__, FileNotFoundError) or not file.exists():
            raise FileNotFoundError(str(file)) from None
        raise ValueError(str(exc)) from None
    except OSError as exc:
        raise ValueError(exc.strerror or str(exc)) from None
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except RecursionError:
        raise ValueError("not an autosave: JSON nested too deeply") from None
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"not an autosave: a JSON {type(data).__name__}, not an object")
    if data.get("format") != FORMAT:
        raise ValueError(
            f'not an autosave (expected "format": "{FORMAT}"). '
            f"Received: format={data.get('format')!r:.40}"
        )
    for key, kind in FIELDS.items():
        if not isinstance(data.get(key), kind):
            raise ValueError(
                f"field `{key}` is missing or damaged. Received: {key}={data.get(key)!r:.40}"
            )
    pid, saved_at, path = data["pid"], data["time"], data["path"]
    if path is not None and not _is_file_path(path):  # Save would raise on it, not report
        raise ValueError(
            "field `path` must be a file path the system accepts (no NUL character, encodable). "
            f"Received: path={path!r:.60}"
        )
    if isinstance(pid, bool) or not 0 < pid <= PID_MAX:
        raise ValueError(
            f"field `pid` must be a process id from 1 to {PID_MAX}. Received: pid={pid!r:.40}"
        )
    if data.get("trained") is not None:  # optional: only with weights
        data["trained"] = _trained_state(data["trained"])
    for key in ("started", "host"):  # optional: autosaves of older versions lack them
        kind = int if key == "started" else str
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
            raise ValueError(f"field `{key}` is damaged. Received: {key}={value!r:.40}")
    try:  # what Recovery.describe() will do with it; refuses NaN, infinities, years out of range
        time.localtime(saved_at)
    except (OverflowError, OSError, ValueError):
        raise ValueError(
            "field `time` must be a finite timestamp within this platform's range. "
            f"Received: time={saved_at!r:.40}"
        ) from None
    return data


def _trained_state(value: Any) -> dict[str, Any]:
    """The ``trained`` field (see ``TrainingController.autosave_state``), checked: ValueError
    naming what is damaged."""

    def damaged(what: str) -> ValueError:
        return ValueError(f"field `trained` is damaged ({what}). Received: trained={value!r:.60}")

    if not isinstance(value, dict):
        raise damaged("not an object")
    epochs = value.get("epochs")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or not 0 <= epochs < 2**31:
        raise damaged("`epochs` must be a whole number 0..2**31-1")
    for key in ("unsaved", "embed"):
        if not isinstance(value.get(key), bool):
            raise damaged(f"`{key}` must be true or false")
    curve = value.get("curve")
    if not isinstance(curve, list) or not all(_is_epoch(point) for point in curve):
        raise damaged('`curve` must be a list of [epoch, {"loss": number, ...}]')
    return {
        "epochs": epochs,
        "unsaved": value["unsaved"],
        "embed": value["embed"],
        "curve": [(epoch, dict(logs)) for epoch, logs in curve],
    }


def _is_epoch(point: Any) -> bool:
    """``[epoch, {"loss": number, "val_loss": number}]`` (the validation loss optional)."""
    if not isinstance(point, list) or len(point) != 2:
        return False
    epoch, logs = point
    number = (int, float)
    return (
        isinstance(epoch, int)
        and not isinstance(epoch, bool)
        and 0 <= epoch < 2**31
        and isinstance(logs, dict)
        and CURVE_KEYS[0] in logs
        and set(logs) <= set(CURVE_KEYS)
        and all(isinstance(v, number) and not isinstance(v, bool) for v in logs.values())
    )


def _is_file_path(text: str) -> bool:
    """Whether the operating system can take ``text`` as a file name."""
    try:
        os.fsencode(text)
    except UnicodeEncodeError:  # a lone surrogate, from a JSON escape
        return False
    return "\x00" not in text


class Autosaver(QObject):
    """Debounced autosave of one window's document."""

    saved = Signal(str)  # the autosave file
    failed = Signal(str)

    def __init__(
        self,
        document: Callable[[], dict[str, Any]],
        path: Callable[[], str | None],
        delay_ms: int = DEFAULT_DELAY_MS,
        parent: QObject | None = None,
        trained: Callable[[], dict[str, Any] | None] = lambda: None,
    ) -> None:
        super().__init__(parent)
        self._document = document
        self._path = path
        self._trained = trained  # the state of the document's embedded weights (recovery)
        self.token = uuid.uuid4().hex
        self.file = data_dir() / f"autosave-{self.token}.json"
        _LIVE_TOKENS.add(self.token)
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(delay_ms)
        self.timer.timeout.connect(self.save_now)

    def schedule(self) -> None:
        """Autosave ``delay_ms`` after the last change."""
        self.timer.start()

    def save_now(self) -> bool:
        """Write the autosave now; False (and ``failed``) when it cannot be written."""
        data = {
            "format": FORMAT,
            "pid": os.getpid(),
            "started": process_start(os.getpid()),
            "host": socket.gethostname(),
            "token": self.token,
            "time": time.time(),
            "path": self._path(),
            "document": self._document(),
        }
        trained = self._trained()
        if trained is not None:
            data["trained"] = trained
        try:
            atomic_write_text(self.file, json.dumps(data) + "\n")
        except FileError as exc:
            self.failed.emit(str(exc))
            return False
        self.saved.emit(str(self.file))
        return True

    def discard(self) -> None:
        """The work is safe elsewhere (saved): drop the autosave."""
        self.timer.stop()
        self.file.unlink(missing_ok=True)

    def close(self) -> None:
        """Normal end of the window."""
        self.discard()
        _LIVE_TOKENS.discard(self.token)

    def abandon(self) -> None:
        """Stop without cleaning up, as a crash would (tests)."""
        self.timer.stop()
        _LIVE_TOKENS.discard(self.token)
