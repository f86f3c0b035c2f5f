"""Builders of the bundled example graphs (``scripts/regenerate_resources.py`` writes them into the
package data; nothing here writes files)."""

from __future__ import annotations

from .graph_document import GraphDocument


def toolkit_example(
    conv: dict | None = None,
    data: dict | None = None,
    input_shape: tuple[int, ...] = (6, 5, 64, 64, 3),
) -> GraphDocument:
    """Data (10, 6, 5, 64, 64, 3) normal seed 0 -> Input -> TimeDistributed <- Conv3DTranspose
    -> Prediction 6D, laid out left to right as in the toolkit's snippet."""
    doc = GraphDocument()
    doc.add_node("data", {"sample_shape": list(input_shape), **(data or {})}, pos=(-40, 0))
    doc.add_node("input", {"shape": list(input_shape)}, pos=(260, 0))
    doc.add_node("conv3d_transpose", conv or {}, pos=(260, 200))
    doc.add_node("time_distributed", {}, pos=(560, 60))
    doc.add_node("prediction_6d", {}, pos=(860, 60))
    doc.connect("data", "data", "input", "x")
    doc.connect("input", "y", "time_distributed", "x")
    doc.connect("conv3d_transpose", "layer", "time_distributed", "layer")
    doc.connect("time_distributed", "y", "prediction_6d", "x")
    return doc


def teacher_student() -> GraphDocument:
    """A trainable graph whose Target is a fixed "teacher": the same architecture with weights
    drawn from another seed, so the student's loss visibly falls within seconds."""
    shape = (4, 2, 8, 8, 3)
    doc = toolkit_example(
        conv={
            "activation": "linear",
            "store": True,
            "optimizer": {"algorithm": "adam", "learning_rate": 0.01},
        },
        data={"batch_size": 32, "sample_shape": list(shape)},
        input_shape=shape,
    )
    doc.add_node("target", {"source": "teacher", "seed": 7}, pos=(860, 260))
    doc.add_node("loss", {"loss": "mean_squared_error"}, pos=(1160, 160))
    doc.connect("prediction_6d", "y", "loss", "prediction")
    doc.connect("target", "data", "loss", "target")
    doc.extras["training"] = {
        "epochs": 30,
        "batch_size": 8,
        "shuffle": True,
        "validation_split": 0.25,
    }
    return doc


def bundled() -> dict[str, GraphDocument]:
    return {
        "toolkit_example": toolkit_example(),
        "channels_last": toolkit_example(
            {"data_format": "channels_last"}, input_shape=(6, 64, 64, 3, 5)
        ),
        "stride2_same": toolkit_example({"stride": [2, 2, 2], "padding": True}),
        "teacher_student": teacher_student(),
    }
