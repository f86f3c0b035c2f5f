"""What the editor is doing, in one shared object; the base of the controllers that run jobs;
the progress bar that shows it.

One :class:`Activity` per window. The controllers talk to the window through it: they write to the
log with :meth:`Activity.log` and to the status bar with :meth:`Activity.show_status`. A
:class:`JobController` (Run, Train) starts its :class:`~.jobs.Job` through it: one job at a time,
busy from the start to the job's final signal. Stop asks whoever runs to stop
(:attr:`Activity.stop_requested`). The window only connects the signals to its widgets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, Signal
from PySide6.QtWidgets import QProgressBar

from .jobs import Job, JobControl


class Activity(QObject):
    """Busy state, progress, status-bar and log messages of one window."""

    busy_changed = Signal(bool)  # a job started (True) or ended (False)
    progress = Signal(float, str)  # the job's fraction done and what it is doing
    phase = Signal(str)  # a word for the progress bar without a new fraction ("stopping…")
    status = Signal(str, int)  # status-bar message, shown for so many milliseconds
    message = Signal(str, str, str)  # (level: info/ok/warning/error, text, group) for the log
    stop_requested = Signal()  # Stop: the controller whose job runs stops it

    def __init__(self, pool: QThreadPool | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = pool or QThreadPool.globalInstance()
        self.job: Job | None = None

    @property
    def busy(self) -> bool:
        return self.job is not None

    def begin(self, job: Job) -> None:
        """Start ``job`` (the caller has checked that nothing is busy)."""
        self.job = job
        job.progress.connect(self.progress)
        self.busy_changed.emit(True)
        job.start(self.pool)

    def end(self) -> None:
        """The job's final signal arrived: idle again."""
        self.job = None
        self.busy_changed.emit(False)

    def stop(self) -> None:
        self.stop_requested.emit()

    def wait(self, msecs: int) -> None:
        """Stop the job and wait for its thread (closing the window)."""
        if self.busy:
            self.stop()
            self.pool.waitForDone(msecs)

    def show_phase(self, text: str) -> None:
        self.phase.emit(text)

    def log(self, text: str, level: str = "info", group: str = "") -> None:
        """A log line; consecutive lines of one ``group`` (a training's epochs) share a line."""
        self.message.emit(level, text, group)

    def show_status(self, text: str, msecs: int = 5000) -> None:
        self.status.emit(text, msecs)

    def refuse(self, header: str, problems: Iterable, status: str) -> str:
        """Log ``header`` and each problem as errors and show ``status``: the answer to a run or
        a training that cannot start. Returns the problems as one line (what failure signals
        carry)."""
        problems = [str(p) for p in problems]
        for line in (header, *problems):
            self.log(line, "error")
        self.show_status(status)
        return "; ".join(problems)


class JobController(QObject):
    """Base of the controllers that run a kind of job (Run, Train) through the window's
    :class:`Activity`: at most one job of theirs, and Stop cancels it."""

    def __init__(self, activity: Activity, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.activity = activity
        self.job: Job | None = None
        activity.stop_requested.connect(self.stop)

    def start_job(
        self,
        fn: Callable[[JobControl], Any],
        finished: Callable[[Any], None],
        failed: Callable[[BaseException], None],
        cancelled: Callable[[str], None] | None = None,
        report: Callable[[str, Any], None] | None = None,
    ) -> None:
        """Run ``fn`` in a job; its final signal first makes the editor idle, then calls the
        matching handler (``cancelled`` is needed only by a function that raises Cancelled)."""
        job = self.job = Job(fn)
        for signal in (job.finished, job.failed, job.cancelled):
            signal.connect(self._ended)  # before the handlers: they see the editor idle
        job.finished.connect(finished)
        job.failed.connect(failed)
        if cancelled is not None:
            job.cancelled.connect(cancelled)
        if report is not None:
            job.report.connect(report)
        self.activity.begin(job)

    def stop(self) -> bool:
        """Ask the job to stop at its next check; True when it was asked now."""
        if self.job is None or self.job.cancelling:
            return False
        self.job.cancel()
        return True

    def _ended(self, *_outcome) -> None:
        self.job = None
        self.activity.end()


class ActivityBar(QProgressBar):
    """The status bar's progress bar: 'idle', 'starting…', the job's progress, 'stopping…'."""

    def __init__(self, activity: Activity) -> None:
        super().__init__()
        self.setObjectName("run_progress")
        self.setRange(0, 1000)
        self.setMaximumWidth(260)
        self.setTextVisible(True)
        self.show_busy(False)  # always shown: showing it would re-lay out the window
        activity.busy_changed.connect(self.show_busy)
        activity.progress.connect(self.show_progress)
        activity.phase.connect(self.setFormat)

    def show_busy(self, busy: bool) -> None:
        self.setValue(0)
        self.setFormat("starting…" if busy else "idle")

    def show_progress(self, fraction: float, message: str) -> None:
        self.setValue(int(fraction * 1000))
        self.setFormat(f"{message} (%p%)")
