"""The node catalogue: every node type as a declaration with its behaviour beside it.

It echoes the toolkit's snippet workflow: 1 generate data (Data) -> 2 define the graph (Input,
Conv3DTranspose "define", TimeDistributed) -> 3 run it (Prediction 6D) -> 4 train (Target, Loss).
Port kinds are typed: a ``layer`` port (an architecture, not a tensor) connects only to a ``layer``
port, tensors only to tensors.

A :class:`NodeType` carries, as ComfyUI nodes do, what the rest of the program asks of a node:
its ports and parameter schema, its **role** (data source, transform, input, layer, wrapper,
output, target, loss: how validation, running and training walk the graph), its **shape inference**, the
**caption** the editor writes under it, its **category colour**, and how it **builds** its compute
object. Nothing outside this module compares type ids: adding a node type is one entry here (plus
its tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conv3dt_studio.compute import (
    CONV3D_TRANSPOSE_SCHEMA,
    LOSS_NAMES,
    Conv3DTranspose,
    Input,
    Param,
    Schema,
    TimeDistributed,
)
from conv3dt_studio.compute.conv3d_transpose import conv3d_transpose_output_shape
from conv3dt_studio.compute.layers import fmt_shape
from conv3dt_studio.compute.losses import LOSS_PARAMS

from . import resample
from .data_sources import blobs_problem, generated_shape, peek_shape
from .problems import Problem

TENSOR = "tensor"
LAYER = "layer"
PORT_KINDS = (TENSOR, LAYER)

# Roles: how the graph is walked
# (Data -> Transform* -> Input -> Wrapper(Layer)* -> Output -> Loss <- Transform* <- Target or Data)
DATA_SOURCE = "data source"  # samples fed to the graph
TRANSFORM = "transform"  # changes samples on their way from a source (its `transform`)
INPUT = "input"  # declares the per-sample shape
LAYER_ROLE = "layer"  # an architecture wired into a wrapper (keyed by name in weights)
WRAPPER = "wrapper"  # applies its layer to tensors (the chain runs through these)
OUTPUT = "output"  # a Prediction 6D: where a run ends
TARGET = "target"  # the values a Loss compares the prediction with
LOSS = "loss"  # makes the graph trainable
ROLES = (DATA_SOURCE, TRANSFORM, INPUT, LAYER_ROLE, WRAPPER, OUTPUT, TARGET, LOSS)
SOURCES = (DATA_SOURCE, TARGET)  # where a data path starts (read, generated or taught)

Shape = tuple
Color = tuple[int, int, int]


@dataclass(frozen=True)
class Port:
    name: str
    kind: str  # TENSOR or LAYER


@dataclass
class InferContext:
    """What a node type's shape inference sees: its own parameters, the shapes arriving at its
    input ports, and a place to report problems. ``shapes`` holds every node's output shape
    inferred so far (in topological order); a node may complete another's (a Loss gives a
    teacher Target the prediction's shape)."""

    doc: Any  # the GraphDocument
    links: Any  # its LinkIndex
    node_id: str
    params: dict[str, Any]
    shapes: dict[str, Shape | None]
    all_params: dict[str, dict[str, Any]]
    problems: list[Problem]

    def upstream(self, port: str) -> str | None:
        src = self.links.upstream(self.node_id, port)
        return src[0] if src else None

    def input(self, port: str) -> Shape | None:
        src = self.upstream(port)
        return self.shapes.get(src) if src else None

    def problem(self, param: str | None, message: str) -> None:
        self.problems.append(Problem(self.node_id, param, message))


Infer = Callable[[InferContext], "Shape | None"]
Caption = Callable[[dict[str, Any]], str]


@dataclass(frozen=True)
class NodeType:
    type_id: str
    version: int
    title: str
    category: str
    help: str
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    schema: Schema
    role: str
    color: Color
    infer: Infer
    # the editor's text under the node when it has no shape (e.g. a layer's filters and size)
    caption: Caption = field(default=lambda params: "")
    # builds the compute object: (validated params, layer name, the wired inner layer or None)
    build: Callable[[dict[str, Any], str, Any], Any] | None = None
    # parameters holding file paths (kept relative to the graph file when it moves)
    path_params: tuple[str, ...] = ()
    # names must be unique within a scope: "weights" (they key weights files) or "graph"
    name_scope: str | None = None
    # a frozen node is drawn grey with a snowflake (a layer with `update` off)
    frozen: Callable[[dict[str, Any]], bool] = field(default=lambda params: False)
    # a transform's work on samples: (validated params, float32 samples, batch first) -> samples
    transform: Callable[[dict[str, Any], np.ndarray], np.ndarray] | None = None
    # the integer factors by which a transform shrinks each sample axis (None: it does not only
    # shrink); a training compares its result with nearest-neighbour upsampling by them
    shrink_factors: Callable[[dict[str, Any]], tuple[int, ...] | None] = field(
        default=lambda params: None
    )

    def input_port(self, name: str) -> Port | None:
        return next((p for p in self.inputs if p.name == name), None)

    def output_port(self, name: str) -> Port | None:
        return next((p for p in self.outputs if p.name == name), None)


CATEGORY_COLORS: dict[str, Color] = {
    "1 Generate data": (38, 74, 96),
    "2 Define graph": (46, 56, 92),
    "3 Run graph": (40, 86, 62),
    "4 Train": (86, 64, 36),
}


# ---------------------------------------------------------------------- behaviour
def _infer_data(ctx: InferContext) -> Shape | None:
    p = ctx.params
    if p.get("source") == "teacher":
        return None  # the prediction's shape, given by the Loss it feeds
    if p["source"] == "generator" and p["distribution"] == "blobs":
        problem = blobs_problem(tuple(p["sample_shape"]))
        if problem:
            ctx.problem("sample_shape", problem)
            return None
    shape = (
        generated_shape(p)
        if p["source"] == "generator"
        else peek_shape(ctx.doc.resolve_path(p["path"]), p["array_name"], p["axes"])
    )
    if len(shape) < 2 or 0 in shape:
        ctx.problem(
            "path",
            f"empty data: expected at least one sample (batch first). Received: shape "
            f"{fmt_shape(shape)}",
        )
        return None
    return shape


def _infer_resample(ctx: InferContext) -> Shape | None:
    s, src = ctx.input("x"), ctx.upstream("x")
    if src is not None and ctx.all_params.get(src, {}).get("source") == "teacher":
        ctx.problem("x", "a teacher Target cannot be resampled: connect it to the Loss directly")
        return None
    if s is None:
        return None
    found = resample.problem(ctx.params, tuple(s))
    if found:
        ctx.problem(*found)
        return None
    return resample.resampled_shape(ctx.params, tuple(s))


def _resample_caption(params: dict[str, Any]) -> str:
    factors = "×".join(str(f) for f in params.get("factors", ()))
    return f"{params.get('method', 'mean')} ÷{factors}"


def _infer_input(ctx: InferContext) -> Shape | None:
    s, declared = ctx.input("x"), tuple(ctx.params["shape"])
    if s is not None and tuple(s[1:]) != declared:
        ctx.problem(
            "shape",
            f"shape mismatch: Input expects {fmt_shape((None, *declared))}, its data has "
            f"{fmt_shape(s)}",
        )
        return None
    return (s[0] if s else None, *declared)


def _infer_nothing(ctx: InferContext) -> Shape | None:
    return None


def _infer_time_distributed(ctx: InferContext) -> Shape | None:
    x, layer = ctx.input("x"), ctx.upstream("layer")
    if x is None or layer is None or layer not in ctx.all_params:
        return None
    if len(x) != 6:
        ctx.problem(
            "x",
            f"shape mismatch: TimeDistributed(Conv3DTranspose) needs 6-D data (batch, time, "
            f"...). Received {fmt_shape(x)}",
        )
        return None
    inner = conv3d_transpose_output_shape(ctx.all_params[layer], (None, *x[2:]))
    return (x[0], x[1], *inner[1:])


def _infer_passthrough(ctx: InferContext) -> Shape | None:
    return ctx.input("x")


def _infer_loss(ctx: InferContext) -> Shape | None:
    a, b, target = ctx.input("prediction"), ctx.input("target"), ctx.upstream("target")
    teacher = target is not None and ctx.all_params.get(target, {}).get("source") == "teacher"
    if teacher and target is not None and a is not None:  # it has the prediction's shape
        ctx.shapes[target] = b = a
    if a is not None and b is not None and tuple(a) != tuple(b):
        ctx.problem(
            "target",
            f"shape mismatch: target {fmt_shape(b)} must equal prediction {fmt_shape(a)}",
        )
    return None


def _layer_caption(params: dict[str, Any]) -> str:
    size = params.get("size", [3, 3, 3])
    size = size if isinstance(size, list) else [size] * 3
    return f"layer: {params.get('n_filters', 3)} filters, " + "×".join(str(s) for s in size)


def _build_input(params: dict[str, Any], name: str, inner: Any) -> Input:
    return Input(params["shape"], name=name)


def _build_conv3d_transpose(params: dict[str, Any], name: str, inner: Any) -> Conv3DTranspose:
    return Conv3DTranspose(**{k: v for k, v in params.items() if k != "name"}, name=name)


def _build_time_distributed(params: dict[str, Any], name: str, inner: Any) -> TimeDistributed:
    return TimeDistributed(inner, name=name)


NAME_PARAM = Param("name", "str", "", "Layer name (empty: the node id).", group="layer")

DISTRIBUTIONS = ("normal", "uniform", "zeros", "ones", "blobs")


def _data_schema(default_sample_shape: tuple[int, ...], what: str, teacher: bool = False) -> Schema:
    sources = ("generator", "file", "teacher") if teacher else ("generator", "file")
    help_ = (
        f"Where the {what} come from: generated, or read from a file (.npy/.npz, a TIFF stack, "
        "a video or a folder of images)"
    ) + (
        "; teacher: the graph's own prediction with weights drawn from `seed` (a target the "
        "graph can reach)."
        if teacher
        else "."
    )
    return Schema(
        (
            Param("source", "choice", "generator", help_, group="source", choices=sources),
            Param(
                "distribution",
                "choice",
                "normal",
                "Generator: distribution of the values (normal: mean 0, std 1; uniform: [0, 1); "
                "blobs: smooth 3-D blobs moving over time, for samples (time, channel, d1, d2, "
                "d3)).",
                group="generator",
                choices=DISTRIBUTIONS,
            ),
            Param(
                "batch_size",
                "int",
                10,
                "Generator: number of samples.",
                group="generator",
                minimum=1,
            ),
            Param(
                "sample_shape",
                "shape",
                default_sample_shape,
                "Generator: shape of one sample (without the batch axis).",
                group="generator",
            ),
            Param(
                "seed",
                "int",
                1 if teacher else 0,
                "Generator: random seed."
                + (
                    " Teacher: the seed of the teacher's weights (by default 1, unlike the "
                    "graph's default seed 0: a teacher with the graph's own seed is the student "
                    "itself, and there is nothing to learn)."
                    if teacher
                    else ""
                ),
                group="generator",
                minimum=0,
            ),
            Param(
                "path",
                "str",
                "",
                "File: a .npy file, a .npz file with `array_name`, a TIFF stack (.tif), a video "
                "(.mp4, .avi, .mov, .mkv, .webm, ...) or a folder of images (frames sorted by "
                "name).",
                group="file",
            ),
            Param(
                "axes",
                "str",
                "",
                "File: its axes in order, each one of B (batch), T (time), C (channel), Z, Y, X "
                "(d1, d2, d3), e.g. TZCYX; an axis left out has length 1. Empty: the file's own "
                "(a TIFF's ImageJ/OME metadata; TYXC for videos and image folders; a .npy/.npz "
                "as stored).",
                group="file",
            ),
            Param(
                "array_name",
                "str",
                "",
                "File: the array's name inside a .npz file (empty: the only array).",
                group="file",
            ),
        )
    )


TOOLKIT_SAMPLE_SHAPE = (6, 5, 64, 64, 3)

NODE_TYPES: dict[str, NodeType] = {
    t.type_id: t
    for t in (
        NodeType(
            "data",
            1,
            "Data",
            "1 Generate data",
            "The samples fed to the graph: generated (seeded) or read from a file.",
            (),
            (Port("data", TENSOR),),
            _data_schema(TOOLKIT_SAMPLE_SHAPE, "samples"),
            role=DATA_SOURCE,
            color=CATEGORY_COLORS["1 Generate data"],
            infer=_infer_data,
            path_params=("path",),
        ),
        NodeType(
            "resample",
            1,
            "Resample",
            "1 Generate data",
            "Resamples the samples on their way: crop or pad each sample to a shape, then shrink "
            "each axis by an integer factor (a low-resolution input from a high-resolution "
            "source).",
            (Port("x", TENSOR),),
            (Port("data", TENSOR),),
            Schema(
                (
                    Param(
                        "factors",
                        "shape",
                        (1, 1, 2, 2, 2),
                        "Integer shrink factor of each sample axis (without the batch axis).",
                    ),
                    Param(
                        "method",
                        "choice",
                        "mean",
                        "mean: the average of each block (the remainder of an axis is dropped); "
                        "stride: every n-th value, starting with the first.",
                        choices=resample.METHODS,
                    ),
                    Param(
                        "crop_pad",
                        "bool",
                        False,
                        "First crop or zero-pad each sample (at the end of each axis) to `shape`.",
                        group="crop / pad",
                    ),
                    Param(
                        "shape",
                        "shape",
                        TOOLKIT_SAMPLE_SHAPE,
                        "The sample shape to crop or pad to (without the batch axis).",
                        group="crop / pad",
                    ),
                )
            ),
            role=TRANSFORM,
            color=CATEGORY_COLORS["1 Generate data"],
            infer=_infer_resample,
            caption=_resample_caption,
            transform=resample.resample,
            shrink_factors=lambda params: tuple(params["factors"]),
        ),
        NodeType(
            "input",
            1,
            "Input",
            "2 Define graph",
            "The explicit input layer: declares the per-sample shape (without the batch axis).",
            (Port("x", TENSOR),),
            (Port("y", TENSOR),),
            Schema(
                (
                    Param(
                        "shape",
                        "shape",
                        TOOLKIT_SAMPLE_SHAPE,
                        "Per-sample shape, without the batch axis.",
                    ),
                    NAME_PARAM,
                )
            ),
            role=INPUT,
            color=CATEGORY_COLORS["2 Define graph"],
            infer=_infer_input,
            build=_build_input,
            name_scope="graph",
        ),
        NodeType(
            "conv3d_transpose",
            1,
            "Conv3DTranspose",
            "2 Define graph",
            "Convolution 3D Transpose (define): the layer's architecture, to be wired into "
            "TimeDistributed.",
            (),
            (Port("layer", LAYER),),
            CONV3D_TRANSPOSE_SCHEMA.extended(NAME_PARAM),
            role=LAYER_ROLE,
            color=CATEGORY_COLORS["2 Define graph"],
            infer=_infer_nothing,
            caption=_layer_caption,
            build=_build_conv3d_transpose,
            name_scope="weights",
            frozen=lambda params: params.get("update") is False,
        ),
        NodeType(
            "time_distributed",
            1,
            "TimeDistributed",
            "2 Define graph",
            "Applies the wired layer to every time step of 6-D data (weights shared over time).",
            (Port("x", TENSOR), Port("layer", LAYER)),
            (Port("y", TENSOR),),
            Schema((NAME_PARAM,)),
            role=WRAPPER,
            color=CATEGORY_COLORS["2 Define graph"],
            infer=_infer_time_distributed,
            build=_build_time_distributed,
            name_scope="graph",
        ),
        NodeType(
            "prediction_6d",
            1,
            "Prediction 6D",
            "3 Run graph",
            "The graph's output: shows the info cluster (layer name, graph index, output shape) "
            "and holds the last prediction.",
            (Port("x", TENSOR),),
            (Port("y", TENSOR),),
            Schema(
                (
                    Param(
                        "batch_size",
                        "int",
                        0,
                        "Samples per batch when running (0: all at "
                        "once). Progress and Stop act between batches.",
                        minimum=0,
                    ),
                )
            ),
            role=OUTPUT,
            color=CATEGORY_COLORS["3 Run graph"],
            infer=_infer_passthrough,
        ),
        NodeType(
            "target",
            1,
            "Target",
            "4 Train",
            "The training targets (same shape as the prediction): generated or read from a file.",
            (),
            (Port("data", TENSOR),),
            _data_schema((6, 3, 66, 66, 5), "targets", teacher=True),
            role=TARGET,
            color=CATEGORY_COLORS["4 Train"],
            infer=_infer_data,
            path_params=("path",),
        ),
        NodeType(
            "loss",
            1,
            "Loss",
            "4 Train",
            "Compares the prediction with the target; makes the graph trainable.",
            (Port("prediction", TENSOR), Port("target", TENSOR)),
            (),
            Schema(
                (
                    Param(
                        "loss",
                        "choice",
                        "mean_squared_error",
                        "Loss function (Keras 3 definitions).",
                        choices=LOSS_NAMES,
                    ),
                    *LOSS_PARAMS.params,
                )
            ),
            role=LOSS,
            color=CATEGORY_COLORS["4 Train"],
            infer=_infer_loss,
        ),
    )
}
NODE_TYPE_IDS = tuple(NODE_TYPES)


def node_type(type_id: str) -> NodeType | None:
    return NODE_TYPES.get(type_id)


def role_of(type_id: str) -> str | None:
    """The role of a node type (None for a type this version does not know)."""
    nt = NODE_TYPES.get(type_id)
    return nt.role if nt else None


def type_with_role(role: str) -> NodeType:
    """The (first) node type playing ``role``, e.g. what a new Prediction 6D is."""
    return next(t for t in NODE_TYPES.values() if t.role == role)


def categories() -> dict[str, list[NodeType]]:
    """Node types grouped by category, in workflow order (for the editor's palette)."""
    out: dict[str, list[NodeType]] = {}
    for t in NODE_TYPES.values():
        out.setdefault(t.category, []).append(t)
    return dict(sorted(out.items()))
