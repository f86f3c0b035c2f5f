"""Run: compute a Prediction 6D of the document in a :class:`~.jobs.Job`.

:meth:`RunController.run` picks the Prediction 6D (:func:`.run_job.prediction_to_run`), refuses
when its chain has problems (listed in the log, shown on the nodes; other branches do not block),
and starts the job through the window's :class:`~.activity.Activity`. The outcome is a signal:
``prediction_ready(result, summary)`` then ``run_finished(result)``, or ``run_failed(text)``, or
``run_stopped(message)``. Failures of nodes go on the nodes, others to the log and status bar.
The summary carries the run's :class:`~.prediction_inspector.RunContext`: what only the window
knows (the inspected node and its layout, why there is no target), and whether the graph or the
weights changed while the job ran (its prediction is then shown Stale).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from PySide6.QtCore import QObject, Signal

from conv3dt_studio.compute import Conv3DTStudioError
from conv3dt_studio.nodes import GraphDocument
from conv3dt_studio.nodes.catalogue import LOSS
from conv3dt_studio.nodes.runner import probe_document
from conv3dt_studio.nodes.validation import relevant_problems, validate

from .activity import Activity, JobController
from .backend_selector import backend_text
from .canvas import Canvas, display_name
from .prediction_inspector import NO_LOSS, RunContext
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


def feeds_a_loss(doc: GraphDocument, node_id: str | None) -> bool:
    """Whether ``node_id`` (a Prediction 6D) is the prediction of a Loss."""
    if node_id not in doc.nodes:
        return False
    return any(
        doc.role(link.dst[0]) == LOSS and link.dst[1] == "prediction"
        for link in doc.downstream(node_id)
    )


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
        self.context = RunContext()  # of the job under way
        self.run_weights: dict | None = None  # the weights it runs with
        self.changed_while_running = False  # the document changed since the job started
        canvas.document_changed.connect(self._document_changed)

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
        shown = node_text(self.canvas.doc, node_id)
        self.activity.log(f"Inspecting the output of {shown}")
        # an Input's output has the layout of the layer it feeds: the run's graph has no layer
        context = RunContext(node=shown, channels_first=self.canvas.channels_first(node_id))
        return self._start(doc, probe, validate(doc).problems, context)

    def _start(
        self,
        doc: GraphDocument,
        pid: str | None,
        problems: list | None = None,
        context: RunContext | None = None,
    ) -> bool:
        self.canvas.set_run_errors({})
        problems = self.canvas.report.problems if problems is None else problems
        if pid is not None:  # else every problem blocks ("no Prediction 6D node" among them)
            problems = relevant_problems(doc, problems, pid)
        if problems:
            self.refuse(pid, problems)
            return False
        backend, weights = self.backend(), self.weights()
        no_target = "its Loss's target cannot be computed" if feeds_a_loss(doc, pid) else NO_LOSS
        context = replace(context or RunContext(), no_target=no_target)
        self.activity.log(
            f"Run of {context.node or node_text(doc, pid)} with {weights_text(doc, pid, weights)} started on "
            f"backend {backend} ({backend_text(backend)})"
        )
        job = prediction_job(doc, backend, weights, pid)
        self.run_doc, self.context = self.canvas.doc, context
        self.run_weights, self.changed_while_running = weights, False
        self.start_job(job, self._on_finished, self._on_failed, self._on_cancelled)
        return True

    def _document_changed(self) -> None:
        if self.job is not None:
            self.changed_while_running = True

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
        # the job copied the graph and took the weights when it started: later edits are not in it
        stale = self.changed_while_running or self.weights() is not self.run_weights
        context = replace(self.context, stale=stale)
        self.prediction_ready.emit(result, replace(done.summary, context=context))
        shape = "×".join(str(s) for s in result.info.shape)
        of = context.node or node_text(self.canvas.doc, result.prediction_node)
        self.activity.log(
            f"Prediction {shape} of {of} from `{result.info.name}` in "
            f"{result.seconds:.2f} s on backend {result.backend}",
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
