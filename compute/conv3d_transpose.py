"""The Conv3DTranspose layer ("Convolution 3D Transpose (define)"), Keras 3 semantics.

Its parameter cluster is declared once in :data:`CONV3D_TRANSPOSE_SCHEMA`; the declaration drives
validation, defaults, JSON and the editor's property widgets. Meant to be wrapped in
:class:`~compute.layers.TimeDistributed`, as the toolkit documents.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import conv3d_transpose_ops as ops
from . import memory
from .activations import ACTIVATION_NAMES, ACTIVATIONS
from .backend import Array, Backend
from .errors import ParameterError, ShapeError, StateError
from .initializers import BIAS_INITIALIZER_NAMES, INITIALIZER_NAMES, initialize
from .layers import Layer, Shape, fmt_shape
from .optimizers import OPTIMIZER_SCHEMA, Optimizer
from .params import Param, Schema

DATA_FORMATS = ("channels_first", "channels_last")


def check_cross_constraints(config: dict[str, Any]) -> None:
    """Constraints between parameters (raise :class:`ParameterError`)."""
    op = config.get("output_padding")
    if op is not None and any(p >= s for p, s in zip(op, config["stride"])):
        raise ParameterError(
            "Invalid value for `output_padding`: expected each value < stride "
            f"{list(config['stride'])}. Received: output_padding={list(op)}",
            param="output_padding",
        )


CONV3D_TRANSPOSE_SCHEMA = Schema(
    (
        Param(
            "n_filters",
            "int",
            3,
            "Number of output channels (dimensionality of the output space).",
            minimum=1,
        ),
        Param(
            "size",
            "int3",
            (3, 3, 3),
            "Depth, height and width of the window; one int = same on all axes.",
            minimum=1,
        ),
        Param(
            "stride",
            "int3",
            (1, 1, 1),
            "Step of the window along depth, height and width.",
            minimum=1,
        ),
        Param(
            "dilation_rate",
            "int3",
            (1, 1, 1),
            "Spacing between kernel taps along depth, height and width.",
            minimum=1,
        ),
        Param(
            "activation",
            "choice",
            "relu",
            "Function applied to the output.",
            choices=ACTIVATION_NAMES,
        ),
        Param("use_bias", "bool", True, "Add a learned bias per filter."),
        Param(
            "padding",
            "bool",
            False,
            'False = "valid" (full result), True = "same" (output = input x stride).',
        ),
        Param(
            "data_format",
            "choice",
            "channels_first",
            "channels_first: (batch, time, channels, "
            "d1, d2, d3); channels_last: (batch, time, d1, d2, d3, channels).",
            choices=DATA_FORMATS,
        ),
        Param(
            "optimizer",
            "cluster",
            None,
            "This layer's optimizer and its settings.",
            group="optimizer",
            fields=OPTIMIZER_SCHEMA,
        ),
        Param(
            "filter_initializer",
            "choice",
            "glorot_uniform",
            "How the kernel is initialised (Keras formulas, seeded).",
            group="initializers",
            choices=INITIALIZER_NAMES,
        ),
        Param(
            "bias_initializer",
            "choice",
            "zeros",
            "How the bias is initialised.",
            group="initializers",
            choices=BIAS_INITIALIZER_NAMES,
        ),
        Param(
            "constant_value",
            "float",
            0.0,
            "Value used by the `constant` initializer.",
            group="initializers",
            optional=True,
        ),
        Param(
            "training",
            "bool",
            True,
            "Keep what backward needs during forward; False: inference only, backward raises.",
            group="training",
        ),
        Param(
            "store",
            "bool",
            False,
            "Keep the last gradients (kernel, bias, input), readable with get_gradients().",
            group="training",
        ),
        Param(
            "update",
            "bool",
            True,
            "Apply the optimizer; False freezes the layer (gradients still flow back).",
            group="training",
        ),
        Param(
            "lda_coeff",
            "float",
            1.0,
            "Multiplies the gradient sent back to the previous "
            "layer (not the layer's own weight gradients).",
            group="training",
        ),
        Param(
            "output_padding",
            "int3",
            None,
            "Extra length at the end of each axis (Keras "
            "meaning); each value < stride. None: inferred.",
            minimum=0,
            optional=True,
            nullable=True,
        ),
    ),
    constraints=(check_cross_constraints,),
)


def layer_geometry(config: dict[str, Any], input_shape: Shape) -> ops.Geometry:
    """The spatial geometry of a layer with ``config`` on ``(batch, *per-sample)`` data, in
    either data format."""
    cf = config["data_format"] == "channels_first"
    spatial = input_shape[2:] if cf else input_shape[1:4]
    geom = ops.Geometry.of(
        spatial,
        config["size"],
        config["stride"],
        config["dilation_rate"],
        config["padding"],
        config["output_padding"],
    )
    for i, a in enumerate(geom.axes):
        if a.out_len < 1:
            op = config["output_padding"]
            raise ShapeError(
                f"The output would be empty along spatial axis {i + 1}: length {a.out_len} from "
                f"input length {a.in_len}, size {a.size}, stride {a.stride}, dilation "
                f"{a.dilation}, padding {'same' if config['padding'] else 'valid'} and "
                f"output_padding {None if op is None else op[i]}; allowed: at least 1 (a larger "
                f"output_padding or input, or valid padding). Received: input shape "
                f"{fmt_shape(tuple(input_shape))}"
            )
    return geom


def conv3d_transpose_output_shape(config: dict[str, Any], input_shape: Shape) -> Shape:
    """Pure output-shape function: ``(batch, *per-sample)`` in, same form out."""
    out = layer_geometry(config, input_shape).out_shape
    f = config["n_filters"]
    cf = config["data_format"] == "channels_first"
    return (input_shape[0], f, *out) if cf else (input_shape[0], *out, f)


def conv3d_transpose_working_bytes(
    config: dict[str, Any], input_shape: Shape, training: bool = False
) -> int:
    """Upper bound of the temporary bytes the layer's kernels need beside input and output, for
    ``(batch, *per-sample)`` data (see :func:`conv3d_transpose_ops.working_bytes`)."""
    channels = input_shape[1] if config["data_format"] == "channels_first" else input_shape[4]
    geom = layer_geometry(config, input_shape)
    return ops.working_bytes(geom, int(channels), int(config["n_filters"]), training)


class Conv3DTranspose(Layer):
    """Transposed 3-D convolution: ``activation(conv_transpose(x, kernel) + bias)``.

    Takes 5-D data ``(N, C, D, H, W)`` (channels_first) or ``(N, D, H, W, C)`` (channels_last); wrap
    it in ``TimeDistributed`` for 6-D data. Parameters: see :data:`CONV3D_TRANSPOSE_SCHEMA`.
    """

    schema = CONV3D_TRANSPOSE_SCHEMA
    base_name = "conv3d_transpose"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)  # validated by the schema, its constraints included
        self.kernel: Array | None = None  # on the backend, Keras layout
        self.bias: Array | None = None
        self.optimizer: Optimizer | None = None
        # what backward needs: (x channels-first, z or None, y, geometry) of the last forward
        self._cache: tuple[Array, Array | None, Array, ops.Geometry] | None = None
        self._grads: dict[str, Array | None] | None = None

    # ------------------------------------------------------------------ shapes
    @property
    def channels_first(self) -> bool:
        return self.config["data_format"] == "channels_first"

    @property
    def channel_axis(self) -> int:
        return 1 if self.channels_first else -1

    def data_axes(self) -> tuple[str, ...]:
        spatial = ("d1", "d2", "d3")
        if self.channels_first:
            return ("batch", "channels", *spatial)
        return ("batch", *spatial, "channels")

    def _check_input(self, shape: Shape) -> int | None:
        """Validate a 5-D shape (batch included); return its channel count (None: unknown)."""
        if len(shape) != 5:
            raise ShapeError(
                f"Layer `{self.name}` expected 5-D data ({', '.join(self.data_axes())}) "
                f"({self.config['data_format']}; wrap it in TimeDistributed for 6-D data). "
                f"Received: shape {fmt_shape(shape)}"
            )
        c = shape[1] if self.channels_first else shape[4]
        if self.kernel is not None and c is not None and c != self.kernel.shape[4]:
            raise ShapeError(
                f"Layer `{self.name}` was built for {self.kernel.shape[4]} input channels "
                f"({self.config['data_format']}). Received: shape {fmt_shape(shape)} with {c}"
            )
        return c

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        self._check_input(tuple(input_shape))
        return conv3d_transpose_output_shape(self.config, tuple(input_shape))

    # ------------------------------------------------------------------ weights
    def build(self, input_shape: Shape, backend: Backend, seed: int | None) -> None:
        c = self._check_input(tuple(input_shape))
        if c is None:
            raise ShapeError(
                f"Layer `{self.name}` needs a known channel count to build. "
                f"Received: shape {fmt_shape(input_shape)}"
            )
        if self.kernel is not None and self.backend is backend:
            return
        old = self.get_weights() if self.kernel is not None else None
        self.backend = backend
        if old is None:
            kshape = (*self.config["size"], self.config["n_filters"], c)
            memory.check(4 * math.prod(kshape), f"the kernel of layer `{self.name}`")
            seeds = (
                np.random.SeedSequence(seed).generate_state(2) if seed is not None else (None, None)
            )
            cv = self.config["constant_value"]
            weights = [initialize(self.config["filter_initializer"], kshape, seeds[0], cv)]
            if self.config["use_bias"]:
                weights.append(
                    initialize(
                        self.config["bias_initializer"],
                        (self.config["n_filters"],),
                        seeds[1],
                        cv,
                        param="bias_initializer",
                    )
                )
            old = weights
        self._assign(old)
        self.built = True

    def _assign(self, weights: Sequence[np.ndarray]) -> None:
        b = self.backend
        self.kernel = b.asarray(weights[0]).copy()
        self.bias = b.asarray(weights[1]).copy() if self.config["use_bias"] else None
        self.optimizer = Optimizer(self.config["optimizer"], b)
        self._cache = None

    def _weights(self) -> list[Array]:
        return [self.kernel] if self.bias is None else [self.kernel, self.bias]

    @property
    def uses_gradients(self) -> bool:
        return bool(self.config["update"] or self.config["store"])

    def get_weights(self) -> list[np.ndarray]:
        """``[kernel]`` or ``[kernel, bias]`` (Keras layout), as NumPy float32 copies."""
        if self.kernel is None:
            return []
        return [self.backend.to_numpy(w).copy() for w in self._weights()]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Set ``[kernel]`` or ``[kernel, bias]``; a fresh optimizer state starts."""
        expected = 2 if self.config["use_bias"] else 1
        if not isinstance(weights, (list, tuple)):
            raise ShapeError(
                f"Layer `{self.name}` expected a list of weight arrays "
                f"({'[kernel, bias]' if expected == 2 else '[kernel]'}). "
                f"Received: {type(weights).__name__}"
            )
        arrays = [np.asarray(w) for w in weights]
        if len(arrays) != expected:
            raise ShapeError(
                f"Layer `{self.name}` expected {expected} weight arrays "
                f"({'[kernel, bias]' if expected == 2 else '[kernel]'}). "
                f"Received: {len(arrays)}"
            )
        k = arrays[0]
        want = (*self.config["size"], self.config["n_filters"])
        if (
            k.ndim != 5
            or k.shape[:4] != want
            or (self.kernel is not None and k.shape[4] != self.kernel.shape[4])
        ):
            c = self.kernel.shape[4] if self.kernel is not None else "in_channels"
            raise ShapeError(
                f"Layer `{self.name}` expected a kernel of shape ({', '.join(map(str, want))}, "
                f"{c}) (kd, kh, kw, n_filters, in_channels). Received: shape {k.shape}"
            )
        if expected == 2 and arrays[1].shape != (self.config["n_filters"],):
            raise ShapeError(
                f"Layer `{self.name}` expected a bias of shape ({self.config['n_filters']},). "
                f"Received: shape {arrays[1].shape}"
            )
        for a in arrays:
            if not np.all(np.isfinite(a)):
                raise ParameterError(
                    f"Layer `{self.name}`: weights must be finite. Received NaN or Inf"
                )
        self._assign([a.astype(np.float32) for a in arrays])
        self.built = True

    # ------------------------------------------------------------------ maths
    def _geometry(self, shape: Shape) -> ops.Geometry:
        return layer_geometry(self.config, shape)

    def _check_memory(self, geom: ops.Geometry, in_shape: Shape, training: bool) -> None:
        """Refuse a call whose output and kernel temporaries would not fit (e.g. a huge
        dilation with "same" padding: a small output, but huge padded planes)."""
        n, f = int(in_shape[0]), self.config["n_filters"]
        c = in_shape[1] if self.channels_first else in_shape[-1]
        out = 4 * n * f * math.prod(geom.out_shape) * (2 if training else 1)
        work = ops.working_bytes(geom, int(c), f, training)
        kernel = 4 * math.prod(self.config["size"]) * f * int(c) if self.kernel is None else 0
        memory.check(out + work + kernel, f"layer `{self.name}` on {n} sample(s)")

    def forward(self, x: Array, training: bool = False) -> Array:
        """``x`` on this layer's backend, 5-D; returns the activated output."""
        self._check_input(tuple(x.shape))
        geom = self._geometry(x.shape)
        self._check_memory(geom, tuple(x.shape), training)
        if self.kernel is None:
            self.build(tuple(x.shape), self.backend, None)
        xp = self.backend.xp
        xcf = x if self.channels_first else xp.moveaxis(x, -1, 1)
        act = ACTIVATIONS[self.config["activation"]]
        # relu is fused (backward needs y only, not z); channels_last results are laid out so
        # by the CPU paths, so the moveaxis below is contiguous and copies nothing
        relu = self.config["activation"] == "relu"
        z = ops.forward(xp, xcf, self.kernel, geom, self.bias, relu, not self.channels_first)
        if not self.channels_first:
            z = xp.ascontiguousarray(xp.moveaxis(z, 1, -1))
        y = z if relu else act.forward(self.backend, z, self.channel_axis)
        keep = training and self.config["training"]
        self._cache = (xcf, z if act.needs_input else None, y, geom) if keep else None
        return y

    def backward(self, dy: Array, input_grad: bool = True) -> Array | None:
        """Gradient for the previous layer (times ``lda_coeff``); updates weights if ``update``.
        ``input_grad=False`` (nothing before this layer learns): returns None and skips computing
        it, unless ``store`` keeps it."""
        if self._cache is None:
            why = (
                "training=False, so forward keeps nothing"
                if not self.config["training"]
                else "no training-mode forward ran since the last backward"
            )
            raise StateError(f"Layer `{self.name}` cannot run backward: {why}.")
        xcf, z, y, geom = self._cache
        # a training-mode forward ran: it built the kernel and the optimizer
        assert self.kernel is not None and self.optimizer is not None
        if tuple(dy.shape) != tuple(y.shape):
            raise ShapeError(
                f"Layer `{self.name}` expected an output gradient of shape "
                f"{fmt_shape(y.shape)}. Received: shape {fmt_shape(dy.shape)}"
            )
        self._cache = None
        xp = self.backend.xp
        if self.config["activation"] == "relu":  # fused with the bias gradient, as forward is
            dz, db = ops.relu_backward(xp, y, dy, self.channels_first, self.bias is not None)
        else:
            dz = ACTIVATIONS[self.config["activation"]].backward(
                self.backend, z, y, dy, self.channel_axis
            )
            axes = (0, 2, 3, 4) if self.channels_first else (0, 1, 2, 3)
            db = dz.sum(axis=axes).astype(dz.dtype) if self.bias is not None else None
        dzcf = dz if self.channels_first else xp.moveaxis(dz, -1, 1)
        grads = [ops.backward_kernel(xp, xcf, dzcf, geom, self.kernel.shape)]
        if db is not None:
            grads.append(db)
        dx = None
        if input_grad or self.config["store"]:
            dx = ops.backward_input(xp, dzcf, self.kernel, geom)
            if self.config["lda_coeff"] != 1.0:
                dx *= self.config["lda_coeff"]
            if not self.channels_first:
                dx = xp.ascontiguousarray(xp.moveaxis(dx, 1, -1))
        if self.config["store"]:
            self._grads = {
                "kernel": grads[0],
                "bias": grads[1] if len(grads) > 1 else None,
                "input": dx,
            }
        if self.config["update"]:
            self.optimizer.apply(self._weights(), grads)
        return dx if input_grad else None

    def get_gradients(self) -> dict[str, np.ndarray | None]:
        """The last gradients: ``{"kernel", "bias", "input"}`` (NumPy); needs ``store=True``."""
        if not self.config["store"]:
            raise StateError(
                f"Layer `{self.name}` keeps no gradients: set store=True to read "
                "them with get_gradients()."
            )
        if self._grads is None:
            raise StateError(f"Layer `{self.name}` has no gradients yet: run backward first.")
        return {
            k: None if v is None else self.backend.to_numpy(v).copy()
            for k, v in self._grads.items()
        }
