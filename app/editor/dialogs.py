"""The window's questions to the user, in one replaceable object.

Every modal dialog of the editor goes through :class:`Dialogs`, so tests (and automation) pass an
object with the same methods and nothing ever blocks on a modal loop.
"""

from __future__ import annotations

from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

GRAPH_FILTER = (
    "Graphs and models (*.json *.png *.keras *.safetensors *.pt *.pth *.py);;Graph JSON (*.json);;"
    "Snippet PNG (*.png);;Keras model (*.keras);;PyTorch weights (*.safetensors *.pt *.pth);;"
    "Exported PyTorch model (model.py)"
)
JSON_FILTER = "Graph JSON (*.json)"
PNG_FILTER = "Snippet PNG (*.png)"
NPY_FILTER = "NumPy array (*.npy)"
NPZ_FILTER = "Weights (*.npz)"


class Dialogs:
    """Real dialogs, parented to ``parent``."""

    def __init__(self, parent: QWidget | None = None) -> None:
        self.parent = parent

    def message(self, title: str, text: str) -> None:
        QMessageBox.warning(self.parent, title, text)

    def question(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self.parent, title, text)
        return answer == QMessageBox.StandardButton.Yes

    def save_changes(self, name: str) -> str:
        """'save', 'discard' or 'cancel' for a document with unsaved changes."""
        buttons = (
            QMessageBox.StandardButton.Save
            | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel
        )
        answer = QMessageBox.question(
            self.parent, "Unsaved changes", f"Save the changes to {name}?", buttons
        )
        return {
            QMessageBox.StandardButton.Save: "save",
            QMessageBox.StandardButton.Discard: "discard",
        }.get(answer, "cancel")

    def open_path(self, title: str, file_filter: str) -> str | None:
        path, _ = QFileDialog.getOpenFileName(self.parent, title, "", file_filter)
        return path or None

    def save_path(self, title: str, file_filter: str, suggested: str = "") -> str | None:
        path, _ = QFileDialog.getSaveFileName(self.parent, title, suggested, file_filter)
        return path or None
