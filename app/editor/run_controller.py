"""Run: compute a Prediction 6D of the document in a :class:`~.jobs.Job`.

:meth:`RunController.run` picks the Prediction 6D (:func:`.run_job.prediction_to_run`), refuses
when its chain has problems (listed in the log, shown on the nodes; other branches do not block),
and starts the job through the window's :class:`~.activity.Activity`. The outcome is a signal:
``prediction_ready(result, summary)`` then ``run_finished(result)``, or ``run_failed(text)``, or
``run_stopped(message)``. Failures of nodes go on the nodes, others to the log and status bar.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from conv3dt_studio.compute import Conv3DTStudioError
from conv3dt_studio.nodes import GraphDocument
from conv3dt_studio.nodes.runner import probe_document
from conv3dt_studio.nodes.validation import relevant_problems, validate

from .activity import Activity, JobController
from .backend_selector import backend_text
from .canvas import Canvas, display_name
from .run_job import (
    Prediction,
    failure_text,
    node_errors,
    prediction_job,
    prediction_to_run,
    weights_text,
)


def node_text(doc: GraphDocument, node_id: str | None) -> str:
    """'Prediction 6D 2 (`prediction_6d_2`)': the canvas title and the id."""
    node = doc.nodes.get(node_id)
    return f"{display_name(node)} (`{node_id}`)" if node else f"`{node_id}`"


class RunController(JobController):
    """Starts, stops and reports the runs of one window's document."""

    prediction_ready = Signal(object, object)  # nodes.RunResult, prediction_inspector.Summary
    run_finished = Signal(object)  # nodes.RunResult
    run_failed = Signal(str)
    run_stopped = Signal(str)

    def __init__(
        self,
        canvas: Canvas,
        activity: Activity,
        backend: Callable[[], str],
        weights: Callable[[], dict | None],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(activity, parent)
        self.canvas = canvas
        self.backend = backend  # the backend chosen in the toolbar
        self.weights = weights  # the trained weights, or None
        self.run_doc: GraphDocument | None = None  # the canvas's document the job runs for

    @property
    def is_running(self) -> bool:
        return self.job is not None

    def run(self) -> bool:
        """Start a run, in the worker pool; False when a job runs already or the chosen
        Prediction 6D's chain has problems."""
        if self.activity.busy:
            return False
        doc = self.canvas.doc
        return self._start(doc, prediction_to_run(doc, self.canvas.selected_ids()))

    def inspect(self, node_id: str) -> bool:
        """Run the chain up to ``node_id`` (an Input, any TimeDistributed) and show its output,
        as if a Prediction 6D were wired to it (:func:`nodes.runner.probe_document`)."""
        if self.activity.busy or node_id not in self.canvas.doc.nodes:
            return False
        try:
            doc, probe = probe_document(self.canvas.doc, node_id)
        except Conv3DTStudioError as exc:
            self.run_failed.emit(self.activity.refuse("Cannot inspect:", [exc], str(exc)))
            return False
        self.activity.log(f"Inspecting the output of {node_text(self.canvas.doc, node_id)}")
        return self._start(doc, probe, validate(doc).problems)

    def _start(self, doc: GraphDocument, pid: str | None, problems: list | None = None) -> bool:
        self.canvas.set_run_errors({})
        problems = self.canvas.report.problems if problems is None else problems
        if pid is not None:  # else every problem blocks ("no Prediction 6D node" among them)
            problems = relevant_problems(doc, problems, pid)
        if problems:
            self.refuse(pid, problems)
            return False
        backend, weights = self.backend(), self.weights()
        self.activity.log(
            f"Run of {node_text(doc, pid)} with {weights_text(doc, pid, weights)} started on "
            f"backend {backend} ({backend_text(backend)})"
        )
        job = prediction_job(doc, backend, weights, pid)
        self.run_doc = self.canvas.doc
        self.start_job(job, self._on_finished, self._on_failed, self._on_cancelled)
        return True

    def _for_another_document(self) -> bool:
        """Whether the document the job ran for is no longer the canvas's (New or Open while it
        ran): its outcome is logged, never shown on the new document."""
        if self.run_doc is self.canvas.doc:
            return False
        self.activity.log("A run of the previous document ended: its outcome is not shown")
        return True

    def refuse(self, pid: str | None, problems: list) -> None:
        what = f"Cannot run {node_text(self.canvas.doc, pid)}:" if pid else "Cannot run:"
        header = f"{what} {len(problems)} problem(s) in its chain or the graph"
        status = "Cannot run: see the red nodes and the log"
        self.run_failed.emit(self.activity.refuse(header, problems, status))

    def stop(self) -> bool:
        if not super().stop():
            return False
        self.activity.show_phase("stopping…")
        self.activity.log("Stopping after the current batch…", "warning")
        return True

    def _on_finished(self, done: Prediction) -> None:
        if self._for_another_document():
            return
        result = done.result
        self.prediction_ready.emit(result, done.summary)
        shape = "×".join(str(s) for s in result.info.shape)
        self.activity.log(
            f"Prediction {shape} of {node_text(self.canvas.doc, result.prediction_node)} from "
            f"`{result.info.name}` in {result.seconds:.2f} s on backend {result.backend}",
            "ok",
        )
        self.activity.show_status(f"Prediction {shape} in {result.seconds:.2f} s", 8000)
        self.run_finished.emit(result)

    def _on_failed(self, exc: BaseException) -> None:
        """Problems of nodes go on the nodes; a failure of the run itself (backend, memory
        guard, an unexpected error) is no node's fault: the status bar shows it whole."""
        if self._for_another_document():
            return
        errors = node_errors(exc)
        text = failure_text(exc)
        self.canvas.set_run_errors(errors)
        self.activity.log(f"Run failed: {text}", "error")
        where = "see the red nodes and the log" if errors else text
        self.activity.show_status(f"Run failed: {where}", 15000)
        self.run_failed.emit(text)

    def _on_cancelled(self, message: str) -> None:
        self.activity.log(f"Run stopped: {message}", "warning")
        self.activity.show_status("Run stopped", 5000)
        self.run_stopped.emit(message)
