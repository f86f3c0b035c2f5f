"""Export a graph's chain to ONNX (opset 17), built with ``onnx.helper``.

The file's graph, for input ``input`` of shape (batch, time, *sample) with symbolic ``batch`` and
``time``::

    Reshape (batch*time, *sample)                       # TimeDistributed: fold time into batch
    per layer:
        [Transpose to (N, C, D, H, W)]                  # channels_last layers
        ConvTranspose, pads = Keras's crop              # stride > 1 with dilation > 1: see below
        [Pad zeros at the end]                          # Keras's window past the full result
        [Add bias]                                      # after the zeros, as the compute core does
        activation over axis 1 with our constants       # gelu with Erf (Gelu is opset 20)
        [Transpose back]
    Reshape (batch, time, *out), named after the last TimeDistributed layer

A layer with stride > 1 and dilation > 1 is written as explicit zero insertion (Reshape, Pad,
Reshape, Slice: the input spread ``stride`` apart) followed by a stride-1 dilated ConvTranspose,
the same sum: onnxruntime has had bugs with the two together, and runtimes that serve the file
(Triton's, TensorRT) may lag behind. ``decompose=False`` writes the plain ConvTranspose instead
(used by the tests to compare both). The model passes ``onnx.checker.check_model(full_check=True)``
before anything is written; its metadata holds the architecture JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from conv3dt_studio.compute.activations import (
    ELU_ALPHA,
    LEAKY_RELU_ALPHA,
    SELU_ALPHA,
    SELU_SCALE,
    THRESHOLDED_RELU_THETA,
)
from conv3dt_studio.compute.conv3d_transpose_ops import Geometry
from conv3dt_studio.nodes.files import atomic_write_bytes

from .common import (
    ARCHITECTURE_KEY,
    InteropError,
    LayerSpec,
    ModelSpec,
    architecture,
    axis_lengths,
    require,
)

INPUT = "input"  # the model input's name
OPSET = 17
IR_VERSION = 8  # the IR of opset 17: readable by runtimes of that era

# activations that are one ONNX operator: (op type, attributes)
SINGLE_OPS: dict[str, tuple[str, dict[str, Any]]] = {
    "elu": ("Elu", {"alpha": ELU_ALPHA}),
    "exponential": ("Exp", {}),
    "hard_sigmoid": ("HardSigmoid", {"alpha": 1.0 / 6.0, "beta": 0.5}),
    "leaky_relu": ("LeakyRelu", {"alpha": LEAKY_RELU_ALPHA}),
    "relu": ("Relu", {}),
    "selu": ("Selu", {"alpha": SELU_ALPHA, "gamma": SELU_SCALE}),
    "sigmoid": ("Sigmoid", {}),
    "softmax": ("Softmax", {"axis": 1}),
    "softplus": ("Softplus", {}),
    "softsign": ("Softsign", {}),
    "tanh": ("Tanh", {}),
    "thresholded_relu": ("ThresholdedRelu", {"alpha": THRESHOLDED_RELU_THETA}),
}


class _Builder:
    """Nodes and initializers with unique value names."""

    def __init__(self, onnx: Any) -> None:
        self.helper = onnx.helper
        self.numpy_helper = onnx.numpy_helper
        self.nodes: list = []
        self.initializers: list = []
        self._used: set[str] = {INPUT}

    def name(self, hint: str) -> str:
        out, n = hint, 2
        while out in self._used:
            out, n = f"{hint}_{n}", n + 1
        self._used.add(out)
        return out

    def const(self, hint: str, array: np.ndarray) -> str:
        name = self.name(hint)
        self.initializers.append(self.numpy_helper.from_array(np.asarray(array), name))
        return name

    def ints(self, hint: str, values: Iterable[int]) -> str:
        return self.const(hint, np.asarray(list(values), dtype=np.int64))

    def op(
        self, op_type: str, inputs: list[str], hint: str, out: str | None = None, **attrs: Any
    ) -> str:
        out = out or self.name(hint)
        self.nodes.append(
            self.helper.make_node(op_type, inputs, [out], name=self.name(f"{hint}:op"), **attrs)
        )
        return out


def build_model(spec: ModelSpec, decompose: bool = True) -> Any:
    """The ONNX ModelProto of ``spec`` (checked)."""
    onnx = require("onnx", "Export to ONNX")
    b = _Builder(onnx)
    if spec.output_name == INPUT:
        raise InteropError(
            "Cannot export to ONNX: the last layer is named `input`, the name of the model's "
            "input; rename the TimeDistributed node"
        )
    b._used.add(spec.output_name)
    x = b.op("Reshape", [INPUT, b.ints("fold_shape", (-1, *spec.input_shape[1:]))], "fold")
    for i, layer in enumerate(spec.layers):
        last = i == len(spec.layers) - 1
        x = _layer(b, x, layer, decompose)
        if last:
            batch_time = b.op("Shape", [INPUT], "batch_time", start=0, end=2)
            rest = b.ints("out_shape", layer.output_shape[1:])
            shape = b.op("Concat", [batch_time, rest], "unfold_shape", axis=0)
            b.op("Reshape", [x, shape], "unfold", out=spec.output_name)
    h = onnx.helper
    f32 = onnx.TensorProto.FLOAT
    graph = h.make_graph(
        b.nodes,
        _safe_graph_name(spec.output_name),
        [h.make_tensor_value_info(INPUT, f32, ["batch", "time", *spec.input_shape[1:]])],
        [
            h.make_tensor_value_info(
                spec.output_name, f32, ["batch", "time", *spec.output_shape[1:]]
            )
        ],
        b.initializers,
    )
    from conv3dt_studio import __version__

    model = h.make_model(
        graph,
        opset_imports=[h.make_opsetid("", OPSET)],
        producer_name="conv3dt-studio",
        producer_version=__version__,
        doc_string="TimeDistributed(Conv3DTranspose) chain exported by Conv3DT Studio "
        "(Keras 3 semantics)",
    )
    model.ir_version = IR_VERSION
    h.set_model_props(model, {ARCHITECTURE_KEY: json.dumps(architecture(spec))})
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # a bug of ours, said in one line
        raise InteropError(f"The exported ONNX model does not pass onnx.checker: {exc}") from exc
    return model


def _safe_graph_name(name: str) -> str:
    return f"conv3dt_studio_{name}"


def _layer(b: _Builder, x: str, layer: LayerSpec, decompose: bool) -> str:
    p, n = layer.params, layer.name
    if not layer.channels_first:
        x = b.op("Transpose", [x], f"{n}/to_ncdhw", perm=[0, 4, 1, 2, 3])
    geom = layer.geometry()
    lengths = [axis_lengths(a) for a in geom.axes]
    stride, dilation = list(p["stride"]), list(p["dilation_rate"])
    if decompose and max(stride) > 1 and max(dilation) > 1:
        x = _zero_insert(b, x, layer, geom)
        stride = [1, 1, 1]
    w = b.const(f"{n}/kernel", layer.kernel.transpose(4, 3, 0, 1, 2))
    extra = [e for _, _, e in lengths]
    inputs = [x, w]
    if layer.bias is not None and not any(extra):
        inputs.append(b.const(f"{n}/bias", layer.bias))
    z = b.op(
        "ConvTranspose",
        inputs,
        f"{n}/conv_transpose",
        kernel_shape=list(p["size"]),
        strides=stride,
        dilations=dilation,
        pads=[s for s, _, _ in lengths] + [e for _, e, _ in lengths],
    )
    if any(extra):
        z = b.op("Pad", [z, b.ints(f"{n}/pads", [0] * 5 + [0, 0, *extra])], f"{n}/pad")
        if layer.bias is not None:
            bias = b.const(f"{n}/bias", layer.bias.reshape(-1, 1, 1, 1))
            z = b.op("Add", [z, bias], f"{n}/bias_add")
    z = _activation(b, z, p["activation"], n)
    if not layer.channels_first:
        z = b.op("Transpose", [z], f"{n}/to_channels_last", perm=[0, 2, 3, 4, 1])
    return z


def _zero_insert(b: _Builder, x: str, layer: LayerSpec, geom: Geometry) -> str:
    """``x`` (N, C, D, H, W) spread on a grid ``stride`` apart, zeros between:
    (N, C, (D-1)*s0+1, ...). Exact (data movement only)."""
    n = layer.name
    c = layer.in_channels
    dims = [a.in_len for a in geom.axes]
    s = list(layer.params["stride"])
    split = [0, c, dims[0], 1, dims[1], 1, dims[2], 1]
    y = b.op("Reshape", [x, b.ints(f"{n}/split_shape", split)], f"{n}/split")
    pads = [0] * 8 + [0, 0, 0, s[0] - 1, 0, s[1] - 1, 0, s[2] - 1]
    y = b.op("Pad", [y, b.ints(f"{n}/insert_pads", pads)], f"{n}/insert_zeros")
    merged = [0, c, dims[0] * s[0], dims[1] * s[1], dims[2] * s[2]]
    y = b.op("Reshape", [y, b.ints(f"{n}/merge_shape", merged)], f"{n}/merge")
    ends = [(d - 1) * k + 1 for d, k in zip(dims, s)]
    return b.op(
        "Slice",
        [
            y,
            b.ints(f"{n}/starts", [0, 0, 0]),
            b.ints(f"{n}/ends", ends),
            b.ints(f"{n}/axes", [2, 3, 4]),
        ],
        f"{n}/stride_dilated",
    )


def _activation(b: _Builder, z: str, name: str, n: str) -> str:
    if name == "linear":
        return z
    if name in SINGLE_OPS:
        op_type, attrs = SINGLE_OPS[name]
        return b.op(op_type, [z], f"{n}/{name}", **attrs)
    if name == "swish":
        s = b.op("Sigmoid", [z], f"{n}/sigmoid")
        return b.op("Mul", [z, s], f"{n}/swish")
    if name == "gelu":  # 0.5 * z * (1 + erf(z / sqrt(2))), exact
        scaled = b.op("Div", [z, b.const(f"{n}/sqrt2", np.float32(math.sqrt(2)))], f"{n}/gelu_div")
        erf = b.op("Erf", [scaled], f"{n}/gelu_erf")
        one = b.op("Add", [erf, b.const(f"{n}/one", np.float32(1.0))], f"{n}/gelu_add")
        half = b.op("Mul", [z, b.const(f"{n}/half", np.float32(0.5))], f"{n}/gelu_half")
        return b.op("Mul", [half, one], f"{n}/gelu")
    raise InteropError(f"layer `{n}`: activation {name!r} has no ONNX form")  # pragma: no cover


def export_onnx(spec: ModelSpec, path: Path, decompose: bool = True) -> None:
    """Write ``spec`` as an ONNX file at ``path`` (atomically)."""
    model = build_model(spec, decompose)
    atomic_write_bytes(path, model.SerializeToString())
