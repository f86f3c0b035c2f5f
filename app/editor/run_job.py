"""A prediction run as a :class:`~.jobs.Job`, and what to run and what its outcome means.

:func:`prediction_job` gives the job's function: :func:`nodes.run_document` on its own copy of the
document, for the Prediction 6D node that :func:`prediction_to_run` picks from the canvas selection,
then the target of the Loss it feeds and the summary the inspector shows (all off the GUI
thread). Stop is checked between batches; a stopped run ends as a cancellation. The other helpers are pure: which weights a run uses
(:func:`weights_text`), and what a failure means for the nodes (:func:`node_errors`) and for the
user (:func:`failure_text`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

from conv3dt_studio.compute import BackendError, Conv3DTStudioError, StateError
from conv3dt_studio.nodes import (
    DocumentProblems,
    GraphDocument,
    MemoryLimitError,
    RunResult,
    run_document,
)
from conv3dt_studio.nodes.catalogue import LAYER_ROLE, OUTPUT
from conv3dt_studio.nodes.training import prediction_target

from .jobs import Cancelled, JobControl
from .prediction_inspector import Summary, summarize


class Prediction(NamedTuple):
    """A finished run: the result and the inspector's summary of its prediction."""

    result: RunResult
    summary: Summary


def prediction_job(
    doc: GraphDocument,
    backend: str = "auto",
    weights: dict | None = None,
    prediction_node: str | None = None,
) -> Callable[[JobControl], Prediction]:
    """The function of a job that runs ``prediction_node`` (None: the first Prediction 6D) of a
    copy of ``doc`` (taken now, on the caller's thread) with the trained ``weights``, or the
    document's embedded or seeded weights when None."""
    doc = doc.copy()

    def predict(control: JobControl) -> Prediction:
        try:
            result = run_document(
                doc,
                backend=backend,
                weights=weights,
                progress=control.progress,
                should_stop=control.should_stop,
                prediction_node=prediction_node,
            )
        except StateError as exc:
            if control.should_stop():
                raise Cancelled(str(exc)) from exc
            raise
        # what the Loss compares it with, shown beside it (a file is read here, off the GUI thread)
        result.target = prediction_target(
            doc, result.prediction_node, result.input, result.backend, control.progress
        )
        return Prediction(result, summarize(result.prediction))  # even when Stop came too late

    return predict


def prediction_to_run(doc: GraphDocument, selected: Iterable[str] = ()) -> str | None:
    """The Prediction 6D node a run computes: a selected one, else one downstream of a selected
    node, else one upstream of a selected node or of a node it feeds (the one feeding a selected
    Loss, or the Loss a selected Target feeds), else the first; between several, the document's
    order decides. None when there is none."""
    preds = doc.ids_with_role(OUTPUT)
    chosen = {s for s in selected if s in doc.nodes}
    downstream = set().union(*(doc.descendants(s) for s in chosen))
    reached = chosen | downstream
    upstream = {p for p in preds if doc.descendants(p) & reached}  # graphs are small
    for candidates in (chosen, downstream, upstream, set(preds)):
        pid = next((p for p in preds if p in candidates), None)
        if pid is not None:
            return pid
    return None


def chain_layer_names(doc: GraphDocument, node_id: str) -> set[str]:
    """The layer names in the chain into ``node_id`` (as :func:`nodes.runner.build_graph` names
    them: a Conv3DTranspose node's ``name``, else its id); weights are keyed by them."""
    convs = (n for n in doc.ancestors(node_id) if doc.role(n) == LAYER_ROLE)
    return {doc.params(n)["name"] or n for n in convs}


def weights_text(doc: GraphDocument, node_id: str, weights: dict | None) -> str:
    """Which weights a run of ``node_id`` uses, for the log: the trained ones only when they name
    a layer of its chain (the run keeps the seeded weights of every layer they do not name);
    without trained weights (None), the document's embedded ones, else seeded ones; no weights
    at all (``{}``: the embedded ones were dropped or reset) are seeded ones."""
    if weights is None:
        return "embedded weights" if doc.extras.get("weights") else "seeded weights"
    if not weights:
        return "seeded weights"
    if any(f"{name}/kernel" in weights for name in chain_layer_names(doc, node_id)):
        return "trained weights"
    return "seeded weights (the trained weights name none of its layers)"


def node_errors(exc: BaseException) -> dict[str, str]:
    """A failed run's messages for the nodes at fault; empty when no node is (an unavailable
    backend, the memory guard, an unexpected error): those belong in the log and status bar."""
    if isinstance(exc, DocumentProblems) and not isinstance(exc, MemoryLimitError):
        return {p.node: p.message for p in exc.problems if p.node}
    return {}


def failure_text(exc: BaseException) -> str:
    """One line saying why a run failed."""
    if isinstance(exc, MemoryLimitError):  # about the run, not the node it names
        return "; ".join(p.message for p in exc.problems)
    if isinstance(exc, BackendError):
        return f"{exc}; choose another backend in the toolbar (auto falls back to NumPy)"
    if isinstance(exc, Conv3DTStudioError):  # already worded for the user
        return " ".join(str(exc).split())
    return f"{type(exc).__name__}: {exc}"
