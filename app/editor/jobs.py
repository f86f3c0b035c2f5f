"""Background work: one abstraction for every long job of the editor (a run, a training, ...).

A :class:`Job` runs ``fn(control) -> result`` on a QThreadPool thread. ``control`` is a
:class:`JobControl`: ``progress(fraction, message)``, ``report(kind, payload)`` for a job's own
events (a training's epochs and steps), and ``should_stop()``, true once :meth:`Job.cancel` was
called. Every outcome is a signal, and exactly one final signal arrives: ``finished(result)``,
``cancelled(message)`` when ``fn`` raises :class:`Cancelled`, or ``failed(exception)`` for anything
else; nothing escapes the thread. Create a job on the GUI thread and connect its signals to slots of
objects living there: Qt then delivers them on the GUI thread, so no widget is touched elsewhere.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, Signal


class Cancelled(Exception):
    """Raised by a job's function that stopped early because it was asked to."""


@dataclass(frozen=True)
class JobControl:
    """What a job's function may call, from its own thread."""

    progress: Callable[[float, str], None]
    report: Callable[[str, Any], None]
    should_stop: Callable[[], bool]


class Job(QObject):
    """One piece of work off the GUI thread; ``start()`` it once."""

    progress = Signal(float, str)  # fraction done (0..1), what is happening
    report = Signal(str, object)  # a job's own event: kind, payload
    finished = Signal(object)  # fn's result
    failed = Signal(object)  # the exception
    cancelled = Signal(str)  # the Cancelled message

    def __init__(self, fn: Callable[[JobControl], Any], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.fn = fn
        self.stop_event = threading.Event()

    def start(self, pool: QThreadPool | None = None) -> None:
        (pool or QThreadPool.globalInstance()).start(self.execute)

    def cancel(self) -> None:
        """Ask the function to stop at its next ``should_stop()`` check."""
        self.stop_event.set()

    @property
    def cancelling(self) -> bool:
        return self.stop_event.is_set()

    def execute(self) -> None:
        """Run the function here and now, turning every outcome into a signal (the pool calls
        this on its thread)."""
        control = JobControl(self._progress, self._report, self.stop_event.is_set)
        try:
            result = self.fn(control)
        except Cancelled as exc:
            self.cancelled.emit(str(exc))
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a signal
            self.failed.emit(exc)
        else:
            self.finished.emit(result)

    def _progress(self, fraction: float, message: str) -> None:
        self.progress.emit(float(fraction), str(message))

    def _report(self, kind: str, payload: Any) -> None:
        self.report.emit(str(kind), payload)
