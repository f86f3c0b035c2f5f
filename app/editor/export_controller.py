"""File -> Export -> ONNX / Keras / PyTorch / Python: the graph's chain with the weights a Run
would use (trained, else embedded, else seeded), through the same function as
``conv3dt-studio export`` (:func:`conv3dt_studio.nodes.interop.export_document`), in a background
job (Keras and PyTorch take seconds to import). The Prediction 6D exported is the one Run would
compute for the current selection. Importing goes through File -> Open and drops: ``nodes.load``
takes .keras files and exported PyTorch models.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QWidget

from conv3dt_studio.compute import Conv3DTStudioError
from conv3dt_studio.nodes.interop.common import FORMAT_TITLES, FORMATS

from .actions import make_action
from .activity import Activity, JobController
from .canvas import Canvas
from .dialogs import Dialogs, confirmed_path
from .jobs import JobControl
from .run_job import prediction_to_run

FILTERS = {
    "onnx": "ONNX model (*.onnx)",
    "keras": "Keras model (*.keras)",
    "pytorch": "PyTorch model folder (*)",
    "python": "Python script (*.py)",
}
SUGGESTED = {"onnx": "model.onnx", "keras": "model.keras", "pytorch": "model", "python": "model.py"}


class ExportController(JobController):
    """The four Export actions and their jobs."""

    exported = Signal(object)  # nodes.interop.ExportResult
    export_failed = Signal(str)

    def __init__(
        self,
        canvas: Canvas,
        dialogs: Dialogs,
        activity: Activity,
        weights: Callable[[], dict[str, Any] | None],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(activity, parent)
        self.canvas = canvas
        self.dialogs = dialogs
        self.weights = weights  # the trained weights (named arrays), or None

    def make_actions(self, owner: QWidget) -> list[QAction]:
        """``action_export_onnx``, ``action_export_keras``, ``action_export_pytorch``,
        ``action_export_python``."""
        self.actions = {
            fmt: make_action(
                owner,
                f"action_export_{fmt}",
                f"{FORMAT_TITLES[fmt]}…",
                lambda f=fmt: self.export(f),
                None,
                f"Export the graph and its weights to {FORMAT_TITLES[fmt]}",
            )
            for fmt in FORMATS
        }
        return list(self.actions.values())

    def export(self, fmt: str, path: str | os.PathLike | None = None, force: bool = False) -> bool:
        """Export to ``path`` (asked for when None; the dialog, or our question when the suffix is
        added to the name typed, has confirmed a replacement)."""
        if self.activity.busy:
            return False
        if path is None:
            chosen = self.dialogs.save_path(
                f"Export to {FORMAT_TITLES[fmt]}", FILTERS[fmt], SUGGESTED[fmt]
            )
            suffix = Path(SUGGESTED[fmt]).suffix  # none for a folder
            confirmed = chosen and confirmed_path(self.dialogs, chosen, suffix)
            if not confirmed:
                return False
            path, force = confirmed, True
        doc = self.canvas.doc.copy()
        prediction = prediction_to_run(doc, self.canvas.selected_ids())
        weights = self.weights()

        def work(_control: JobControl) -> Any:
            from conv3dt_studio.nodes.interop import export_document

            return export_document(
                doc, fmt, path, weights=weights, prediction=prediction, force=force
            )

        self.activity.log(f"Exporting to {FORMAT_TITLES[fmt]}: {path}")
        self.start_job(work, self._on_exported, self._on_failed)
        return True

    def _on_exported(self, result: Any) -> None:
        self.activity.log(result.summary, "ok")
        self.activity.show_status(f"Exported {result.path}")
        self.exported.emit(result)

    def _on_failed(self, exc: BaseException) -> None:
        problems = getattr(exc, "problems", None)
        text = "; ".join(str(p) for p in problems) if problems else str(exc)
        if not isinstance(exc, Conv3DTStudioError):
            text = f"{type(exc).__name__}: {text}"
        self.activity.log(f"Export failed: {text}", "error")
        self.dialogs.message("Cannot export", text)
        self.export_failed.emit(text)
