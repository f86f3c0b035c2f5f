"""The prediction inspector: the Prediction 6D info cluster, statistics, a slice viewer and a
histogram (pyqtgraph), and "Save prediction…" to .npy.

A 6-D prediction is (batch, time, filter, d1, d2, d3) (channels_first) or (batch, time, d1, d2, d3,
filter) (channels_last). The viewer shows one 2-D slice of one (batch, time, filter) volume across
the chosen axis, beside the matching slice of the input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from conv3dt_studio.compute.layers import fmt_shape
from conv3dt_studio.nodes import RunResult, prediction_stats

pg.setConfigOptions(imageAxisOrder="row-major", antialias=True, exitCleanup=False)

AXES = ("d1", "d2", "d3")
STALE_NOTE = (
    '<p style="color:#f0b450"><b>Stale:</b> the graph changed since this run; run again '
    "(F5) to update.</p>"
)
COLOR_MAP = "viridis"
NO_TARGET = "Target slice (none: no Loss)"


def layouts_of(result: RunResult) -> tuple[bool, bool]:
    """Whether the run's input and its prediction are channels_first: the input has the layout
    of the first Conv3DTranspose layer (which reads it), the prediction that of the last (which
    produced it); channels_first without a layer."""
    flags = [
        bool(inner.channels_first)
        for inner in (getattr(layer, "layer", None) for layer in result.graph.layers)
        if inner is not None and hasattr(inner, "channels_first")
    ]
    return (flags[0], flags[-1]) if flags else (True, True)


def layout_text(shape: tuple, channels_first: bool) -> str:
    """A 6-D shape with its channel axis marked and named: '10×6×[3]×66×66×5 channels_first'."""
    axis = 2 if channels_first else len(shape) - 1
    dims = "×".join(f"[{s}]" if i == axis else str(s) for i, s in enumerate(shape))
    return f"{dims} {'channels_first' if channels_first else 'channels_last'}"


def channels(a: np.ndarray, channels_first: bool) -> int:
    return a.shape[2] if channels_first else a.shape[5]


def volume(a: np.ndarray, b: int, t: int, c: int, channels_first: bool) -> np.ndarray:
    """The 3-D volume (d1, d2, d3) of sample ``b``, time ``t``, channel ``c`` of a 6-D array."""
    c = min(c, (a.shape[2] if channels_first else a.shape[5]) - 1)
    return a[b, t, c] if channels_first else a[b, t, :, :, :, c]


@dataclass(frozen=True)
class Summary:
    """What the inspector shows about a whole prediction; computed on the worker thread, since
    a pass over millions of values would stall the GUI."""

    stats: dict[str, float]
    counts: np.ndarray
    edges: np.ndarray


def summarize(y: np.ndarray, bins: int = 64) -> Summary:
    finite = np.isfinite(y)
    values = y if finite.all() else y[finite]
    if values.size:
        counts, edges = np.histogram(values, bins=bins)
    else:
        counts, edges = np.zeros(0), np.zeros(0)
    return Summary(prediction_stats(y), counts, edges)


def take_slice(vol: np.ndarray, axis: int, index: int) -> np.ndarray:
    return np.take(vol, min(index, vol.shape[axis] - 1), axis=axis)


def time_frames(
    y: np.ndarray, b: int, c: int, axis: int, index: int, channels_first: bool
) -> np.ndarray:
    """The slice the viewer shows at every time step, as (time, rows, columns, RGB) uint8 on
    one colour scale (the finite range over all steps): the frames of an animated GIF."""
    slices = np.stack(
        [take_slice(volume(y, b, t, c, channels_first), axis, index) for t in range(y.shape[1])]
    )
    return colorize(slices)


def colorize(values: np.ndarray) -> np.ndarray:
    """``values`` as RGB uint8 (one more trailing axis) in the viewer's colour map, on one
    colour scale: the range of their finite values."""
    values = np.asarray(values, np.float32)
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    scaled = np.nan_to_num((values - lo) / max(hi - lo, 1e-12), nan=0.0, posinf=1.0, neginf=0.0)
    lut = pg.colormap.get(COLOR_MAP).getLookupTable(nPts=256, alpha=False)
    return lut[np.clip((scaled * 255).round(), 0, 255).astype(np.uint8)]


def thumbnail(y: np.ndarray, channels_first: bool) -> np.ndarray:
    """The live preview's picture of a prediction: the first sample's first time step, first
    filter, middle slice across its thinnest axis (the inspector's first view), as RGB uint8."""
    vol = volume(y, 0, 0, 0, channels_first)
    axis = int(np.argmin(vol.shape))
    return colorize(take_slice(vol, axis, vol.shape[axis] // 2))


class PredictionInspector(QWidget):
    """Shows the last :class:`nodes.RunResult`."""

    save_requested = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("prediction_inspector_view")
        self.result: RunResult | None = None
        self.channels_first = True  # the prediction's layout
        self.input_channels_first = True
        self.stale = False

        self.info = QLabel("Run the graph (F5) to inspect its prediction.")
        self.info.setObjectName("inspector_info")
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.info.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.info.setMinimumWidth(250)

        self.batch, self.time, self.filter = QSpinBox(), QSpinBox(), QSpinBox()
        self.in_channel = QSpinBox()
        self.axis = QComboBox()
        self.axis.addItems(AXES)
        self.axis.setCurrentIndex(0)
        self.slice = QSlider(Qt.Orientation.Horizontal)
        self.slice_label = QLabel("0")
        for name, w in (
            ("inspector_batch", self.batch),
            ("inspector_time", self.time),
            ("inspector_filter", self.filter),
            ("inspector_in_channel", self.in_channel),
            ("inspector_axis", self.axis),
            ("inspector_slice", self.slice),
        ):
            w.setObjectName(name)
            w.setEnabled(False)
        for spin in (self.batch, self.time, self.filter, self.in_channel):
            spin.valueChanged.connect(self.update_view)
        self.axis.currentIndexChanged.connect(self._axis_changed)
        self.slice.valueChanged.connect(self.update_view)

        # the player: steps the time axis at the chosen frame rate, round and round
        self.play = QPushButton("▶ Play")
        self.play.setObjectName("inspector_play")
        self.play.setCheckable(True)
        self.play.setToolTip("Play the time axis (the slice at each time step)")
        self.play.toggled.connect(self._play_toggled)
        self.fps = QSpinBox()
        self.fps.setObjectName("inspector_fps")
        self.fps.setRange(1, 60)
        self.fps.setValue(5)
        self.fps.setSuffix(" fps")
        self.fps.valueChanged.connect(self._play_toggled)
        self.player = QTimer(self)
        self.player.timeout.connect(self.step_time)

        self.save_button = QPushButton("Save prediction…")
        self.save_button.setObjectName("save_prediction")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self.save_requested.emit)

        controls = QGridLayout()
        controls.addWidget(QLabel("batch"), 0, 0)
        controls.addWidget(self.batch, 0, 1)
        controls.addWidget(QLabel("time"), 0, 2)
        controls.addWidget(self.time, 0, 3)
        controls.addWidget(QLabel("filter"), 1, 0)
        controls.addWidget(self.filter, 1, 1)
        controls.addWidget(QLabel("input channel"), 1, 2)
        controls.addWidget(self.in_channel, 1, 3)
        controls.addWidget(QLabel("axis"), 2, 0)
        controls.addWidget(self.axis, 2, 1)
        controls.addWidget(self.play, 2, 2)
        controls.addWidget(self.fps, 2, 3)
        slice_row = QHBoxLayout()
        slice_row.addWidget(QLabel("slice"))
        slice_row.addWidget(self.slice, 1)
        slice_row.addWidget(self.slice_label)

        left = QVBoxLayout()
        left.addWidget(self.info, 1)
        left.addLayout(controls)
        left.addLayout(slice_row)
        left.addWidget(self.save_button)

        self.plots: pg.GraphicsLayoutWidget | None = None  # built with the first result (slow)
        self.placeholder = QLabel("The slice viewer and histogram appear after a run.")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setObjectName("inspector_placeholder")

        layout = QHBoxLayout(self)
        layout.addLayout(left)
        layout.addWidget(self.placeholder, 1)
        self.main_layout = layout

    def prepare(self) -> None:
        """Build the plots now (they take a moment; done while idle after start-up)."""
        self._ensure_plots()

    def _ensure_plots(self) -> None:
        if self.plots is not None:
            return
        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setObjectName("inspector_plots")
        self.plots.setBackground((20, 23, 28))
        self.input_plot = self.plots.addPlot(row=0, col=0, title="Input slice")
        self.pred_plot = self.plots.addPlot(row=0, col=1, title="Prediction slice")
        self.target_plot = self.plots.addPlot(row=0, col=2, title=NO_TARGET)
        self.input_image = pg.ImageItem()
        self.pred_image = pg.ImageItem()
        self.target_image = pg.ImageItem()
        images = (self.input_image, self.pred_image, self.target_image)
        for plot, image in zip((self.input_plot, self.pred_plot, self.target_plot), images):
            plot.addItem(image)
            plot.setAspectLocked(True)
            plot.invertY(True)
        # one colour scale for the three slices, so they compare by eye
        self.color_bar = pg.ColorBarItem(colorMap=COLOR_MAP, interactive=False, width=14)
        self.color_bar.setImageItem(list(images))
        self.plots.addItem(self.color_bar, row=0, col=3)
        self.hist_plot = self.plots.addPlot(row=1, col=0, colspan=4, title="Histogram (prediction)")
        self.hist_plot.setMaximumHeight(150)
        self.hist_curve = pg.PlotDataItem(
            stepMode="center", fillLevel=0, brush=(90, 170, 250, 120), pen=(90, 170, 250)
        )
        self.hist_plot.addItem(self.hist_curve)
        self.main_layout.replaceWidget(self.placeholder, self.plots)
        self.placeholder.deleteLater()

    # ------------------------------------------------------------------ showing a result
    def show_result(self, result: RunResult, summary: Summary | None = None) -> None:
        self._ensure_plots()
        summary = summary or summarize(result.prediction)
        self.result = result
        self.stale = False
        self.input_channels_first, self.channels_first = layouts_of(result)
        y, x = result.prediction, result.input
        for spin, n in ((self.batch, y.shape[0]), (self.time, y.shape[1])):
            spin.setRange(0, max(n - 1, 0))
        self.filter.setRange(0, max(channels(y, self.channels_first) - 1, 0))
        x_channels = channels(x, self.input_channels_first) if x.ndim == 6 else 1
        self.in_channel.setRange(0, max(x_channels - 1, 0))
        for w in self._controls():
            w.setEnabled(True)
        self.info.setText(self._info_text(result, summary.stats))
        if summary.counts.size:
            self.hist_curve.setData(summary.edges, summary.counts)
        else:
            self.hist_curve.setData([], [])
        vol = volume(y, 0, 0, 0, self.channels_first)
        self.slice.setValue(0)
        self.axis.blockSignals(True)
        self.axis.setCurrentIndex(int(np.argmin(vol.shape)))  # the largest 2-D slices
        self.axis.blockSignals(False)
        self._axis_changed()

    def _controls(self) -> tuple[QWidget, ...]:
        return (
            self.batch,
            self.time,
            self.filter,
            self.in_channel,
            self.axis,
            self.slice,
            self.play,
            self.fps,
            self.save_button,
        )

    def clear(self) -> None:
        """Show nothing (a new or opened document): no image, no ranges from an old result."""
        self.play.setChecked(False)
        self.result = None
        self.stale = False
        if self.plots is not None:
            self.input_image.clear()
            self.pred_image.clear()
            self.target_image.clear()
            self.hist_curve.setData([], [])
            self.input_plot.setTitle("Input slice")
            self.pred_plot.setTitle("Prediction slice")
            self.target_plot.setTitle(NO_TARGET)
        self.info.setText("Run the graph (F5) to inspect its prediction.")
        self.slice_label.setText("0")
        for w in self._controls():
            if isinstance(w, (QSpinBox, QSlider)) and w is not self.fps:
                w.blockSignals(True)
                w.setRange(0, 0)
                w.blockSignals(False)
            w.setEnabled(False)

    # ------------------------------------------------------------------ time and exports
    def _play_toggled(self, *_args) -> None:
        if self.play.isChecked() and self.result is not None:
            self.player.start(max(1, round(1000 / self.fps.value())))
            self.play.setText("⏸ Pause")
        else:
            self.player.stop()
            self.play.setText("▶ Play")

    def step_time(self) -> None:
        """The next time step (after the last, the first)."""
        top = self.time.maximum()
        self.time.setValue(0 if self.time.value() >= top else self.time.value() + 1)

    def export_view(self, path: str) -> bool:
        """The plots as they are shown, as a PNG; False when nothing is shown."""
        if self.plots is None or self.result is None:
            return False
        return bool(self.plots.grab().save(path, "PNG"))

    def export_time_series(self, path: str) -> bool:
        """The shown slice over every time step as an animated GIF at the player's frame rate;
        False when nothing is shown."""
        import imageio.v3 as iio

        r = self.result
        if r is None:
            return False
        frames = time_frames(
            r.prediction,
            self.batch.value(),
            self.filter.value(),
            self.axis.currentIndex(),
            self.slice.value(),
            self.channels_first,
        )
        iio.imwrite(path, frames, extension=".gif", duration=1000 / self.fps.value(), loop=0)
        return True

    def mark_stale(self) -> None:
        """The graph changed since this prediction: say so above it (it stays for comparison)."""
        if self.result is None or self.stale:
            return
        self.stale = True
        self.info.setText(STALE_NOTE + self.info.text())

    def info_text(self) -> str:
        return self.info.text()

    def _info_text(self, r: RunResult, s: dict[str, float]) -> str:
        rows = [
            ("node", r.prediction_node),
            ("layer name", r.info.name),
            ("graph index", r.info.index),
            ("output shape", fmt_shape(r.info.shape)),
            ("output layout", layout_text(r.info.shape, self.channels_first)),
            ("input layout", layout_text(r.input.shape, self.input_channels_first)),
            ("dtype", str(r.prediction.dtype)),
            ("min / max", f"{s['min']:.6g} / {s['max']:.6g}"),
            ("mean / std", f"{s['mean']:.6g} / {s['std']:.6g}"),
            ("NaN / Inf", f"{s['nan']} / {s['inf']}"),
            ("backend", r.backend),
            ("time", f"{r.seconds:.2f} s"),
        ]
        cells = "".join(f"<tr><td><b>{k}</b>&nbsp;&nbsp;</td><td>{v}</td></tr>" for k, v in rows)
        return f"<b>Prediction 6D</b> — info cluster<table>{cells}</table>"

    def _axis_changed(self, *_args) -> None:
        if self.result is None:
            return
        vol = volume(self.result.prediction, 0, 0, 0, self.channels_first)
        n = vol.shape[self.axis.currentIndex()]
        self.slice.blockSignals(True)
        self.slice.setRange(0, max(n - 1, 0))
        self.slice.setValue(min(self.slice.value(), n - 1) if self.slice.value() else n // 2)
        self.slice.blockSignals(False)
        self.update_view()

    def update_view(self, *_args) -> None:
        r = self.result
        if r is None:
            return
        b, t, c = self.batch.value(), self.time.value(), self.filter.value()
        axis, index = self.axis.currentIndex(), self.slice.value()
        vol = volume(r.prediction, b, t, c, self.channels_first)
        self.slice_label.setText(f"{index}/{vol.shape[axis] - 1}")
        shown = {self.pred_image: take_slice(vol, axis, index)}
        x = r.input
        if x.ndim == 6:
            xb, xt = min(b, x.shape[0] - 1), min(t, x.shape[1] - 1)
            xvol = volume(x, xb, xt, self.in_channel.value(), self.input_channels_first)
            n_out, n_in = vol.shape[axis], xvol.shape[axis]
            xi = round(index * (n_in - 1) / (n_out - 1)) if n_out > 1 else 0
            shown[self.input_image] = take_slice(xvol, axis, xi)
            self.input_plot.setTitle(f"Input slice {xi}")
        target = r.target
        if target is not None and target.shape == r.prediction.shape:
            shown[self.target_image] = take_slice(
                volume(target, b, t, c, self.channels_first), axis, index
            )
            self.target_plot.setTitle(f"Target slice {index}")
        else:
            self.target_image.clear()
            self.target_plot.setTitle(NO_TARGET)
        self.pred_plot.setTitle(f"Prediction slice {index}")
        self._show(shown)

    def _show(self, shown: dict[pg.ImageItem, np.ndarray]) -> None:
        """Show each slice on one colour scale: the range of all their finite values."""
        images = {item: np.ascontiguousarray(a, dtype=np.float32) for item, a in shown.items()}
        values = np.concatenate([a[np.isfinite(a)].ravel() for a in images.values()])
        lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
        if hi <= lo:
            hi = lo + 1e-6
        for item, image in images.items():
            item.setImage(image, autoLevels=False)
        self.color_bar.setLevels((lo, hi))
