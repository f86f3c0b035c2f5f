"""The toolbar's compute backend selector: the choice (auto / numpy / cupy) and, beside it, the
backend that choice actually resolves to on this machine."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QLabel, QToolBar

from conv3dt_studio.compute import BackendError, cupy_status, get_backend

BACKENDS = ("auto", "numpy", "cupy")


def backend_text(name: str = "auto") -> str:
    """'numpy (CPU)' for what ``name`` resolves to, or why it is unavailable."""
    try:
        b = get_backend(name)
    except BackendError:
        return f"{name}: unavailable ({cupy_status()})"
    return f"{b.name} ({b.device_name})"


def add_backend_selector(toolbar: QToolBar) -> tuple[QComboBox, QLabel]:
    """Add ' Backend [choice] → resolved' to ``toolbar``; returns the combo box and the label."""
    toolbar.addWidget(QLabel(" Backend "))
    selector = QComboBox()
    selector.setObjectName("backend_selector")
    selector.addItems(BACKENDS)
    selector.setToolTip(f"Compute backend. CuPy: {cupy_status()}")
    label = QLabel()
    label.setObjectName("backend_label")

    def show(name: str) -> None:
        label.setText(f" → {backend_text(name)} ")
        label.setToolTip(f"CuPy: {cupy_status()}")

    selector.currentTextChanged.connect(show)
    toolbar.addWidget(selector)
    toolbar.addWidget(label)
    show(selector.currentText())
    return selector, label
