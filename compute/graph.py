"""The executable graph: a sequence of layers (Input first), the toolkit's "add to graph" style.

Arrays in and out are NumPy float32; the graph moves them to and from its backend.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backend import Array, Backend, get_backend
from .errors import ParameterError, ShapeError, StateError
from .layers import Input, Layer, Shape, call_backward, fmt_shape
from .losses import loss_value_and_grad
from .memory import retain_freed_memory

STOP_SECONDS = 0.2  # a stoppable prediction checks Stop about this often

ProgressCallback = Callable[[float, str], None]


@dataclass(frozen=True)
class PredictionInfo:
    """The toolkit's "Prediction 6D" info cluster."""

    name: str  # the output layer's name
    index: int  # its index in the graph
    shape: tuple[int, ...]  # the prediction's shape


def _as_float32(x: Any, what: str, backend: Backend | None = None) -> Any:
    """``x`` as a float32 array: NumPy, or left on the GPU when it is already a device array of
    ``backend`` (CuPy users feed their arrays without a round trip through the host)."""
    if backend is not None and backend.is_device_array(x):
        return x.astype(np.float32, copy=False)
    try:
        a = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise ShapeError(f"`{what}` must be a numeric array. Received: {type(x).__name__}") from exc
    if a.dtype.kind not in "biuf":
        raise ShapeError(f"`{what}` must be a numeric array. Received: dtype {a.dtype}")
    return a.astype(np.float32, copy=False)


def _is_int(v: Any) -> bool:
    """A Python or NumPy integer, not a bool."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_number(v: Any) -> bool:
    """A real Python or NumPy number, not a bool."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(
        v, (bool, np.bool_)
    )


class Graph:
    """``Graph([Input(shape), TimeDistributed(Conv3DTranspose(...))], backend="auto", seed=0)``."""

    def __init__(
        self, layers: Sequence[Layer] = (), backend: str | Backend = "auto", seed: int | None = 0
    ) -> None:
        self.backend: Backend = get_backend(backend)
        retain_freed_memory()  # the steps' output-sized temporaries reuse memory, no page faults
        if seed is not None and (not _is_int(seed) or seed < 0):
            raise ParameterError(
                f"Invalid value for `seed`: expected a non-negative integer or "
                f"None. Received: seed={seed!r}"
            )
        self.seed = None if seed is None else int(seed)
        self.layers: list[Layer] = []
        self._input_shape: tuple | None = None
        for layer in layers:
            self.add(layer)

    # ------------------------------------------------------------------ building
    def add(self, layer: Layer) -> Graph:
        """Append a layer ("add to graph"); returns the graph for chaining."""
        if not isinstance(layer, Layer):
            raise ParameterError(
                f"Invalid value for `layer`: expected a layer. Received: {layer!r}"
            )
        if isinstance(layer, Input) and self.layers:
            raise ParameterError(
                f"Input `{layer.name}` must be the first layer of the graph "
                f"(it would be number {len(self.layers)})"
            )
        if any(existing.name == layer.name for existing in self.layers):
            raise ParameterError(f"Layer name `{layer.name}` is already used in this graph")
        inner = getattr(layer, "layer", None)  # the layer a wrapper (TimeDistributed) holds
        shared = [
            e.name for e in self.layers if inner is not None and getattr(e, "layer", 0) is inner
        ]
        if shared:
            raise ParameterError(
                f"Layer `{getattr(inner, 'name', inner)}` is already used in this graph (in "
                f"`{shared[0]}`): a layer holds one set of weights and the state of one forward, "
                f"so each wrapper needs its own layer (copy weights with get_weights/set_weights)"
            )
        self.layers.append(layer)
        previous = self._input_shape
        if isinstance(layer, Input):
            self._input_shape = (None, *layer.shape)
        try:
            if self._input_shape is not None:
                self._build(self._input_shape)
        except Exception:
            self.layers.pop()  # a refused layer leaves the graph as it was
            self._input_shape = previous
            raise
        return self

    def _layer_seed(self, index: int) -> int | None:
        if self.seed is None:
            return None
        return int(np.random.SeedSequence([self.seed, index]).generate_state(1)[0])

    def _build(self, input_shape: tuple) -> None:
        shape = tuple(input_shape)
        for i, layer in enumerate(self.layers):
            layer.build(shape, self.backend, self._layer_seed(i))
            shape = layer.compute_output_shape(shape)

    def compute_output_shape(self, input_shape: Sequence) -> tuple:
        """Pure: the output shape for data of ``input_shape`` (batch first, may be None)."""
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
        return shape

    @property
    def output_layer(self) -> Layer:
        if not self.layers:
            raise StateError("The graph has no layers: add an Input and a layer first")
        return self.layers[-1]

    # ------------------------------------------------------------------ running
    def _prepare(self, x: Any) -> Any:
        a = _as_float32(x, "x", self.backend)
        self.compute_output_shape(a.shape)  # every shape problem, named, before any work
        if self._input_shape is None or any(not layer.built for layer in self.layers):
            self._build((None, *a.shape[1:]))
        return self.backend.asarray(a)

    def _run(self, xd: Array, training: bool) -> Array:
        for layer in self.layers:
            xd = layer.forward(xd, training)
        return xd

    def predict(
        self,
        x: Any,
        batch_size: int | None = None,
        progress: ProgressCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> tuple[PredictionInfo, np.ndarray]:
        """Inference ("Prediction 6D"): nothing is cached. Runs in batches of ``batch_size``
        (default: all at once), reporting ``progress(fraction, message)`` after each and stopping
        with :class:`StateError` when ``should_stop()`` turns true between batches. ``x`` may be a
        NumPy array or, on ``cupy``, a CuPy array; the prediction is NumPy."""
        a = _as_float32(x, "x", self.backend)
        out_shape = self.compute_output_shape(a.shape)
        n = a.shape[0]
        if n == 0:
            raise ShapeError(
                f"`x` must hold at least one sample. Received: shape {fmt_shape(a.shape)}"
            )
        if batch_size is not None and (not _is_int(batch_size) or batch_size < 1):
            raise ParameterError(
                f"Invalid value for `batch_size`: expected a positive integer or None (all at "
                f"once). Received: batch_size={batch_size!r}"
            )
        step = n if batch_size is None else int(batch_size)
        # All at once, unless it can be stopped: then in slices of samples sized to take about
        # STOP_SECONDS each (timed on the first sample), so Stop acts and progress moves.
        adaptive = batch_size is None and should_stop is not None and n > 1
        step = 1 if adaptive else step
        y: np.ndarray | None = None if step >= n else np.empty(out_shape, dtype=np.float32)
        s0, b, batches = 0, 0, math.ceil(n / step)
        while s0 < n:
            if should_stop is not None and should_stop():
                done = f"{s0} of {n} samples" if adaptive else f"{b} of {batches} batches"
                raise StateError(f"Prediction cancelled after {done}")
            t0 = time.perf_counter()
            out = self.backend.to_numpy(self._run(self._prepare(a[s0 : s0 + step]), False))
            if y is None:  # one batch: its fresh output is the result (no copy)
                fresh = out.dtype == np.float32 and not (
                    isinstance(a, np.ndarray) and np.may_share_memory(out, a)
                )
                y = np.ascontiguousarray(out) if fresh else np.array(out, dtype=np.float32)
            else:
                y[s0 : s0 + len(out)] = out
            s0, b = s0 + len(out), b + 1
            if progress is not None:
                if adaptive:
                    progress(s0 / n, f"{s0}/{n} samples")
                else:
                    progress(b / batches, f"batch {b}/{batches}")
            if adaptive:
                per_sample = (time.perf_counter() - t0) / max(len(out), 1)
                step = max(1, min(n, int(STOP_SECONDS / max(per_sample, 1e-9))))
        assert y is not None  # n >= 1: the loop ran
        info = PredictionInfo(self.output_layer.name, len(self.layers) - 1, tuple(y.shape))
        return info, y

    def forward(self, x: Any) -> np.ndarray:
        """Training-mode forward: layers keep what backward needs."""
        return self.backend.to_numpy(self._run(self._prepare(x), training=True))

    def backward(self, dy: Any) -> np.ndarray:
        """Back-propagate ``dy`` = dLoss/dOutput; returns the gradient reaching the Input.
        Each layer with ``update=True`` applies its optimizer."""
        g = self.backend.asarray(_as_float32(dy, "dy"))
        for layer in reversed(self.layers):
            g = layer.backward(g)
        return self.backend.to_numpy(g)

    def train_step(
        self, x: Any, y_true: Any, loss: str = "mean_squared_error", loss_params: dict | None = None
    ) -> float:
        """Forward + loss + backward (with optimizer updates); returns the loss value."""
        xd = self._prepare(x)
        yt = _as_float32(y_true, "y_true", self.backend)
        expected = self.compute_output_shape(tuple(xd.shape))
        if tuple(yt.shape) != tuple(expected):
            raise ShapeError(
                f"Target shape must equal the prediction shape {fmt_shape(expected)}."
                f" Received: target shape {fmt_shape(yt.shape)}"
            )
        yd = self._run(xd, training=True)
        axis = self._channel_axis_of_output(yd.ndim)
        with np.errstate(all="ignore"):  # a non-finite loss is reported below, in one line
            value, grad = loss_value_and_grad(
                self.backend.xp, loss, self.backend.asarray(yt), yd, axis, loss_params
            )
        if not math.isfinite(value):
            raise StateError(
                f"Loss `{loss}` is {value}: training stopped (lower the learning "
                "rate or check the data)"
            )
        # A layer's input gradient is needed only when a layer before it learns or keeps its
        # gradients (PyTorch does not compute the gradient of data either).
        needed = [False] * len(self.layers)
        for i in range(1, len(self.layers)):
            needed[i] = needed[i - 1] or self.layers[i - 1].uses_gradients
        g = grad
        # overflow or NaN in an update shows as a non-finite loss, reported in one line on the
        # next step, rather than as NumPy warnings
        with np.errstate(all="ignore"):
            for i in range(len(self.layers) - 1, -1, -1):
                g = call_backward(self.layers[i], g, needed[i])
                if not needed[i]:
                    break  # no layer before this one uses a gradient
        return value

    def _channel_axis_of_output(self, ndim: int) -> int:
        """The class axis for per-class losses: the output layer's channel axis."""
        axis = self.output_layer.channel_axis
        return axis % ndim if axis < 0 else axis + max(ndim - 5, 0)

    def evaluate(
        self,
        x: Any,
        y_true: Any,
        loss: str = "mean_squared_error",
        loss_params: dict | None = None,
        batch_size: int | None = None,
    ) -> float:
        """The loss of an inference-mode prediction of ``x`` against ``y_true``."""
        _, y = self.predict(x, batch_size=batch_size)
        yt = _as_float32(y_true, "y_true")
        value, _ = loss_value_and_grad(
            np, loss, yt, y, self._channel_axis_of_output(y.ndim), loss_params
        )
        return value

    def fit(
        self,
        x: Any,
        y_true: Any,
        epochs: int = 1,
        batch_size: int = 32,
        loss: str = "mean_squared_error",
        shuffle: bool = True,
        validation_split: float = 0.0,
        initial_epoch: int = 0,
        loss_params: dict | None = None,
        progress: ProgressCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
        on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
        on_batch_end: Callable[[int, dict[str, float]], None] | None = None,
    ) -> dict[str, list[float]]:
        """Mini-batch training, as Keras's ``fit``; returns ``{"loss": [...]}`` (mean loss of each
        epoch) plus ``"val_loss"`` when ``validation_split`` > 0 (the last fraction of the samples,
        taken before shuffling, as Keras does). Epochs run from ``initial_epoch`` to ``epochs``;
        epoch ``e`` is shuffled by a generator seeded with ``(seed, e)``, so a run resumed from
        saved weights and optimizer state with ``initial_epoch`` continues the same trajectory.
        ``should_stop()`` is checked between batches; the history so far is returned."""
        xa, ya = _as_float32(x, "x"), _as_float32(y_true, "y_true")
        n = xa.shape[0] if xa.ndim else 0
        if n == 0:
            raise ShapeError(
                f"`x` must hold at least one sample. Received: shape {fmt_shape(xa.shape)}"
            )
        if ya.shape[:1] != xa.shape[:1]:
            raise ShapeError(
                f"`y_true` must have as many samples as `x` ({n}). Received: shape "
                f"{fmt_shape(ya.shape)}"
            )
        for name, v in (("epochs", epochs), ("batch_size", batch_size)):
            if not _is_int(v) or v < 1:
                raise ParameterError(
                    f"Invalid value for `{name}`: expected a positive integer. "
                    f"Received: {name}={v!r}"
                )
        if not _is_int(initial_epoch) or not 0 <= initial_epoch <= epochs:
            raise ParameterError(
                f"Invalid value for `initial_epoch`: expected an integer in "
                f"[0, epochs={epochs}]. Received: initial_epoch={initial_epoch!r}"
            )
        epochs, batch_size, initial_epoch = int(epochs), int(batch_size), int(initial_epoch)
        if not _is_number(validation_split) or not 0.0 <= float(validation_split) < 1.0:
            raise ParameterError(
                f"Invalid value for `validation_split`: expected a number >= 0 "
                f"and < 1. Received: validation_split={validation_split!r}"
            )
        n_val = int(n * float(validation_split))
        if validation_split and (n_val == 0 or n_val == n):
            raise ParameterError(
                f"Invalid value for `validation_split`: {validation_split} of "
                f"{n} samples leaves an empty training or validation set"
            )
        n_train = n - n_val
        history: dict[str, list[float]] = {"loss": []}
        if n_val:
            history["val_loss"] = []
        batches = math.ceil(n_train / batch_size)
        span = (epochs - initial_epoch) * batches
        step = 0
        for epoch in range(initial_epoch, epochs):
            rng = np.random.default_rng([self.seed or 0, epoch])
            order = rng.permutation(n_train) if shuffle else np.arange(n_train)
            total = 0.0
            for b in range(batches):
                if should_stop is not None and should_stop():
                    return history
                idx = order[b * batch_size : (b + 1) * batch_size]
                value = self.train_step(xa[idx], ya[idx], loss, loss_params)
                total += value * len(idx)
                step += 1
                if on_batch_end is not None:
                    on_batch_end(epoch * batches + b, {"loss": value})
                if progress is not None:
                    progress(step / span, f"epoch {epoch + 1}/{epochs}, batch {b + 1}/{batches}")
            logs = {"loss": total / n_train}
            if n_val:
                logs["val_loss"] = self.evaluate(
                    xa[n_train:], ya[n_train:], loss, loss_params, batch_size
                )
            for key, value in logs.items():
                history[key].append(value)
            if on_epoch_end is not None:
                on_epoch_end(epoch, logs)
        return history

    def summary(self) -> list[tuple[int, str, str, Shape | None]]:
        """(index, name, class, output shape) of every layer, for display (None before the input
        shape is known)."""
        rows = []
        shape = self._input_shape
        for i, layer in enumerate(self.layers):
            if shape is not None:
                shape = layer.compute_output_shape(shape)
            rows.append((i, layer.name, type(layer).__name__, shape))
        return rows
