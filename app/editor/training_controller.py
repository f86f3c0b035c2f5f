"""Training in the editor: the Train action, the training panel, trained weights.

Train runs a :class:`~.jobs.Job` (:func:`.train_job.training_job`) through the window's
:class:`~.activity.Activity`; its epochs and steps feed the panel, and the outcome is a signal:
``train_finished(TrainResult)`` or ``train_failed(text)``. Trained weights (with their optimizer
state) live here, not in the document: Run predicts with them, Train continues from them (so a
second Train click resumes exactly), and they are saved to .npz or embedded in the saved graph on
request. Changing the architecture of a layer makes its weights unusable: they are dropped, the
other layers keep theirs, that is reported, and Undo brings them back; "Reset Weights" forgets
them all.

A document's embedded weights become the trained weights when it opens. When they cannot be used
yet (the graph does not run: a data file missing, the memory guard) or do not fit, they are kept as
*pending*: Run and Train use the document's embedded weights as the command line does, Save writes
them back unchanged, and they are taken up as soon as an edit makes the graph run with them. The
autosave holds the document as it would be saved with every weights embedded, and the training
state (epochs, curve, unsaved, embed) beside it, so that recovery after a crash brings them back
(:meth:`TrainingController.document_for_autosave`, :meth:`~TrainingController.autosave_state`,
:meth:`~TrainingController.restore_autosave_state`).

Trained weights are the user's work: Reset and Load ask before they discard unsaved ones, and
discarding or replacing weights is a change of the document (its modified mark) until it is saved.
A training belongs to the document it started on: opening another document or closing the window
asks first (:meth:`TrainingController.end_training`), and a result that arrives for a document no
longer shown is discarded. An edit made while training is checked against the new weights when
the training ends, exactly as an edit made after it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QCoreApplication, QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QWidget

from conv3dt_studio import nodes
from conv3dt_studio.nodes import DocumentProblems
from conv3dt_studio.nodes.settings import TRAINING_SCHEMA
from conv3dt_studio.nodes.training import (
    TrainingInterrupted,
    nothing_to_learn,
    train_plan,
    training_settings,
)
from conv3dt_studio.nodes.weights import (
    apply_weights,
    conv_layers,
    decode_weights,
    encode_weights,
    weights_dict,
)

from .actions import make_action
from .activity import Activity, JobController
from .canvas import Canvas
from .dialogs import NPZ_FILTER, Dialogs, confirmed_path
from .train_job import Training, training_job
from .training_panel import TrainingPanel
from .undo import SetTrainingSettingCmd

STOP_WAIT_MS = 30_000  # a training stops after its current batch: how long to wait for it


def merged_weights(
    old: dict[str, np.ndarray] | None, new: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """``new`` (a training's weights, of the Loss's chain) with the layers of ``old`` that it does
    not name: training one branch keeps the other branches' trained or loaded weights."""
    trained = {key.split("/")[0] for key in new}
    kept = {k: v for k, v in (old or {}).items() if k.split("/")[0] not in trained}
    return {**kept, **new}


def layer_weights(arrays: dict[str, np.ndarray], layer: str) -> dict[str, np.ndarray]:
    """The entries of ``arrays`` that belong to ``layer`` (its kernel, bias, optimizer state)."""
    return {k: v for k, v in arrays.items() if k.startswith(f"{layer}/")}


@dataclass
class DroppedWeights:
    """Trained weights an edit made unusable (all, or some layers'), kept so that undoing the
    edit brings them back: ``at`` are the undo stack's indexes before the edits that may have
    made them unusable (one edit; or every edit made while they were being trained)."""

    weights: dict[str, np.ndarray]
    epochs_done: int
    curve: list[tuple[int, dict[str, float]]]
    unsaved: bool
    replaced: bool
    at: tuple[int, ...]


class TrainingController(JobController):
    """Trains one window's document and keeps its trained weights: unsaved work until saved
    (``weights_changed`` says when that changes)."""

    train_started = Signal()
    train_finished = Signal(object)  # nodes.training.TrainResult
    train_failed = Signal(str)
    weights_changed = Signal()  # trained weights came, went, or were saved
    weights_updated = Signal()  # the weights Run uses are others now: earlier results are stale

    def __init__(
        self,
        canvas: Canvas,
        dialogs: Dialogs,
        activity: Activity,
        backend: Callable[[], str],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(activity, parent)
        self.canvas = canvas
        self.dialogs = dialogs
        self.backend = backend  # the backend chosen in the toolbar
        self.panel = TrainingPanel()
        self.weights: dict[str, np.ndarray] | None = None
        self.unsaved = False  # trained weights not saved yet (embedded or .npz)
        self.replaced = False  # weights were discarded or replaced since the document was saved
        self.epochs_done = 0
        # weights dropped by edits, the latest last (each Undo of its edit restores one)
        self.dropped: list[DroppedWeights] = []
        # the embedded weights of the opened document, as its JSON holds them, while they are not
        # used (the graph cannot run yet, or they do not fit it): Save writes them back
        self.pending: dict[str, Any] | None = None
        self.seeded: dict[str, np.ndarray] = {}  # "no weights": runs use the seeded ones
        self.encoded: tuple[dict[str, np.ndarray], dict[str, Any]] | None = None  # a cache
        self.weights_doc = canvas.doc  # the document the trained weights belong to
        self.training_doc: nodes.GraphDocument | None = None  # the document being trained
        self.edits_while_training: list[int] = []  # undo indexes before each, as `at`
        self.panel.setting_edited.connect(self._setting_edited)
        canvas.document_changed.connect(self.show_settings)
        canvas.document_changed.connect(self._drop_stale_weights)
        canvas.undo_stack.indexChanged.connect(self._restore_dropped)

    def make_actions(self, owner: QWidget) -> list[QAction]:
        """The Train menu's actions, owned by ``owner`` (the window)."""

        def a(*args) -> QAction:
            return make_action(owner, *args)

        self.action_train = a(
            "action_train",
            "&Train",
            self.train,
            "F6",
            "Fit the graph to its Target (needs a Target and a Loss node)",
        )
        self.action_save_weights = a(
            "action_save_weights",
            "Save &Weights…",
            self.save_weights,
            None,
            "Save the trained weights and optimizer state (.npz)",
        )
        self.action_load_weights = a(
            "action_load_weights",
            "&Load Weights…",
            self.load_weights,
            None,
            "Load weights (.npz, Keras kernel layout)",
        )
        self.action_reset_weights = a(
            "action_reset_weights",
            "Reset Weights",
            self.reset_weights,
            None,
            "Forget trained weights: start again from the seed",
        )
        self.action_embed_weights = make_action(
            owner, "action_embed_weights", "Embed Weights When Saving", checkable=True
        )
        self.activity.busy_changed.connect(self._follow_busy)
        return [
            self.action_train,
            self.action_save_weights,
            self.action_load_weights,
            self.action_reset_weights,
            self.action_embed_weights,
        ]

    # ------------------------------------------------------------------ settings
    def show_settings(self) -> None:
        try:
            values = training_settings(self.canvas.doc)
        except Exception:  # noqa: BLE001 - a damaged file: the defaults, the error in the log
            values = TRAINING_SCHEMA.defaults()
        self.panel.set_settings(values)

    def _drop_stale_weights(self) -> None:
        """After an edit of the architecture (filters, size, a layer's name...) the trained weights
        no longer fit: forget them, saying so, rather than failing every later Run. While a
        training runs, the edit is remembered and checked when the training ends."""
        # an edit runs inside the stack's push or undo: its index is still the one before
        index = self.canvas.undo_stack.index()
        if self.job is not None:
            if self.canvas.doc is self.training_doc:
                self.edits_while_training.append(index)
            return
        if self.pending is not None and self.canvas.doc is self.weights_doc:
            self._use_pending(opening=False)
        self._drop_if_stale((index,))

    def _drop_if_stale(self, at: tuple[int, ...]) -> None:
        """Forget the trained weights of the layers they no longer fit (after the edits made at
        the undo indexes ``at``) - all of them when none is left that fits - keeping them for an
        Undo of those edits."""
        if self.weights is None or not self.canvas.report.ok:
            return
        if self.canvas.doc is not self.weights_doc:
            return  # another document is being opened: it brings its own weights (or none)
        try:
            misfits = self._misfits(self.weights)
        except DocumentProblems:
            return  # not runnable right now: decide when it is
        if not misfits:
            return
        kept = dict(self.weights)
        for name in misfits:
            for key in layer_weights(self.weights, name):
                del kept[key]
        curve = self.panel.curve()
        self.dropped.append(
            DroppedWeights(self.weights, self.epochs_done, curve, self.unsaved, self.replaced, at)
        )
        self.replaced = True
        reason = "; ".join(misfits.values())
        if not self._names_a_layer(kept):
            self._forget_weights()
            self.activity.log(
                f"Trained weights dropped: they no longer fit the graph ({reason}); Undo brings "
                "them back",
                "warning",
            )
            return
        self.weights = kept
        self.weights_updated.emit()
        self.weights_changed.emit()
        names = ", ".join(f"`{name}`" for name in misfits)
        layers = "layer" if len(misfits) == 1 else "layers"
        self.activity.log(
            f"Trained weights of {layers} {names} dropped: they no longer fit the graph "
            f"({reason}); the other layers keep theirs. Undo brings them back",
            "warning",
        )

    def _restore_dropped(self, index: int) -> None:
        """Undo went back to before the edit that dropped trained weights: restore them, with
        their epochs and learning curve, when they fit again."""
        d = self.dropped[-1] if self.dropped else None
        if d is None or index not in d.at or self.job is not None:
            return
        try:
            self.check_weights(d.weights, "the trained weights")
        except (nodes.FileError, DocumentProblems):
            return
        self.dropped.pop()
        self.weights, self.epochs_done = d.weights, d.epochs_done
        self.panel.show_curve(d.curve)
        self.replaced = d.replaced
        self._set_unsaved(d.unsaved)
        self.weights_updated.emit()
        self.activity.log("Trained weights restored (the edit that dropped them was undone)", "ok")

    def _set_unsaved(self, unsaved: bool) -> None:
        self.unsaved = unsaved
        self.weights_doc = self.canvas.doc
        self.weights_changed.emit()

    def has_unsaved_weights(self) -> bool:
        return self.weights is not None and self.unsaved

    def weights_modified(self) -> bool:
        """The weights are not those of the saved document: trained and not saved, or discarded or
        replaced since it was saved (a change, like an edit)."""
        return self.has_unsaved_weights() or self.replaced

    def ok_to_discard(self, what: str) -> bool:
        """Before the action ``what`` ('Reset Weights', 'Load Weights') throws the trained weights
        away: True when they are saved, or the user agrees to lose them."""
        if not self.has_unsaved_weights():
            return True
        epochs = f" ({self.epochs_done} epochs)" if self.epochs_done else ""
        return self.dialogs.question(
            what,
            f"The trained weights{epochs} are not saved: {what} discards them for good "
            "(Save Weights… keeps them). Discard them?",
        )

    def end_training(self) -> bool:
        """Before the document is closed or replaced while a training runs: ask, then stop it and
        wait for its end, so that its weights are this document's (to keep or discard with the
        unsaved-changes question that follows). False when the user lets it train on, or it did
        not stop in time."""
        if self.job is None:
            return True
        if not self.dialogs.question(
            "Training running",
            "A training is running. Stop it? Its weights can then be saved or discarded.",
        ):
            return False
        self.stop()
        self.activity.pool.waitForDone(STOP_WAIT_MS)
        QCoreApplication.sendPostedEvents()  # its final signal: the weights arrive now
        if self.job is not None:
            self.activity.log("The training did not stop in time: try again", "error")
            return False
        return True

    def save_unsaved(self, how: str) -> bool:
        """Keep the trained weights before they are discarded: ``how`` 'embed' (embedded in the
        graph at its next save) or 'npz' (a weights file, asked for now)."""
        if how == "embed":
            self.action_embed_weights.setChecked(True)
            return True
        return self.save_weights()

    def graph_saved(self) -> None:
        """The graph was saved: with its weights when they were embedded."""
        self.replaced = False
        embedded = self.action_embed_weights.isChecked() and self.weights is not None
        self._set_unsaved(self.unsaved and not embedded)  # the title follows

    def _setting_edited(self, name: str, value: Any) -> None:
        doc = self.canvas.doc
        old = doc.extras.get("training", {}).get(name, TRAINING_SCHEMA.defaults()[name])
        if old == value:
            return
        self.canvas.undo_stack.push(SetTrainingSettingCmd(doc, name, old, value))

    # ------------------------------------------------------------------ training
    @property
    def is_training(self) -> bool:
        return self.job is not None

    def train(self) -> bool:
        """Start training, in the worker pool; False when a job runs already or the Loss's chain
        has problems (the training's own check: other branches do not block)."""
        if self.activity.busy:
            return False
        doc = self.canvas.doc
        try:
            train_plan(doc)
        except DocumentProblems as exc:
            header = f"Cannot train: {len(exc.problems)} problem(s)"
            self.train_failed.emit(
                self.activity.refuse(header, exc.problems, "Cannot train: see the log")
            )
            return False
        if self.weights is None:
            self.panel.reset()
            self.epochs_done = 0
        self.training_doc, self.edits_while_training = doc, []
        job = training_job(doc, self.backend(), self.run_weights(), self.epochs_done)
        self.start_job(job, self._on_finished, self._on_failed, report=self._on_report)
        self.train_started.emit()
        start = "continuing from the trained weights" if self.weights else "from seeded weights"
        self.activity.log(f"Training started on backend {self.backend()}, {start}")
        return True

    def stop(self) -> bool:
        if not super().stop():
            return False
        self.activity.log("Stopping training after the current batch…", "warning")
        return True

    def _on_report(self, kind: str, payload: tuple) -> None:
        if self.training_doc is not None and self.canvas.doc is not self.training_doc:
            return  # its graph was closed: the panel shows the graph now open
        if kind == "epoch_end":
            self._on_epoch(*payload)
        elif kind == "step":
            self.panel.add_step(*payload)

    def _on_epoch(self, epoch: int, logs: dict) -> None:
        self.panel.add_epoch(epoch, logs)
        val = f", val_loss {logs['val_loss']:.6g}" if "val_loss" in logs else ""
        self.activity.log(f"epoch {epoch + 1}: loss {logs['loss']:.6g}{val}", group="epoch")
        warning = nothing_to_learn(epoch, logs)
        if warning:
            self.activity.log(warning[0].upper() + warning[1:], "warning")

    def _on_finished(self, done: Training) -> None:
        result = done.result
        losses = result.history["loss"]
        word = "stopped" if result.stopped else "finished"
        if self.canvas.doc is not self.training_doc:  # never another document's weights
            self.activity.log(
                f"Training {word}: its graph was closed, its weights are discarded", "warning"
            )
            self.train_finished.emit(result)
            return
        self._adopt_trained(weights_dict(result.graph.layers), len(losses))
        self.panel.show_gradients(done.gradients)
        final = f"final loss {losses[-1]:.6g}" if losses else "no epoch completed"
        if result.history.get("val_loss"):
            final += f", validation loss {result.history['val_loss'][-1]:.6g}"
        self.activity.log(
            f"Training {word}: {len(losses)} epochs in {result.seconds:.2f} s, {final}",
            "warning" if result.stopped or (losses and losses[0] == 0) else "ok",
        )
        self.activity.show_status(f"Training {word}: {final}", 8000)
        if self.edits_while_training:  # as if those edits were made now
            self._drop_if_stale(tuple(self.edits_while_training))
        self.train_finished.emit(result)

    def _adopt_trained(self, trained: dict[str, np.ndarray], epochs: int) -> None:
        """A training's weights (its chain's layers) become the trained weights, with the other
        layers' (or the pending embedded ones') beside them: unsaved work, autosaved."""
        base = self.weights
        if base is None and self.pending is not None:  # what the training started from
            try:
                base = decode_weights(self.pending)
            except nodes.FileError:
                base = None
        self.pending = None
        self.epochs_done += epochs
        self.weights = merged_weights(base, trained)
        self.dropped = []
        self._set_unsaved(True)
        self.weights_updated.emit()

    def _on_failed(self, exc: BaseException) -> None:
        if isinstance(exc, TrainingInterrupted) and self._keep_interrupted(exc):
            return
        if isinstance(exc, DocumentProblems):
            self.canvas.set_run_errors({p.node: p.message for p in exc.problems if p.node})
            text = "; ".join(str(p) for p in exc.problems)
        else:
            text = f"{type(exc).__name__}: {exc}"
        self.activity.log(f"Training failed: {text}", "error")
        self.activity.show_status("Training failed: see the log", 8000)
        self.train_failed.emit(text)

    def _keep_interrupted(self, exc: TrainingInterrupted) -> bool:
        """A training that failed after finishing some epochs: their weights are kept (unsaved
        work, as after Stop). False when there is nothing to keep."""
        if exc.weights is None or self.canvas.doc is not self.training_doc:
            return False
        self._adopt_trained(exc.weights, exc.epochs_finished)
        text = f"{exc}; the weights of epoch {self.epochs_done}, the last finished, are kept"
        self.activity.log(f"Training stopped: {text}", "error")
        self.activity.show_status("Training stopped: see the log", 8000)
        if self.edits_while_training:
            self._drop_if_stale(tuple(self.edits_while_training))
        self.train_failed.emit(text)
        return True

    # ------------------------------------------------------------------ weights
    def check_weights(self, arrays: dict[str, np.ndarray], source: str) -> None:
        """Raise a clear error when ``arrays`` do not fit the current graph: they must name a layer
        of a chain that runs, and fit every layer they name. Like Run, they need not cover every
        branch (training one Loss's chain gives weights for that chain only)."""
        layers = self._runnable_layers()
        if not self._names_a_layer(arrays, layers):
            names = sorted(layer.name for layer in conv_layers(layers))
            found = sorted({key.split("/")[0] for key in arrays})
            raise nodes.FileError(
                f"`{source}` has weights for no layer of the graph (it has: "
                f"{', '.join(found) or 'nothing'}; the graph's layers: {', '.join(names)})"
            )
        apply_weights(arrays, layers, source=source, partial=True)

    def _runnable_layers(self) -> list:
        """The layers of every chain of the graph that runs (built with seeded weights); a
        :class:`DocumentProblems` when none runs, so nothing can be checked."""
        from conv3dt_studio.nodes.runner import build_graph

        doc = self.canvas.doc
        plans, refusal = [], None
        for pred in doc.ids_with_role(nodes.OUTPUT):
            try:
                plans.append(nodes.plan(doc, pred))
            except DocumentProblems as exc:
                refusal = refusal or exc
        if not plans:
            raise refusal or DocumentProblems(nodes.validate(doc).problems)
        return [layer for p in plans for layer in build_graph(doc, p, "numpy").layers]

    def _names_a_layer(self, arrays: dict[str, np.ndarray], layers: list | None = None) -> bool:
        """Whether ``arrays`` hold the kernel of a layer of a chain that runs."""
        layers = self._runnable_layers() if layers is None else layers
        return any(f"{layer.name}/kernel" in arrays for layer in conv_layers(layers))

    def _misfits(self, arrays: dict[str, np.ndarray]) -> dict[str, str]:
        """The layers of the graph whose weights in ``arrays`` no longer fit them, with why
        (``""``: the arrays fit no layer at all)."""
        layers = self._runnable_layers()
        if not self._names_a_layer(arrays, layers):
            return {"": "they name none of its layers"}
        out = {}
        for layer in conv_layers(layers):
            own = layer_weights(arrays, layer.name)
            try:
                apply_weights(own, [layer], source="the trained weights", partial=True)
            except nodes.FileError as exc:
                out[layer.name] = str(exc)
        return out

    def run_weights(self) -> dict[str, np.ndarray] | None:
        """The weights Run, Train, previews and exports use: the trained ones; None (the
        document's embedded weights, as the command line uses them) while those are pending or
        there are none; no weights (seeded) when the embedded ones were dropped or reset."""
        if self.weights is not None:
            return self.weights
        if self.pending is not None or not self.canvas.doc.extras.get("weights"):
            return None
        return self.seeded

    def save_weights(self, path: str | None = None) -> bool:
        if self.weights is None:
            self.dialogs.message("No trained weights", "Train the graph (or load weights) first.")
            return False
        if path is None:
            chosen = self.dialogs.save_path("Save weights", NPZ_FILTER, "weights.npz")
            path = chosen and confirmed_path(self.dialogs, chosen, ".npz", always=True)
        if not path:
            return False
        from conv3dt_studio.nodes.files import save_npz

        try:
            save_npz(path if path.endswith(".npz") else path + ".npz", self.weights)
        except nodes.FileError as exc:
            self.dialogs.message("Cannot save weights", str(exc))
            return False
        self.activity.log(f"Saved weights and optimizer state to {path}", "ok")
        self._set_unsaved(False)
        return True

    def _refused_while_training(self, what: str) -> bool:
        """True (saying why) while a training runs: its weights replace the current ones when it
        ends, so loading or resetting them now would be lost silently."""
        if self.job is None:
            return False
        self.activity.log(f"Cannot {what} while training: stop the training first", "warning")
        self.activity.show_status(f"Stop the training first to {what}")
        return True

    def _follow_busy(self, _busy: bool) -> None:
        for action in (self.action_load_weights, self.action_reset_weights):
            action.setEnabled(self.job is None)

    def load_weights(self, path: str | None = None) -> bool:
        if self._refused_while_training("load weights"):
            return False
        path = path or self.dialogs.open_path("Load weights", NPZ_FILTER)
        if not path:
            return False
        from conv3dt_studio.nodes.files import load_arrays

        try:
            arrays = load_arrays(path)
            self.check_weights(arrays, path)
        except (nodes.FileError, DocumentProblems) as exc:
            self.dialogs.message("Cannot load weights", str(exc))
            self.activity.log(f"Cannot load weights: {exc}", "error")
            return False
        if not self.ok_to_discard("Load Weights"):
            return False
        self.weights = arrays
        self.epochs_done = 0
        self.dropped = []
        self.pending = None
        self.replaced = True
        self.panel.reset()  # no curve: these weights were trained elsewhere
        self._set_unsaved(False)
        self.weights_updated.emit()
        self.activity.log(f"Loaded weights from {path}; Run and Train use them", "ok")
        return True

    def reset_weights(self) -> bool:
        """Reset Weights: forget the trained weights (asking first when they are not saved);
        False when the user keeps them."""
        if self._refused_while_training("reset the weights"):
            return False
        if self.weights is None and self.pending is None:
            return True
        if not self.ok_to_discard("Reset Weights"):
            return False
        self.dropped = []
        self.replaced = True  # a change of the document: the title shows it
        had_pending, self.pending = self.pending is not None, None
        self._forget_weights()
        if had_pending:  # Run no longer uses the embedded weights
            self.weights_updated.emit()
        self.activity.log("Weights reset: Run and Train start from seeded weights again")
        return True

    def _forget_weights(self) -> None:
        had = self.weights is not None
        self.weights = None
        self.encoded = None  # nor their encoding kept alive
        self.epochs_done = 0
        self.panel.reset()
        self._set_unsaved(False)
        if had:
            self.weights_updated.emit()

    def document_opened(self, doc: nodes.GraphDocument) -> None:
        """A new document: its embedded weights (if any) become the trained weights, or pending
        ones when they cannot be used yet."""
        self.stop()
        self.dropped = []
        self.replaced = False
        self.pending = None
        self._forget_weights()
        self.weights_doc = doc
        embedded = doc.extras.get("weights")
        self.action_embed_weights.setChecked(bool(embedded))
        if embedded:
            self.pending = embedded
            self._use_pending(opening=True)
        self.show_settings()

    def _use_pending(self, opening: bool) -> None:
        """Take up the pending embedded weights when the graph runs with them; else keep them
        pending, saying why when the document is opened."""
        assert self.pending is not None
        try:
            arrays = decode_weights(self.pending)
            self.check_weights(arrays, "embedded weights")
        except DocumentProblems as exc:
            if opening:
                self.activity.log(
                    f"Embedded weights not used yet: the graph cannot run ({exc}); they are kept "
                    "(Save writes them back) and used once it can",
                    "warning",
                )
            return
        except nodes.FileError as exc:
            if opening:
                self.activity.log(
                    f"Embedded weights not used: {exc}; they are kept (Save writes them back; "
                    "Reset Weights removes them)",
                    "warning",
                )
            return
        self.weights, self.pending = arrays, None
        if opening:
            self.activity.log("Using the weights embedded in the graph", "ok")
            return
        self.weights_updated.emit()
        self.weights_changed.emit()
        self.activity.log("Using the weights embedded in the graph, now that it can run", "ok")

    def document_for_saving(self, doc: nodes.GraphDocument) -> nodes.GraphDocument:
        """``doc`` with the trained weights embedded when asked for (or, while they are pending,
        the embedded weights it was opened with, unchanged), else without any."""
        out = doc.copy()
        out.extras.pop("weights", None)
        if self.action_embed_weights.isChecked():
            embedded = self._embedded()
            if embedded is not None:
                out.extras["weights"] = embedded
        return out

    def document_for_autosave(self, doc: nodes.GraphDocument) -> nodes.GraphDocument:
        """``doc`` as the autosave holds it: with every weights embedded (trained or pending),
        whether or not Save would embed them (:meth:`autosave_state` says)."""
        out = doc.copy()
        out.extras.pop("weights", None)
        embedded = self._embedded()
        if embedded is not None:
            out.extras["weights"] = embedded
        return out

    def _embedded(self) -> dict[str, Any] | None:
        """The weights as a document embeds them: the trained ones (encoded once per set of
        weights), else the pending ones as they were; None when there are none."""
        if self.weights is None:
            return self.pending
        if self.encoded is None or self.encoded[0] is not self.weights:
            self.encoded = (self.weights, encode_weights(self.weights))
        return self.encoded[1]

    def autosave_state(self) -> dict[str, Any] | None:
        """What the autosave keeps beside the document's embedded weights, so that recovery
        restores them as they were: epochs done, the learning curve, whether they were saved
        and whether Save embeds them. None when there are no weights."""
        if self.weights is None and self.pending is None:
            return None
        return {
            "epochs": self.epochs_done,
            "unsaved": self.has_unsaved_weights(),
            "embed": self.action_embed_weights.isChecked(),
            "curve": [[epoch, logs] for epoch, logs in self.panel.curve()],
        }

    def restore_autosave_state(self, state: dict[str, Any] | None) -> None:
        """After :meth:`document_opened` of a restored autosave: its weights as they were (see
        :meth:`autosave_state`). Unsaved weights that cannot be used yet are embedded at the
        next Save, so that they are kept."""
        if state is None:
            return
        embed = state["embed"] or (state["unsaved"] and self.weights is None)
        self.action_embed_weights.setChecked(embed)
        if self.weights is None:
            return
        self.epochs_done = state["epochs"]
        self.panel.show_curve([(epoch, logs) for epoch, logs in state["curve"]])
        self.replaced = True  # the restored work is unsaved, its weights too
        self._set_unsaved(state["unsaved"])
        if state["unsaved"]:
            epochs = f" ({self.epochs_done} epochs)" if self.epochs_done else ""
            self.activity.log(f"Restored the trained weights{epochs}: they are not saved yet", "ok")
