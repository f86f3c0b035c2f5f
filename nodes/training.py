"""Training a document: Data -> ... -> Prediction 6D -> Loss <- Target. One code path for the CLI
and the editor; settings (epochs, batch size, shuffle, validation split) live in the document under
``"training"``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from conv3dt_studio.compute import Conv3DTStudioError, Graph, StateError
from conv3dt_studio.compute.layers import fmt_shape

from . import memory, resample
from .catalogue import LOSS, NODE_TYPES, OUTPUT, SOURCES, TARGET
from .graph_document import GraphDocument
from .runner import (
    Plan,
    build_graph,
    data_path,
    estimate_train_bytes,
    feeding_data_node,
    load_data,
    plan,
    with_data,
)
from .settings import TRAINING_SCHEMA
from .validation import DocumentProblems, Problem, relevant_problems, validate
from .weights import apply_run_weights, conv_layers, weights_dict


@dataclass
class TrainPlan:
    run: Plan
    loss_node: str
    target_node: str
    loss: str
    loss_params: dict[str, Any]
    settings: dict[str, Any]


@dataclass
class TrainResult:
    history: dict[str, list[float]]
    graph: Graph
    seconds: float
    stopped: bool
    gradient_norms: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    # the loss of nearest-neighbour upsampling the Input by its Resample's factors (on the
    # validation samples when there are any): what a learned upsampling must beat
    baseline: float | None = None


class TrainingInterrupted(StateError):
    """A training that failed part-way (its loss became NaN or Inf): the epochs it finished are
    not lost. ``history`` holds them (as ``fit`` returns a history), ``weights`` the weights and
    optimizer state at the end of the last of them (None when none finished), which
    ``initial_epoch + len(history["loss"])`` resumes from."""

    def __init__(
        self,
        message: str,
        history: dict[str, list[float]],
        weights: dict[str, np.ndarray] | None,
        initial_epoch: int,
    ) -> None:
        super().__init__(message)
        self.history = history
        self.weights = weights
        self.initial_epoch = initial_epoch

    @property
    def epochs_finished(self) -> int:
        return len(self.history["loss"])


def snapshot_bytes(run: Plan) -> int:
    """Bytes the copy of the weights and optimizer state kept at each epoch's end takes (for
    :class:`TrainingInterrupted`): the weights and up to three slots each, in float32."""
    return 4 * 4 * run.weights


def nothing_to_learn(epoch: int, logs: dict[str, float]) -> str | None:
    """The warning a first epoch with loss 0 deserves (the target already is the prediction:
    typically a teacher Target whose seed is the graph's own), else None."""
    if epoch != 0 or logs.get("loss") != 0:
        return None
    return (
        "the first epoch's loss is 0: the target already equals the prediction (a teacher "
        "Target whose seed is the graph's seed?), so there is nothing to learn"
    )


def training_settings(doc: GraphDocument) -> dict[str, Any]:
    return TRAINING_SCHEMA.validate(doc.extras.get("training"), where="training settings")


def trainability_problems(doc: GraphDocument) -> list[Problem]:
    """What is missing for training (empty when the graph is trainable)."""
    problems = []
    losses = doc.ids_with_role(LOSS)
    if not doc.ids_with_role(TARGET) and not any(doc.upstream(n, "target") for n in losses):
        problems.append(
            Problem(
                None,
                None,
                "not trainable: add a Target node (the values the prediction should reach)",
            )
        )
    if not losses:
        problems.append(
            Problem(
                None, None, "not trainable: add a Loss node fed by the Prediction 6D and the Target"
            )
        )
    for loss_id in losses:
        src = doc.upstream(loss_id, "prediction")
        if src and doc.role(src[0]) != OUTPUT:
            problems.append(
                Problem(
                    loss_id,
                    "prediction",
                    "the Loss's prediction must come from a Prediction 6D node",
                )
            )
        tgt = doc.upstream(loss_id, "target")
        if tgt and doc.role(data_path(doc, tgt[0])[0]) not in SOURCES:
            problems.append(
                Problem(
                    loss_id,
                    "target",
                    "the Loss's target must come from a Target or Data node (or a Resample of one)",
                )
            )
    try:
        training_settings(doc)
    except Exception as exc:
        problems.append(Problem(None, "training", str(exc)))
    return problems


def train_plan(doc: GraphDocument) -> TrainPlan:
    """What training the (first) Loss's chain needs; only that chain must be valid."""
    problems = validate(doc).problems
    losses = doc.ids_with_role(LOSS)
    if losses:
        problems = relevant_problems(doc, problems, losses[0])
    problems += trainability_problems(doc)
    if problems:
        raise DocumentProblems(problems)
    loss_node = losses[0]
    pred = doc.feeder(loss_node, "prediction")
    lp = doc.params(loss_node)
    return TrainPlan(
        plan(doc, pred),
        loss_node,
        doc.feeder(loss_node, "target"),
        lp.pop("loss"),
        lp,
        training_settings(doc),
    )


def load_target(
    doc: GraphDocument,
    tp: TrainPlan,
    x: np.ndarray,
    backend: str,
    seed: int | None,
    progress: Callable[[float, str], None] | None = None,
    given: dict[str, np.ndarray] | None = None,
    limit: int | None = None,
) -> np.ndarray:
    """The Loss's target: a teacher's prediction of ``x``, or the samples of its Target or Data
    node through the transforms on the way (``given`` replaces sources, as in
    :func:`runner.load_data`)."""
    params = doc.params(tp.target_node)
    if params.get("source") == "teacher":
        teacher = build_graph(doc, tp.run, backend, seed=params["seed"])
        return teacher.predict(x)[1]
    return load_data(doc, tp.target_node, seed, progress, given, limit)


def prediction_target(
    doc: GraphDocument,
    prediction_node: str,
    x: np.ndarray,
    backend: str = "auto",
    progress: Callable[[float, str], None] | None = None,
) -> np.ndarray | None:
    """The target of the (first) Loss that ``prediction_node`` feeds, for the run whose input was
    ``x`` (to show beside its prediction); None when it feeds none or that Loss's chain cannot be
    trained."""
    fed = (prediction_node, "y")
    loss = next((n for n in doc.ids_with_role(LOSS) if doc.upstream(n, "prediction") == fed), None)
    target = doc.upstream(loss, "target") if loss is not None else None
    if loss is None or target is None:
        return None
    try:
        if trainability_problems(doc):
            return None
        tp = TrainPlan(plan(doc, prediction_node), loss, target[0], "", {}, {})
        return load_target(doc, tp, x, backend, None, progress, {})
    except Conv3DTStudioError:
        return None


def nearest_baseline(
    doc: GraphDocument, tp: TrainPlan, x: np.ndarray, y: np.ndarray, validation_split: float
) -> float | None:
    """The loss of nearest-neighbour upsampling ``x`` by the factors its transforms shrank it
    by, against ``y`` (on the validation samples, as ``fit`` splits them); None when the Input
    is fed by no shrinking transform or the upsampled samples do not have the target's shape."""
    factors: tuple[int, ...] | None = None
    for node in tp.run.transforms:
        own = NODE_TYPES[doc.nodes[node].type].shrink_factors(doc.params(node))
        if own is None or (factors is not None and len(own) != len(factors)):
            return None
        factors = own if factors is None else tuple(a * b for a, b in zip(factors, own))
    if factors is None or len(factors) != x.ndim - 1:
        return None
    n_val = int(len(x) * validation_split)
    if n_val:
        x, y = x[len(x) - n_val :], y[len(y) - n_val :]
    up = resample.nearest_upsampled(x, factors)
    if up.shape != y.shape:
        return None
    from conv3dt_studio.compute.losses import loss_value_and_grad

    cf = doc.params(doc.feeder(tp.run.chain[0], "layer"))["data_format"] == "channels_first"
    return loss_value_and_grad(np, tp.loss, y, up, 2 if cf else -1, tp.loss_params)[0]


def train_document(
    doc: GraphDocument,
    *,
    backend: str = "auto",
    seed: int | None = None,
    x: np.ndarray | None = None,
    y: np.ndarray | None = None,
    data: np.ndarray | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    loss: str | None = None,
    weights_in: str | os.PathLike | dict[str, np.ndarray] | None = None,
    initial_epoch: int = 0,
    graph: Graph | None = None,
    progress: Callable[[float, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    on_step: Callable[[int, dict[str, Any]], None] | None = None,
    memory_limit: int | None = None,
) -> TrainResult:
    """Train the document's graph; arguments override the document's settings. Pass ``graph`` to
    continue training an already built graph (its weights and optimizer state). A training that
    would need more than ``memory_limit`` bytes (default: half the available memory) is refused
    before anything is allocated. ``data`` replaces the samples of the Data node feeding the
    prediction (the Resamples after it still apply); ``x`` and ``y`` those the Input and the Loss
    receive."""
    given: dict[str, np.ndarray] = {}  # each source read once
    if data is not None:
        data = np.asarray(data)
        losses = doc.ids_with_role(LOSS)
        pred = doc.feeder(losses[0], "prediction") if losses else None
        source = feeding_data_node(doc, pred)
        doc = with_data(doc, data, pred)
        given = {source: data} if source else {}
    tp = train_plan(doc)
    s = dict(tp.settings)
    s["epochs"] = epochs or s["epochs"]
    s["batch_size"] = batch_size or s["batch_size"]
    loss_name = loss or tp.loss
    run = tp.run if x is None else replace(tp.run, input_shape=np.shape(x))
    need = estimate_train_bytes(run, s["batch_size"]) + snapshot_bytes(run)
    memory.check(need, memory_limit, "this training")
    xa = (
        load_data(doc, tp.run.input_feed, seed, progress, given, memory_limit)
        if x is None
        else np.asarray(x, np.float32)
    )
    g = graph or build_graph(doc, tp.run, backend, seed)
    expected = g.compute_output_shape(xa.shape)
    ya = (
        load_target(doc, tp, xa, backend, seed, progress, given, memory_limit)
        if y is None
        else np.asarray(y, np.float32)
    )
    if ya.size == 0 or xa.size == 0:
        raise DocumentProblems(
            [Problem(tp.run.data_node, None, "empty data: training needs at least one sample")]
        )
    if tuple(ya.shape) != tuple(expected):
        raise DocumentProblems(
            [
                Problem(
                    tp.target_node,
                    None,
                    f"shape mismatch: the target "
                    f"{fmt_shape(ya.shape)} must equal the prediction "
                    f"{fmt_shape(expected)}",
                )
            ]
        )
    if not np.isfinite(ya).all() or not np.isfinite(xa).all():
        raise DocumentProblems(
            [Problem(tp.target_node, None, "the data or target holds NaN or Inf values")]
        )
    if graph is None:
        apply_run_weights(weights_in, doc, g.layers)
    norms: dict[str, list[dict[str, float]]] = {}
    stored = [layer for layer in conv_layers(g.layers) if layer.config["store"]]

    def batch_end(step: int, logs: dict[str, float]) -> None:
        info: dict[str, Any] = {"loss": logs["loss"]}
        for layer in stored:
            grads = layer.get_gradients()
            with np.errstate(over="ignore", invalid="ignore"):  # a diverging step: inf, no warning
                row = {k: float(np.linalg.norm(v)) for k, v in grads.items() if v is not None}
            norms.setdefault(layer.name, []).append(row)
            info[layer.name] = row
        if on_step is not None:
            on_step(step, info)

    stopped = {"value": False}

    def stop() -> bool:
        if should_stop is not None and should_stop():
            stopped["value"] = True
        return stopped["value"]

    # what the finished epochs reached: kept when a later one fails (TrainingInterrupted)
    reached: dict[str, list[float]] = {"loss": []}
    last_weights: dict[str, dict[str, np.ndarray] | None] = {"weights": None}

    def epoch_end(epoch: int, logs: dict[str, float]) -> None:
        if math.isfinite(logs["loss"]):
            for key, value in logs.items():
                reached.setdefault(key, []).append(value)
            last_weights["weights"] = weights_dict(g.layers)
        if on_epoch_end is not None:
            on_epoch_end(epoch, logs)

    def interrupted(message: str) -> TrainingInterrupted:
        done = len(reached["loss"])
        if done:
            message += f"; {done} epoch(s) had finished"
        return TrainingInterrupted(message, reached, last_weights["weights"], initial_epoch)

    t0 = time.perf_counter()
    try:
        history = g.fit(
            xa,
            ya,
            epochs=s["epochs"],
            batch_size=s["batch_size"],
            loss=loss_name,
            shuffle=s["shuffle"],
            validation_split=s["validation_split"],
            initial_epoch=initial_epoch,
            loss_params=tp.loss_params,
            progress=progress,
            should_stop=stop,
            on_epoch_end=epoch_end,
            on_batch_end=batch_end,
        )
    except StateError as exc:  # a loss of NaN or Inf: what the finished epochs reached is kept
        raise interrupted(str(exc)) from exc
    if history["loss"] and not math.isfinite(history["loss"][-1]):
        raise interrupted(
            f"the mean loss of epoch {initial_epoch + len(history['loss'])} is "
            f"{history['loss'][-1]}: training stopped (lower the learning rate or "
            "check the data)"
        )
    baseline = None if x is not None else nearest_baseline(doc, tp, xa, ya, s["validation_split"])
    return TrainResult(history, g, time.perf_counter() - t0, stopped["value"], norms, baseline)
