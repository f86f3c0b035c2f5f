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
    return _trainable(doc, "target", epochs=30)


def _trainable(doc: GraphDocument, target: str, epochs: int) -> GraphDocument:
    """``doc`` with a mean-squared-error Loss between its Prediction 6D and ``target`` and its
    training settings (batches of 8, shuffled, a quarter of the samples for validation)."""
    doc.add_node("loss", {"loss": "mean_squared_error"}, pos=(1160, 160))
    doc.connect("prediction_6d", "y", "loss", "prediction")
    doc.connect(target, "data", "loss", "target")
    doc.extras["training"] = {
        "epochs": epochs,
        "batch_size": 8,
        "shuffle": True,
        "validation_split": 0.25,
    }
    return doc


UPSAMPLE_SHAPE = (4, 1, 16, 16, 16)  # time, channel, d1, d2, d3 of the high-resolution samples


def upsample_2x() -> GraphDocument:
    """Learning 2x upsampling: moving 3-D blobs (generated, seeded) are shrunk by a Resample
    (the mean of each 2x2x2 block) into the Input, and the originals are the Loss's target; a
    stride-2 "same" Conv3DTranspose learns to undo the shrink, better than repeating voxels."""
    t, c, *spatial = UPSAMPLE_SHAPE
    low = (t, c, *(s // 2 for s in spatial))
    doc = toolkit_example(
        conv={
            "n_filters": c,
            "size": [6, 6, 6],
            "stride": [2, 2, 2],
            "padding": True,
            "activation": "linear",
            "optimizer": {"algorithm": "adam", "learning_rate": 0.01},
        },
        data={"batch_size": 48, "distribution": "blobs"},
        input_shape=low,
    )
    doc.nodes["data"].params["sample_shape"] = list(UPSAMPLE_SHAPE)
    doc.disconnect("data", "data", "input", "x")
    doc.add_node("resample", {"factors": [1, 1, 2, 2, 2], "method": "mean"}, pos=(110, -160))
    doc.connect("data", "data", "resample", "x")
    doc.connect("resample", "data", "input", "x")
    return _trainable(doc, "data", epochs=80)  # the original samples are the target


def bundled() -> dict[str, GraphDocument]:
    return {
        "toolkit_example": toolkit_example(),
        "channels_last": toolkit_example(
            {"data_format": "channels_last"}, input_shape=(6, 64, 64, 3, 5)
        ),
        "stride2_same": toolkit_example({"stride": [2, 2, 2], "padding": True}),
        "teacher_student": teacher_student(),
        "upsample_2x": upsample_2x(),
    }
