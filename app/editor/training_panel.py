"""The training panel: settings (from the one declaration), a live learning curve, gradient norms
per step and a histogram of the last gradients (pyqtgraph)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from conv3dt_studio.compute import ParameterError
from conv3dt_studio.nodes.settings import TRAINING_SCHEMA

from .property_panel import Field, make_editor, tooltip

LOSS_PEN = pg.mkPen("#4fc3f7", width=2)
VAL_PEN = pg.mkPen("#ffb74d", width=2, style=pg.QtCore.Qt.PenStyle.DashLine)
LOG_TIP = "Plot the losses on a logarithmic axis (positive losses only)"
NORM_COLOURS = ("#81c784", "#e57373", "#ba68c8", "#4dd0e1", "#fff176", "#f06292")


def _setup_plot(plot: pg.PlotItem, title: str, x: str, y: str) -> pg.PlotItem:
    plot.setTitle(title)
    plot.setLabel("bottom", x)
    plot.setLabel("left", y)
    plot.showGrid(x=True, y=True, alpha=0.25)
    plot.addLegend(offset=(-10, 10))
    return plot


class TrainingPanel(QWidget):
    """Shows and edits ``doc.extras["training"]``; plots what a training run reports."""

    setting_edited = Signal(str, object)  # name, value (already validated)

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("training_panel_view")
        self.fields: dict[str, Field] = {}
        self.values: dict[str, Any] = TRAINING_SCHEMA.defaults()  # the document's, last shown
        settings = QGroupBox("Training settings")
        settings.setObjectName("training_settings")
        form = QFormLayout(settings)
        for param in TRAINING_SCHEMA:
            # training_batch_size, not param_batch_size: that is the Data node's field
            editor = make_editor(param, f"training_{param.name}")
            field = Field(editor)
            field.setToolTip(tooltip(param))
            editor.edited.connect(lambda value, name=param.name: self._edited(name, value))
            self.fields[param.name] = field
            label = QLabel(param.name.replace("_", " "))
            label.setToolTip(tooltip(param))
            form.addRow(label, field)
        self.summary = QLabel("Not trained yet. Add a Target and a Loss node, then Train.")
        self.summary.setObjectName("training_summary")
        self.summary.setWordWrap(True)
        self.log_y = QCheckBox("log scale")
        self.log_y.setObjectName("learning_curve_log")
        self.log_y.setToolTip(LOG_TIP)
        self.log_y.toggled.connect(self._set_log)

        # The plots are built with the first training (as the inspector's): creating and deleting
        # many pyqtgraph plots per window is slow, and crashes PySide6 6.12 after a few hundred.
        self.plots: pg.GraphicsLayoutWidget | None = None
        self.placeholder = QLabel(
            "The learning curve, gradient norms and a histogram of the "
            "last gradients appear here while training."
        )
        self.placeholder.setObjectName("training_placeholder")
        self.placeholder.setWordWrap(True)

        left = QVBoxLayout()
        left.addWidget(settings)
        left.addWidget(self.log_y)
        left.addWidget(self.summary)
        left.addStretch(1)
        self.box = QHBoxLayout(self)
        self.box.addLayout(left, 1)
        self.box.addWidget(self.placeholder, 6)
        self.reset()

    def _ensure_plots(self) -> None:
        if self.plots is not None:
            return
        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setObjectName("training_plots")
        self.curve_plot = _setup_plot(self.plots.addPlot(), "Learning curve", "epoch", "loss")
        self.loss_curve = self.curve_plot.plot(
            [], [], pen=LOSS_PEN, symbol="o", symbolSize=5, name="training loss"
        )
        self.val_curve = self.curve_plot.plot(
            [], [], pen=VAL_PEN, symbol="t", symbolSize=5, name="validation loss"
        )
        self.norm_plot = _setup_plot(
            self.plots.addPlot(), "Gradient norms (layers with store)", "step", "L2 norm"
        )
        self.hist_plot = _setup_plot(
            self.plots.addPlot(), "Last kernel gradients", "value", "count"
        )
        self.hist_item = pg.PlotDataItem(
            [], [], stepMode="center", fillLevel=0, brush=(129, 199, 132, 120), pen="#81c784"
        )
        self.hist_plot.addItem(self.hist_item)
        self.curve_plot.setLogMode(y=self.log_y.isChecked())
        self.box.replaceWidget(self.placeholder, self.plots)
        self.placeholder.hide()

    # ------------------------------------------------------------------ settings
    def set_settings(self, values: dict[str, Any]) -> None:
        self.values = dict(values)
        for name, field in self.fields.items():
            field.editor.set_value(values[name])
            field.show_error(None)

    def _edited(self, name: str, value: Any) -> None:
        """A refused value shows its message and, as in the properties panel, the field shows
        the last good value again: the one the next training uses."""
        try:
            value = TRAINING_SCHEMA[name].validate(value)
        except ParameterError as exc:
            self.fields[name].editor.set_value(self.values[name])
            self.fields[name].show_error(str(exc))
            return
        self.fields[name].show_error(None)
        self.setting_edited.emit(name, value)

    def commit_pending(self) -> None:
        """Confirm a setting typed but not confirmed yet (no Enter), as Enter would; the window
        calls it before Train, Save... (as :meth:`.PropertyPanel.commit_pending`)."""
        for field in self.fields.values():
            field.editor.commit_pending()

    def show_setting_error(self, name: str, text: str | None) -> None:
        self.fields[name].show_error(text)

    # ------------------------------------------------------------------ plots
    def curve(self) -> list[tuple[int, dict[str, float]]]:
        """The learning curve as ``add_epoch`` took it: (epoch, logs) per epoch, the validation
        loss with the epochs that measured one (a training without a validation split, continued
        by one with it, has it on some epochs only)."""
        vals = dict(zip(self.val_epochs, self.val_losses))
        return [
            (e - 1, {"loss": loss} if e not in vals else {"loss": loss, "val_loss": vals[e]})
            for e, loss in zip(self.epochs, self.losses)
        ]

    def show_curve(self, curve: list[tuple[int, dict[str, float]]]) -> None:
        """Show ``curve`` (from :meth:`curve`) again, as if those epochs were just trained."""
        self.reset()
        for epoch, logs in curve:
            self.add_epoch(epoch, logs)

    def reset(self) -> None:
        """Forget the curves (a new training from fresh weights)."""
        self.summary.setText("Not trained yet. Add a Target and a Loss node, then Train.")
        self.epochs: list[int] = []
        self.losses: list[float] = []
        self.val_epochs: list[int] = []  # the epochs that measured a validation loss
        self.val_losses: list[float] = []
        self._allow_log(None)
        if self.plots is not None:
            self.loss_curve.setData([], [])
            self.val_curve.setData([], [])
            for _xs, _ys, item in getattr(self, "norms", {}).values():
                self.norm_plot.removeItem(item)  # and its legend entry
            self.hist_item.setData([], [])
        self.norms: dict[str, tuple[list[int], list[float], pg.PlotDataItem]] = {}

    def add_epoch(self, epoch: int, logs: dict[str, float]) -> None:
        self._ensure_plots()
        self.epochs.append(epoch + 1)
        self.losses.append(float(logs["loss"]))
        self.loss_curve.setData(self.epochs, self.losses)
        if "val_loss" in logs:
            self.val_epochs.append(epoch + 1)
            self.val_losses.append(float(logs["val_loss"]))
            self.val_curve.setData(self.val_epochs, self.val_losses)
        for what, value in (("loss", logs["loss"]), ("validation loss", logs.get("val_loss"))):
            if value is not None and not float(value) > 0 and self.log_y.isEnabled():
                self._allow_log(f"{what} {float(value):.6g} at epoch {epoch + 1}")
        text = f"epoch {epoch + 1}: loss {logs['loss']:.6g}"
        if "val_loss" in logs:
            text += f", validation loss {logs['val_loss']:.6g}"
        self.summary.setText(text)

    def add_step(self, step: int, info: dict[str, Any]) -> None:
        self._ensure_plots()
        for layer, row in info.items():
            if not isinstance(row, dict):
                continue
            for param, norm in row.items():
                key = f"{layer}.{param}"
                if key not in self.norms:
                    colour = NORM_COLOURS[len(self.norms) % len(NORM_COLOURS)]
                    item = self.norm_plot.plot([], [], pen=pg.mkPen(colour, width=1.5), name=key)
                    self.norms[key] = ([], [], item)
                xs, ys, item = self.norms[key]
                xs.append(step + 1)
                ys.append(float(norm))
                item.setData(xs, ys)

    def show_gradients(self, grads: dict[str, dict[str, np.ndarray | None]]) -> None:
        """Histogram of the last kernel gradients of every layer that stores them."""
        values = [g["kernel"].ravel() for g in grads.values() if g.get("kernel") is not None]
        self._ensure_plots()
        if not values:
            self.hist_item.setData([], [])
            return
        counts, edges = np.histogram(np.concatenate(values), bins=40)
        self.hist_item.setData(edges, counts)

    def _set_log(self, on: bool) -> None:
        if on and not self.log_y.isEnabled():  # checked by a script: refused as a click is
            self.log_y.setChecked(False)
            return
        if self.plots is not None:
            self.curve_plot.setLogMode(y=on)

    def _allow_log(self, refused: str | None) -> None:
        """A loss that is zero or negative (cosine_similarity's are, as in Keras) has no
        logarithm: the log scale is turned off and refused, saying why (``refused``: the loss
        and its epoch), until the curve is reset; None allows it again."""
        if refused is None:
            self.log_y.setEnabled(True)
            self.log_y.setToolTip(LOG_TIP)
            return
        self.log_y.setChecked(False)
        self.log_y.setEnabled(False)
        self.log_y.setToolTip(
            f"No log scale for this curve: the {refused} is not positive, and only positive "
            "values have a logarithm"
        )
