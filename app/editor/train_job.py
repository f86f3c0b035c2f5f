"""Training a document off the GUI thread (QThreadPool + QRunnable, signals on a QObject).

The worker runs :func:`nodes.training.train_document` on its own copy of the document, starting from
the given weights (and optimizer state) when training continues. Stop sets a flag read between
batches; the history so far still arrives with ``finished``. Every outcome is a signal.
"""

from __future__ import annotations

import threading

import numpy as np
from PySide6.QtCore import QObject, QRunnable, Signal

from conv3dt_studio.nodes import GraphDocument
from conv3dt_studio.nodes.training import train_document


class TrainSignals(QObject):
    progress = Signal(float, str)
    epoch_end = Signal(int, object)  # epoch index, {"loss", "val_loss"?}
    step = Signal(int, object)  # step index, {"loss", <layer>: {kernel, bias, input norms}}
    finished = Signal(object)  # nodes.training.TrainResult
    failed = Signal(object)  # the exception


class TrainWorker(QRunnable):
    """One training run; create it on the GUI thread, start it on a QThreadPool."""

    def __init__(
        self,
        doc: GraphDocument,
        backend: str = "auto",
        weights: dict[str, np.ndarray] | None = None,
        initial_epoch: int = 0,
    ) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.doc = doc.copy()
        self.backend = backend
        self.weights = weights
        self.initial_epoch = initial_epoch
        self.signals = TrainSignals()
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        s = self.signals
        try:
            from conv3dt_studio.nodes.training import training_settings

            epochs = training_settings(self.doc)["epochs"] + self.initial_epoch
            result = train_document(
                self.doc,
                backend=self.backend,
                weights_in=self.weights,
                epochs=epochs,
                initial_epoch=self.initial_epoch,
                progress=lambda f, msg: s.progress.emit(float(f), str(msg)),
                should_stop=self._stop.is_set,
                on_epoch_end=lambda e, logs: s.epoch_end.emit(int(e), dict(logs)),
                on_step=lambda i, info: s.step.emit(int(i), dict(info)),
            )
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a message
            s.failed.emit(exc)
        else:
            s.finished.emit(result)
