"""The layer interface, the Input layer and the TimeDistributed wrapper.

Lifecycle (Keras's): ``__init__`` validates parameters; ``build(input_shape, backend, seed)`` creates
weights; ``forward(x, training)`` does the maths (arrays already on the backend's device);
``backward(dy)`` returns the gradient for the previous layer and updates the layer's own weights;
``compute_output_shape(input_shape)`` is pure. Shapes include the batch axis (``None`` allowed).
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from .backend import NUMPY, Array, Backend
from .errors import ParameterError, ShapeError
from .params import Param, Schema

Shape = tuple  # batch first; any length may be None (not known yet)

_name_counters: dict[str, itertools.count] = {}


def unique_name(base: str) -> str:
    """Keras-style automatic names: ``base``, ``base_1``, ``base_2``, ..."""
    n = next(_name_counters.setdefault(base, itertools.count()))
    return base if n == 0 else f"{base}_{n}"


def fmt_shape(shape: Sequence[int | None]) -> str:
    return (
        "("
        + ", ".join("None" if s is None else str(s) for s in shape)
        + (",)" if len(shape) == 1 else ")")
    )


def call_backward(layer: Layer, dy: Array, input_grad: bool = True) -> Array | None:
    """``layer.backward(dy, input_grad)``, or ``layer.backward(dy)`` for a layer written without
    the ``input_grad`` argument (it then computes the gradient, which is ignored if not needed)."""
    if input_grad or not _takes_input_grad(type(layer)):
        return layer.backward(dy)
    return layer.backward(dy, input_grad=False)


_TAKES_INPUT_GRAD: dict[type[Layer], bool] = {}


def _takes_input_grad(cls: type[Layer]) -> bool:
    if cls not in _TAKES_INPUT_GRAD:
        params = inspect.signature(cls.backward).parameters
        _TAKES_INPUT_GRAD[cls] = "input_grad" in params or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
        )
    return _TAKES_INPUT_GRAD[cls]


class Layer:
    """Base class. Subclasses set ``schema`` and ``base_name``."""

    schema: Schema = Schema(())
    base_name = "layer"

    def __init__(self, **params: Any) -> None:
        name = params.pop("name", None)
        self.config = self.schema.validate(params, where=type(self).__name__)
        name = name if name else unique_name(self.base_name)
        if not isinstance(name, str):
            raise ParameterError(
                f"Invalid value for `name`: expected a string. Received: name={name!r}"
            )
        self.name: str = name
        self.backend: Backend = NUMPY
        self.built = False

    # --- to be provided by subclasses where meaningful
    def data_axes(self) -> tuple[str, ...] | None:
        """The names of the axes of the data the layer takes, batch first (None: any rank)."""
        return None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)

    def build(self, input_shape: Shape, backend: Backend, seed: int | None) -> None:
        self.backend = backend
        self.built = True

    def forward(self, x: Array, training: bool = False) -> Array:
        return x

    def backward(self, dy: Array, input_grad: bool = True) -> Array | None:
        """Gradient for the previous layer; ``input_grad=False``: nobody before this layer learns
        (a training step), so a layer may skip computing it and return None. Subclasses may keep
        the older ``backward(self, dy)``: :func:`call_backward` then always asks for it."""
        return dy if input_grad else None

    @property
    def uses_gradients(self) -> bool:
        """Whether backward does more than pass the gradient on: updates weights or keeps them
        (``store``). A training step back-propagates only as far as the first such layer, so a
        layer that does not say is assumed to learn."""
        return True

    def get_weights(self) -> list[np.ndarray]:
        return []

    def set_weights(self, weights: Sequence[Any]) -> None:
        if len(weights):
            raise ShapeError(f"Layer `{self.name}` has no weights. Received: {len(weights)} arrays")

    def get_gradients(self) -> dict[str, np.ndarray | None]:
        return {}

    def get_config(self) -> dict[str, Any]:
        """Plain JSON data: every declared parameter plus the name."""
        return {"name": self.name, **self.schema.to_json(self.config)}

    @property
    def channel_axis(self) -> int:
        """Axis of the output's channels (used for per-class losses)."""
        return -1

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class Input(Layer):
    """Declares the per-sample shape (without the batch axis) and checks the data against it."""

    schema = Schema(
        (Param("shape", "shape", (1,), "Per-sample shape of the data, without the batch axis."),)
    )
    base_name = "input"

    def __init__(self, shape: Sequence[int], name: str | None = None) -> None:
        super().__init__(shape=shape, name=name)
        self.shape: tuple[int, ...] = self.config["shape"]

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        self.check_shape(input_shape)
        return tuple(input_shape)

    def check_shape(self, shape: Shape) -> None:
        if tuple(shape[1:]) != self.shape or len(shape) != len(self.shape) + 1:
            raise ShapeError(
                f"Layer `{self.name}` expected data of shape {fmt_shape((None, *self.shape))} "
                f"(batch first). Received: shape {fmt_shape(tuple(shape))}"
            )

    @property
    def uses_gradients(self) -> bool:
        return False  # data: nothing to learn

    def forward(self, x: Array, training: bool = False) -> Array:
        self.check_shape(x.shape)
        return x


class TimeDistributed(Layer):
    """Applies ``layer`` to every time step: folds (batch, time) into one axis, runs the layer,
    unfolds. Weights are shared across time; weight gradients sum over batch and time."""

    base_name = "time_distributed"

    def __init__(self, layer: Layer, name: str | None = None) -> None:
        if not isinstance(layer, Layer):
            raise ParameterError(
                f"Invalid value for `layer` of TimeDistributed: expected a layer. "
                f"Received: layer={layer!r}"
            )
        super().__init__(name=name)
        self.layer = layer
        self._folded: tuple[int, int] | None = None  # (batch, time) of the last backward

    def data_axes(self) -> tuple[str, ...] | None:
        inner = self.layer.data_axes()
        return None if inner is None else (inner[0], "time", *inner[1:])

    def _check(self, shape: Shape) -> None:
        axes = self.data_axes()
        if axes is not None and len(shape) != len(axes):
            raise ShapeError(
                f"Layer `{self.name}` (around `{self.layer.name}`) expected {len(axes)}-D data "
                f"({', '.join(axes)}). Received: shape {fmt_shape(tuple(shape))}"
            )
        if len(shape) < 3:
            raise ShapeError(
                f"Layer `{self.name}` expected data with batch and time axes first (at least 3 "
                f"dimensions). Received: shape {fmt_shape(tuple(shape))}"
            )

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        self._check(input_shape)
        inner = self.layer.compute_output_shape((None, *input_shape[2:]))
        return (input_shape[0], input_shape[1], *inner[1:])

    def build(self, input_shape: Shape, backend: Backend, seed: int | None) -> None:
        self._check(input_shape)
        self.layer.build((None, *input_shape[2:]), backend, seed)
        super().build(input_shape, backend, seed)

    @property
    def built_inner(self) -> bool:
        return self.layer.built

    def forward(self, x: Array, training: bool = False) -> Array:
        self._check(x.shape)
        b, t = x.shape[:2]
        y = self.layer.forward(x.reshape((b * t, *x.shape[2:])), training)
        return y.reshape((b, t, *y.shape[1:]))

    def backward(self, dy: Array, input_grad: bool = True) -> Array | None:
        self._check(dy.shape)
        b, t = dy.shape[:2]
        self._folded = (b, t)
        dx = call_backward(self.layer, dy.reshape((b * t, *dy.shape[2:])), input_grad)
        return None if dx is None or not input_grad else dx.reshape((b, t, *dx.shape[1:]))

    @property
    def uses_gradients(self) -> bool:
        return self.layer.uses_gradients

    def get_weights(self) -> list[np.ndarray]:
        return self.layer.get_weights()

    def set_weights(self, weights: Sequence[Any]) -> None:
        self.layer.set_weights(weights)

    def get_gradients(self) -> dict[str, np.ndarray | None]:
        grads = dict(self.layer.get_gradients())
        folded = grads.get("input")
        if folded is not None and self._folded is not None:
            b, t = self._folded
            grads["input"] = folded.reshape((b, t, *folded.shape[1:]))
        return grads

    @property
    def channel_axis(self) -> int:
        return self.layer.channel_axis

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "layer": {"class": type(self.layer).__name__, **self.layer.get_config()},
        }
