"""The node catalogue: every node type as plain data (ports, parameter schema, version).

It echoes the toolkit's snippet workflow: 1 generate data (Data) -> 2 define the graph (Input,
Conv3DTranspose "define", TimeDistributed) -> 3 run it (Prediction 6D). Port kinds are typed: a
``layer`` port (an architecture, not a tensor) connects only to a ``layer`` port, tensors only to
tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

from conv3dt_studio.compute import CONV3D_TRANSPOSE_SCHEMA, LOSS_NAMES, Param, Schema
from conv3dt_studio.compute.losses import LOSS_PARAMS

TENSOR = "tensor"
LAYER = "layer"
PORT_KINDS = (TENSOR, LAYER)


@dataclass(frozen=True)
class Port:
    name: str
    kind: str  # TENSOR or LAYER


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

    def input_port(self, name: str) -> Port | None:
        return next((p for p in self.inputs if p.name == name), None)

    def output_port(self, name: str) -> Port | None:
        return next((p for p in self.outputs if p.name == name), None)


NAME_PARAM = Param("name", "str", "", "Layer name (empty: the node id).", group="layer")

DISTRIBUTIONS = ("normal", "uniform", "zeros", "ones")


def _data_schema(default_sample_shape: tuple[int, ...], what: str, teacher: bool = False) -> Schema:
    sources = ("generator", "file", "teacher") if teacher else ("generator", "file")
    help_ = f"Where the {what} come from: generated or read from a .npy/.npz file" + (
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
                "Generator: distribution of the values (normal: mean 0, std 1; uniform: [0, 1)).",
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
            Param("seed", "int", 0, "Generator: random seed.", group="generator", minimum=0),
            Param(
                "path",
                "str",
                "",
                "File: a .npy file, or a .npz file with `array_name`.",
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
            Schema((*CONV3D_TRANSPOSE_SCHEMA.params, NAME_PARAM)),
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
        ),
    )
}
NODE_TYPE_IDS = tuple(NODE_TYPES)


def node_type(type_id: str) -> NodeType | None:
    return NODE_TYPES.get(type_id)


def categories() -> dict[str, list[NodeType]]:
    """Node types grouped by category, in workflow order (for the editor's palette)."""
    out: dict[str, list[NodeType]] = {}
    for t in NODE_TYPES.values():
        out.setdefault(t.category, []).append(t)
    return dict(sorted(out.items()))
