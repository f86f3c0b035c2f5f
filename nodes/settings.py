"""The document's own settings, beside its nodes: the training settings stored under
``"training"`` (epochs, batch size, shuffle, validation split). Declared once, like every
parameter: validation, the training panel's widgets and the JSON come from this schema."""

from __future__ import annotations

from conv3dt_studio.compute import Param, Schema

TRAINING_SCHEMA = Schema(
    (
        Param(
            "epochs", "int", 20, "Passes over the training samples.", group="training", minimum=1
        ),
        Param("batch_size", "int", 4, "Samples per optimizer step.", group="training", minimum=1),
        Param(
            "shuffle",
            "bool",
            True,
            "Shuffle the samples every epoch (seeded by the graph's seed).",
            group="training",
        ),
        Param(
            "validation_split",
            "float",
            0.0,
            "Fraction of the samples (the last ones) kept "
            "out of training to measure the validation loss.",
            group="training",
            minimum=0.0,
            maximum=0.9,
        ),
    )
)
