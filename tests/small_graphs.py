"""The small graphs the tests share: the toolkit example with tiny shapes, running in
milliseconds. One definition for every test folder (the ``make_doc`` fixture hands it out)."""

from __future__ import annotations

from conv3dt_studio.nodes import GraphDocument
from conv3dt_studio.nodes.examples import teacher_student, toolkit_example

SMALL_SAMPLE = (2, 2, 8, 8, 3)  # (time, channels, d1, d2, d3), channels_first


def small_doc(conv: dict | None = None, batch: int = 2, **data) -> GraphDocument:
    """The toolkit graph with tiny shapes: Data (batch, 2, 2, 8, 8, 3); ``conv`` and ``data``
    override the Conv3DTranspose and Data parameters."""
    return toolkit_example(
        conv,
        data={"batch_size": batch, "sample_shape": list(SMALL_SAMPLE), **data},
        input_shape=SMALL_SAMPLE,
    )


def teacher_doc(epochs: int) -> GraphDocument:
    """The bundled teacher-student example set to train ``epochs`` epochs."""
    doc = teacher_student()
    doc.extras["training"]["epochs"] = epochs
    return doc
