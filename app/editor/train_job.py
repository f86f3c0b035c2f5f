"""A training as a :class:`~.jobs.Job`: :func:`training_job` gives the job's function.

It runs :func:`nodes.training.train_document` on its own copy of the document, starting from the
given weights (and optimizer state) when training continues, and reports each epoch
(``report("epoch_end", (epoch, logs))``) and each step (``report("step", (step, info))``). Stop is
checked between batches; the history so far still arrives as the result. The last gradients of the
layers that store them are read there too, off the GUI thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

import numpy as np

from conv3dt_studio.compute import StateError
from conv3dt_studio.nodes import GraphDocument
from conv3dt_studio.nodes.training import TrainResult, train_document, training_settings
from conv3dt_studio.nodes.weights import conv_layers

from .jobs import JobControl

Gradients = dict[str, dict[str, np.ndarray | None]]  # layer name -> {"kernel", "bias", "input"}


class Training(NamedTuple):
    """A finished (or stopped) training: the result and the stored gradients of its layers."""

    result: TrainResult
    gradients: Gradients


def stored_gradients(layers: Iterable) -> Gradients:
    """The last gradients of the Conv3DTranspose layers with ``store`` on that have some (none
    before a first training step)."""
    out = {}
    for layer in conv_layers(layers):
        if not layer.config["store"]:
            continue
        try:
            out[layer.name] = layer.get_gradients()
        except StateError:  # stopped before its first backward step
            continue
    return out


def training_job(
    doc: GraphDocument,
    backend: str = "auto",
    weights: dict[str, np.ndarray] | None = None,
    initial_epoch: int = 0,
) -> Callable[[JobControl], Training]:
    """The function of a job that trains a copy of ``doc`` (taken now, on the caller's thread) for
    its settings' epochs, counting on from ``initial_epoch``."""
    doc = doc.copy()

    def train(control: JobControl) -> Training:
        result = train_document(
            doc,
            backend=backend,
            weights_in=weights,
            epochs=training_settings(doc)["epochs"] + initial_epoch,
            initial_epoch=initial_epoch,
            progress=control.progress,
            should_stop=control.should_stop,
            on_epoch_end=lambda e, logs: control.report("epoch_end", (int(e), dict(logs))),
            on_step=lambda i, info: control.report("step", (int(i), dict(info))),
        )
        return Training(result, stored_gradients(result.graph.layers))

    return train
