"""Training in the editor: the Train action, the training panel, trained weights.

Trained weights (with their optimizer state) live here, not in the document: Run predicts with them,
Train continues from them (so a second Train click resumes exactly), and they are saved to .npz or
embedded in the saved graph on request. Changing the architecture of a layer makes them unusable;
that is reported, and "Reset Weights" forgets them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, QThreadPool, Signal
from PySide6.QtGui import QAction, QKeySequence

from conv3dt_studio import nodes
from conv3dt_studio.nodes import DocumentProblems
from conv3dt_studio.nodes.settings import TRAINING_SCHEMA
from conv3dt_studio.nodes.training import train_plan, training_settings
from conv3dt_studio.nodes.weights import (
    apply_weights,
    conv_layers,
    decode_weights,
    encode_weights,
    weights_dict,
)

from .dialogs import NPZ_FILTER
from .train_worker import TrainWorker
from .training_panel import TrainingPanel
from .undo import SetTrainingSettingCmd

if TYPE_CHECKING:
    from .main_window import MainWindow


def merged_weights(
    old: dict[str, np.ndarray] | None, new: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """``new`` (a training's weights, of the Loss's chain) with the layers of ``old`` that it does
    not name: training one branch keeps the other branches' trained or loaded weights."""
    trained = {key.split("/")[0] for key in new}
    kept = {k: v for k, v in (old or {}).items() if k.split("/")[0] not in trained}
    return {**kept, **new}


class TrainingController(QObject):
    train_finished = Signal(object)  # nodes.training.TrainResult
    train_failed = Signal(str)

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.panel = TrainingPanel()
        self.worker: TrainWorker | None = None
        self.weights: dict[str, np.ndarray] | None = None
        self.epochs_done = 0
        self.pool = QThreadPool.globalInstance()
        self.panel.setting_edited.connect(self._setting_edited)
        window.canvas.document_changed.connect(self.show_settings)
        window.canvas.document_changed.connect(self._drop_stale_weights)

    def make_actions(self) -> list[QAction]:
        a = self.window._action
        self.action_train = a(
            "action_train",
            "&Train",
            self.train,
            QKeySequence("F6"),
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
        self.action_embed_weights = QAction("Embed Weights When Saving", self.window)
        self.action_embed_weights.setObjectName("action_embed_weights")
        self.action_embed_weights.setCheckable(True)
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
            values = training_settings(self.window.canvas.doc)
        except Exception:  # noqa: BLE001 - a damaged file: the defaults, the error in the log
            values = TRAINING_SCHEMA.defaults()
        self.panel.set_settings(values)

    def _drop_stale_weights(self) -> None:
        """After an edit of the architecture (filters, size, a layer's name...) the trained weights
        no longer fit: forget them, saying so, rather than failing every later Run."""
        if self.weights is None or self.worker is not None or not self.window.canvas.report.ok:
            return
        try:
            self.check_weights(self.weights, "the trained weights")
        except nodes.FileError as exc:
            self.reset_weights()
            self.window.log.log(
                f"Trained weights dropped: they no longer fit the graph ({exc})", "warning"
            )
        except DocumentProblems:
            pass  # not runnable right now: decide when it is

    def _setting_edited(self, name: str, value: Any) -> None:
        doc = self.window.canvas.doc
        old = doc.extras.get("training", {}).get(name, TRAINING_SCHEMA.defaults()[name])
        if old == value:
            return
        self.window.canvas.undo_stack.push(SetTrainingSettingCmd(doc, name, old, value))

    # ------------------------------------------------------------------ training
    @property
    def is_training(self) -> bool:
        return self.worker is not None

    def train(self) -> bool:
        w = self.window
        if self.worker is not None or w.is_running():
            return False
        doc = w.canvas.doc
        try:  # the training's own check: only the Loss's chain must be valid
            train_plan(doc)
            problems = []
        except DocumentProblems as exc:
            problems = exc.problems
        if problems:
            header = f"Cannot train: {len(problems)} problem(s)"
            self.train_failed.emit(w.report_problems(header, problems, "Cannot train: see the log"))
            return False
        if self.weights is None:
            self.panel.reset()
            self.epochs_done = 0
        self.worker = TrainWorker(doc, w.backend(), self.weights, self.epochs_done)
        s = self.worker.signals
        s.progress.connect(w._on_progress)
        s.epoch_end.connect(self._on_epoch)
        s.step.connect(lambda step, info: self.panel.add_step(step, info))
        s.finished.connect(self._on_finished)
        s.failed.connect(self._on_failed)
        w._set_busy(True)
        w.docks["training_panel"].raise_()
        start = "continuing from the trained weights" if self.weights else "from seeded weights"
        w.log.log(f"Training started on backend {w.backend()}, {start}")
        self.pool.start(self.worker)
        return True

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.window.log.log("Stopping training after the current batch…", "warning")

    def _on_epoch(self, epoch: int, logs: dict) -> None:
        self.panel.add_epoch(epoch, logs)
        val = f", val_loss {logs['val_loss']:.6g}" if "val_loss" in logs else ""
        self.window.log.log(f"epoch {epoch + 1}: loss {logs['loss']:.6g}{val}")

    def _done(self) -> None:
        self.worker = None
        self.window._set_busy(False)

    def _on_finished(self, result) -> None:
        self._done()
        w = self.window
        losses = result.history["loss"]
        self.epochs_done += len(losses)
        self.weights = merged_weights(self.weights, weights_dict(result.graph.layers))
        grads = {
            layer.name: layer.get_gradients()
            for layer in conv_layers(result.graph.layers)
            if layer.config["store"] and layer._grads is not None
        }
        self.panel.show_gradients(grads)
        final = f"final loss {losses[-1]:.6g}" if losses else "no epoch completed"
        if result.history.get("val_loss"):
            final += f", validation loss {result.history['val_loss'][-1]:.6g}"
        word = "stopped" if result.stopped else "finished"
        w.log.log(
            f"Training {word}: {len(losses)} epochs in {result.seconds:.2f} s, {final}",
            "warning" if result.stopped else "ok",
        )
        w.statusBar().showMessage(f"Training {word}: {final}", 8000)
        self.train_finished.emit(result)

    def _on_failed(self, exc: BaseException) -> None:
        self._done()
        w = self.window
        if isinstance(exc, DocumentProblems):
            w.canvas.set_run_errors({p.node: p.message for p in exc.problems if p.node})
            text = "; ".join(str(p) for p in exc.problems)
        else:
            text = f"{type(exc).__name__}: {exc}"
        w.log.log(f"Training failed: {text}", "error")
        w.statusBar().showMessage("Training failed: see the log", 8000)
        self.train_failed.emit(text)

    # ------------------------------------------------------------------ weights
    def check_weights(self, arrays: dict[str, np.ndarray], source: str) -> None:
        """Raise a clear error when ``arrays`` do not fit the current graph: they must name a layer
        of a chain that runs, and fit every layer they name. Like Run, they need not cover every
        branch (training one Loss's chain gives weights for that chain only)."""
        from conv3dt_studio.nodes.runner import build_graph

        doc = self.window.canvas.doc
        plans, refusal = [], None
        for pred in doc.ids_with_role(nodes.OUTPUT):
            try:
                plans.append(nodes.plan(doc, pred))
            except DocumentProblems as exc:
                refusal = refusal or exc
        if not plans:  # nothing runs, so nothing can be checked
            raise refusal or DocumentProblems(nodes.validate(doc).problems)
        layers = [layer for p in plans for layer in build_graph(doc, p, "numpy").layers]
        names = sorted(layer.name for layer in conv_layers(layers))
        if not any(f"{name}/kernel" in arrays for name in names):
            found = sorted({key.split("/")[0] for key in arrays})
            raise nodes.FileError(
                f"`{source}` has weights for no layer of the graph (it has: "
                f"{', '.join(found) or 'nothing'}; the graph's layers: {', '.join(names)})"
            )
        apply_weights(arrays, layers, source=source, partial=True)

    def save_weights(self, path: str | None = None) -> bool:
        w = self.window
        if self.weights is None:
            w.dialogs.message("No trained weights", "Train the graph (or load weights) first.")
            return False
        path = path or w.dialogs.save_path("Save weights", NPZ_FILTER, "weights.npz")
        if not path:
            return False
        from conv3dt_studio.nodes.files import save_npz

        try:
            save_npz(path if path.endswith(".npz") else path + ".npz", self.weights)
        except nodes.FileError as exc:
            w.dialogs.message("Cannot save weights", str(exc))
            return False
        w.log.log(f"Saved weights and optimizer state to {path}", "ok")
        return True

    def load_weights(self, path: str | None = None) -> bool:
        w = self.window
        path = path or w.dialogs.open_path("Load weights", NPZ_FILTER)
        if not path:
            return False
        from conv3dt_studio.nodes.files import load_arrays

        try:
            arrays = load_arrays(path)
            self.check_weights(arrays, path)
        except (nodes.FileError, DocumentProblems) as exc:
            w.dialogs.message("Cannot load weights", str(exc))
            w.log.log(f"Cannot load weights: {exc}", "error")
            return False
        self.weights = arrays
        self.epochs_done = 0
        w.log.log(f"Loaded weights from {path}; Run and Train use them", "ok")
        return True

    def reset_weights(self) -> None:
        self.weights = None
        self.epochs_done = 0
        self.panel.reset()
        self.window.log.log("Weights reset: Run and Train start from seeded weights again")

    def document_opened(self, doc: nodes.GraphDocument) -> None:
        """A new document: its embedded weights (if any) become the trained weights."""
        self.stop()
        self.reset_weights()
        embedded = doc.extras.get("weights")
        self.action_embed_weights.setChecked(bool(embedded))
        if embedded:
            try:
                self.weights = decode_weights(embedded)
                self.check_weights(self.weights, "embedded weights")
            except (nodes.FileError, DocumentProblems) as exc:
                self.weights = None
                self.window.log.log(f"Embedded weights not used: {exc}", "warning")
            else:
                self.window.log.log("Using the weights embedded in the graph", "ok")
        self.show_settings()

    def document_for_saving(self, doc: nodes.GraphDocument) -> nodes.GraphDocument:
        """``doc`` with the trained weights embedded when asked for, else without any."""
        out = doc.copy()
        out.extras.pop("weights", None)
        if self.action_embed_weights.isChecked() and self.weights is not None:
            out.extras["weights"] = encode_weights(self.weights)
        return out
