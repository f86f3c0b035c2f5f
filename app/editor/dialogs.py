"""The window's questions to the user, in one replaceable object.

Every modal dialog of the editor goes through :class:`Dialogs`, so tests (and automation) pass an
object with the same methods and nothing ever blocks on a modal loop.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

GRAPH_FILTER = (
    "Graphs and models (*.json *.png *.keras *.safetensors *.pt *.pth *.py *.onnx);;"
    "Graph JSON (*.json);;Snippet PNG (*.png);;Keras model (*.keras);;"
    "PyTorch weights (*.safetensors *.pt *.pth);;Exported PyTorch model (model.py);;"
    "Exported ONNX model (*.onnx)"
)
JSON_FILTER = "Graph JSON (*.json)"
PNG_FILTER = "Snippet PNG (*.png)"
SAVE_FILTER = f"{JSON_FILTER};;{PNG_FILTER}"  # Save As: a graph file the editor opens again
NPY_FILTER = "NumPy array (*.npy)"
NPZ_FILTER = "Weights (*.npz)"


class Asks(Protocol):
    """What :func:`confirmed_path` needs: :class:`Dialogs`, or a test's stand-in."""

    def question(self, title: str, text: str) -> bool: ...


def with_suffix(path: str, suffix: str) -> str:
    """``path``, with ``suffix`` added when it has no extension."""
    return path if Path(path).suffix else path + suffix


def suffix_problem(path: str, suffixes: tuple[str, ...], what: str) -> str | None:
    """Why ``path`` cannot be the name of ``what`` (e.g. "a snippet PNG"), written in the format
    of one of ``suffixes``: it ends in another suffix, and no file hides its format behind a
    wrong name (the command line's rule). None when it ends in one of them (any case) or in
    none (the first is added)."""
    suffix = Path(path).suffix
    if not suffix or suffix.lower() in suffixes:
        return None
    allowed = " or ".join(suffixes)
    return (
        f"Cannot save `{os.path.basename(path)}` as {what}: its name must end in {allowed} (a "
        f"name without an extension gets {suffixes[0]}). Received: {suffix}"
    )


def confirmed_path(dialogs: Asks, path: str, suffix: str, always: bool = False) -> str | None:
    """The file a save dialog's answer ``path`` names once ``suffix`` is added when it has none
    (with ``always``: unless it ends with it); None when that adds the suffix to an existing file
    and the user will not replace it. (The dialog asked about replacing the name typed, not this
    one: no file is overwritten unasked.)"""
    out = path + suffix if always and not path.endswith(suffix) else with_suffix(path, suffix)
    if out == path or not os.path.exists(out):
        return out
    name = os.path.basename(out)
    if dialogs.question(
        "Replace file?", f"{name} already exists in {os.path.dirname(out) or '.'}. Replace it?"
    ):
        return out
    return None


class Dialogs:
    """Real dialogs, parented to ``parent``."""

    def __init__(self, parent: QWidget | None = None) -> None:
        self.parent = parent
        # file dialogs start in the last folder used, first in the user's home (not wherever
        # the editor was started from)
        self.folder = os.path.expanduser("~")

    def message(self, title: str, text: str) -> None:
        QMessageBox.warning(self.parent, title, text)

    def question(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self.parent, title, text)
        return answer == QMessageBox.StandardButton.Yes

    def save_changes(self, name: str, weights: bool = False) -> str:
        """'save', 'discard' or 'cancel' for a document with unsaved changes; with unsaved
        trained ``weights`` also 'embed' (save the graph with them) or 'npz' (a weights file)."""
        box = QMessageBox(self.parent)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Unsaved changes")
        text = f"Save the changes to {name}?"
        if weights:
            text += "\n\nThe trained weights are not saved: they are lost unless kept."
        box.setText(text)
        answers = {}
        if weights:
            role = QMessageBox.ButtonRole.AcceptRole
            answers[box.addButton("Save with Weights Embedded", role)] = "embed"
            answers[box.addButton("Save Weights as .npz…", role)] = "npz"
        answers[box.addButton(QMessageBox.StandardButton.Save)] = "save"
        answers[box.addButton(QMessageBox.StandardButton.Discard)] = "discard"
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        return answers.get(box.clickedButton(), "cancel")

    def open_path(self, title: str, file_filter: str) -> str | None:
        path, _ = QFileDialog.getOpenFileName(self.parent, title, self.folder, file_filter)
        return self._used(path)

    def save_path(self, title: str, file_filter: str, suggested: str = "") -> str | None:
        start = os.path.join(self.folder, os.path.basename(suggested)) if suggested else self.folder
        path, _ = QFileDialog.getSaveFileName(self.parent, title, start, file_filter)
        return self._used(path)

    def _used(self, path: str) -> str | None:
        """The chosen path; its folder is where the next dialog starts."""
        if path:
            self.folder = os.path.dirname(path)
        return path or None
