"""Builders of the bundled example graphs (``python -m nodes.examples`` rewrites resources/)."""

from __future__ import annotations

import json
from pathlib import Path

from .graph_document import EXAMPLES, SCHEMA_PATH, GraphDocument, document_json_schema


def toolkit_example(
    conv: dict | None = None, data: dict | None = None, input_shape=(6, 5, 64, 64, 3)
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


def write_resources(root: Path = EXAMPLES) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name, doc in bundled().items():
        doc.save(root / f"{name}.json")


def write_schema(path: Path = SCHEMA_PATH) -> None:
    path.write_text(json.dumps(document_json_schema(), indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write_schema()
    write_resources()
