"""Running a document off the GUI thread (QThreadPool + QRunnable, signals on a QObject).

The worker runs :func:`nodes.run_document` on its own copy of the document, for the Prediction 6D
node that :func:`prediction_to_run` picks from the canvas selection. Stop sets a flag that
``should_stop`` reads between batches. Every outcome is a signal: ``finished(RunResult)``,
``failed(exception)`` or ``cancelled(message)``; nothing escapes the thread. :func:`node_errors` and
:func:`failure_text` say what a failure means for the nodes and for the user.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from PySide6.QtCore import QObject, QRunnable, Signal

from conv3dt_studio.compute import BackendError, Conv3DTStudioError, StateError
from conv3dt_studio.nodes import DocumentProblems, GraphDocument, MemoryLimitError, run_document
from conv3dt_studio.nodes.catalogue import LAYER_ROLE, OUTPUT

from .prediction_inspector import summarize


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
    without trained weights, the document's embedded ones, else seeded ones."""
    if weights is None:
        return "embedded weights" if doc.extras.get("weights") else "seeded weights"
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


class RunSignals(QObject):
    progress = Signal(float, str)
    finished = Signal(object, object)  # nodes.RunResult, prediction_inspector.Summary
    failed = Signal(object)  # the exception
    cancelled = Signal(str)


class RunWorker(QRunnable):
    """One prediction run; create it on the GUI thread, start it on a QThreadPool."""

    def __init__(
        self,
        doc: GraphDocument,
        backend: str = "auto",
        weights=None,
        prediction_node: str | None = None,
    ) -> None:
        super().__init__()
        self.setAutoDelete(False)  # the window keeps it until a final signal arrives
        self.doc = doc.copy()
        self.backend = backend
        self.weights = weights  # trained weights (named arrays) or None: the document's/seeded
        self.prediction_node = prediction_node  # None: the document's first Prediction 6D
        self.signals = RunSignals()
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        try:
            result = run_document(
                self.doc,
                backend=self.backend,
                weights=self.weights,
                progress=lambda f, msg: self.signals.progress.emit(float(f), str(msg)),
                should_stop=self._stop.is_set,
                prediction_node=self.prediction_node,
            )
        except StateError as exc:
            if self._stop.is_set():
                self.signals.cancelled.emit(str(exc))
            else:
                self.signals.failed.emit(exc)
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a message
            self.signals.failed.emit(exc)
        else:
            try:
                summary = summarize(result.prediction)
            except BaseException as exc:  # noqa: BLE001
                self.signals.failed.emit(exc)
                return
            self.signals.finished.emit(result, summary)  # even when Stop came too late
