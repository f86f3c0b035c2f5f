"""The prediction inspector: the Prediction 6D info cluster, statistics, a slice viewer and a
histogram (pyqtgraph), and "Save prediction…" to .npy.

A 6-D prediction is (batch, time, filter, d1, d2, d3) (channels_first) or (batch, time, d1, d2, d3,
filter) (channels_last). The viewer shows one 2-D slice of one (batch, time, filter) volume across
the chosen axis, beside the matching slice of the input. The Volume tab shows one tensor's volume
as volume viewers do: three orthogonal planes (d1, d2, d3) through a crosshair, which a click on a
plane or the crosshair's spin boxes move, and a maximum-intensity projection along the viewer's
axis, all four on one colour scale (the volume's range). Each tensor is sliced with its own layout.
A new result of the same shapes keeps the view (axis, slice, crosshair), so that one slice compares
before and after an edit. The picture exports write atomically and raise :class:`OSError` (a
``nodes.FileError`` naming the file) when they cannot.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from conv3dt_studio.compute.layers import fmt_shape
from conv3dt_studio.nodes import FileError, RunResult, prediction_stats
from conv3dt_studio.nodes.files import atomic_write_bytes

pg.setConfigOptions(imageAxisOrder="row-major", antialias=True, exitCleanup=False)

AXES = ("d1", "d2", "d3")
STALE_NOTE = (
    '<p style="color:#f0b450"><b>Stale:</b> the graph or its weights changed since this run; run '
    "again (F5) to update.</p>"
)
COLOR_MAP = "viridis"
TARGET_TITLE = "Target slice"
NO_LOSS = "no Loss"  # why a run has no target, unless its context says otherwise
TENSORS = ("prediction", "input", "target")  # what the Volume tab can show, in this order
PREDICTION_VOLUME, INPUT_VOLUME, TARGET_VOLUME = range(len(TENSORS))
VIDEO_SIZE = 320  # an MP4's frames are enlarged (whole pixels) to about this size
VIDEO_BLOCK = 16  # ... and padded to a multiple of this (what H.264 encoders want)


def layouts_of(result: RunResult, without_layers: bool = True) -> tuple[bool, bool]:
    """Whether the run's input and its prediction are channels_first: the input has the layout
    of the first Conv3DTranspose layer (which reads it), the prediction that of the last (which
    produced it); ``without_layers`` for both when the run's graph has no layer (an Input
    inspected: the canvas knows the layout of the layer it feeds)."""
    flags = [
        bool(inner.channels_first)
        for inner in (getattr(layer, "layer", None) for layer in result.graph.layers)
        if inner is not None and hasattr(inner, "channels_first")
    ]
    return (flags[0], flags[-1]) if flags else (without_layers, without_layers)


def shapes_of(result: RunResult) -> tuple:
    """The shapes the viewer's ranges follow: a new result with the same keeps the view."""
    target = result.target
    return result.prediction.shape, result.input.shape, None if target is None else target.shape


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
class RunContext:
    """What the window knows of a run that its result cannot say (the run controller fills it
    in when the run ends): the node whose output it is, as the canvas names it ('': the
    result's Prediction 6D id); the tensor's layout when the run's graph has no layer to tell;
    why it has no target; whether the graph or the weights changed while it ran."""

    node: str = ""
    channels_first: bool = True
    no_target: str = NO_LOSS
    stale: bool = False


@dataclass(frozen=True)
class Summary:
    """What the inspector shows about a whole prediction; computed on the worker thread, since
    a pass over millions of values would stall the GUI. ``context``: see :class:`RunContext`."""

    stats: dict[str, float]
    counts: np.ndarray
    edges: np.ndarray
    context: RunContext = field(default_factory=RunContext)


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


def plane_axes(axis: int) -> tuple[int, int]:
    """The volume axes shown as rows and columns of the plane across ``axis``."""
    rows, cols = (a for a in range(3) if a != axis)
    return rows, cols


def projection(vol: np.ndarray, axis: int) -> np.ndarray:
    """The maximum-intensity projection of a 3-D volume along ``axis`` (NaN ignored)."""
    return np.fmax.reduce(np.asarray(vol, np.float32), axis=axis)


def finite_range(a: np.ndarray) -> tuple[float, float]:
    """The range of ``a``'s finite values, widened when flat; (0, 1) when there are none."""
    finite = a[np.isfinite(a)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    return lo, hi if hi > lo else lo + 1e-6


def video_frames(frames: np.ndarray) -> np.ndarray:
    """RGB frames (time, rows, columns, 3) enlarged by a whole factor to about
    :data:`VIDEO_SIZE` and padded with black to multiples of :data:`VIDEO_BLOCK`: a slice of a
    few voxels stays sharp and every encoder takes it."""
    h, w = frames.shape[1:3]
    f = max(1, math.ceil(VIDEO_SIZE / max(h, w)))
    big = frames.repeat(f, axis=1).repeat(f, axis=2)
    pad_h, pad_w = (-big.shape[1]) % VIDEO_BLOCK, (-big.shape[2]) % VIDEO_BLOCK
    return np.pad(big, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))


def thumbnail(y: np.ndarray, channels_first: bool) -> np.ndarray:
    """The live preview's picture of a prediction: the first sample's first time step, first
    filter, middle slice across its thinnest axis (the inspector's first view), as RGB uint8."""
    vol = volume(y, 0, 0, 0, channels_first)
    axis = int(np.argmin(vol.shape))
    return colorize(take_slice(vol, axis, vol.shape[axis] // 2))


class PlaneImage(pg.ImageItem):
    """An image that says which pixel a left click hit: ``clicked(column, row)``."""

    clicked = Signal(int, int)

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 - pyqtgraph's name
        if ev.button() != Qt.MouseButton.LeftButton or self.image is None:
            return
        ev.accept()
        pos = ev.pos()
        self.clicked.emit(int(math.floor(pos.x())), int(math.floor(pos.y())))


class PredictionInspector(QWidget):
    """Shows the last :class:`nodes.RunResult`."""

    save_requested = Signal()
    result_shown = Signal(bool)  # a result is shown now (True), or none any more (False)

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("prediction_inspector_view")
        self.result: RunResult | None = None
        self.context = RunContext()  # of the shown result
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

        # the Volume tab's controls: which tensor, and the crosshair (one voxel: d1, d2, d3)
        self.volume_of = QComboBox()
        self.volume_of.setObjectName("inspector_volume_tensor")
        self.volume_of.addItems(TENSORS)
        self.volume_of.setToolTip("The tensor whose volume the planes and the projection show")
        self.volume_of.currentIndexChanged.connect(self._tensor_changed)
        self.cross: list[QSpinBox] = []
        for name in AXES:
            spin = QSpinBox()
            spin.setObjectName(f"inspector_cross_{name}")
            spin.setToolTip(f"The crosshair's {name} (a click on a plane moves it too)")
            spin.valueChanged.connect(self.update_volume)
            self.cross.append(spin)
        for w in (self.volume_of, *self.cross):
            w.setEnabled(False)

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
        self.target_plot = self.plots.addPlot(row=0, col=2, title=TARGET_TITLE)
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
        self.views = QTabWidget()
        self.views.setObjectName("inspector_views")
        self.views.addTab(self.plots, "Slices")
        self.views.addTab(self._make_volume_page(), "Volume")
        self.main_layout.replaceWidget(self.placeholder, self.views)
        self.placeholder.deleteLater()

    def _make_volume_page(self) -> QWidget:
        """Three orthogonal planes through the crosshair and a maximum-intensity projection,
        on one colour bar."""
        self.volume_plots = pg.GraphicsLayoutWidget()
        self.volume_plots.setObjectName("inspector_volume_plots")
        self.volume_plots.setBackground((20, 23, 28))
        self.planes: list[PlaneImage] = []
        self.plane_plots: list[pg.PlotItem] = []
        self.cross_lines: list[tuple[pg.InfiniteLine, pg.InfiniteLine]] = []
        pen = pg.mkPen((255, 90, 90, 200), width=1)
        for i, title in enumerate((*(f"{a} plane" for a in AXES), "MIP")):
            plot = self.volume_plots.addPlot(row=0, col=i, title=title)
            image = PlaneImage()
            plot.addItem(image)
            plot.setAspectLocked(True)
            plot.invertY(True)
            image.clicked.connect(partial(self.plane_clicked, i))
            lines = (pg.InfiniteLine(angle=90, pen=pen), pg.InfiniteLine(angle=0, pen=pen))
            for line in lines:
                plot.addItem(line, ignoreBounds=True)
            self.planes.append(image)
            self.plane_plots.append(plot)
            self.cross_lines.append(lines)
        self.volume_bar = pg.ColorBarItem(colorMap=COLOR_MAP, interactive=False, width=14)
        self.volume_bar.setImageItem(self.planes)
        self.volume_plots.addItem(self.volume_bar, row=0, col=4)
        row = QHBoxLayout()
        row.addWidget(QLabel("volume of"))
        row.addWidget(self.volume_of)
        row.addSpacing(12)
        row.addWidget(QLabel("crosshair"))
        for name, spin in zip(AXES, self.cross):
            row.addWidget(QLabel(name))
            row.addWidget(spin)
        row.addStretch(1)
        page = QWidget()
        page.setObjectName("inspector_volume_page")
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.volume_plots, 1)
        return page

    # ------------------------------------------------------------------ showing a result
    def show_result(self, result: RunResult, summary: Summary | None = None) -> None:
        """Show ``result``; with the shapes and layouts of the shown one, keep the view (axis,
        slice, crosshair), else start at the middle slice across the thinnest axis."""
        self._ensure_plots()
        summary = summary or summarize(result.prediction)
        context = summary.context
        layouts = layouts_of(result, context.channels_first)
        old = self.result
        keep_view = (
            old is not None
            and shapes_of(old) == shapes_of(result)
            and layouts == (self.input_channels_first, self.channels_first)
        )
        self.result, self.context, self.stale = result, context, False
        self.input_channels_first, self.channels_first = layouts
        y, x = result.prediction, result.input
        x_channels = channels(x, self.input_channels_first) if x.ndim == 6 else 1
        ranges = (
            (self.batch, y.shape[0]),
            (self.time, y.shape[1]),
            (self.filter, channels(y, self.channels_first)),
            (self.in_channel, x_channels),
        )
        for spin, n in ranges:  # all of them before any redraw: each clamps its own value
            spin.blockSignals(True)
            spin.setRange(0, max(n - 1, 0))
            spin.blockSignals(False)
        for w in self._controls():
            w.setEnabled(True)
        self.info.setText(self._info_text(result, summary.stats))
        if summary.counts.size:
            self.hist_curve.setData(summary.edges, summary.counts)
        else:
            self.hist_curve.setData([], [])
        if keep_view:
            self.update_view()
        else:
            vol = volume(y, 0, 0, 0, self.channels_first)
            self.slice.blockSignals(True)
            self.slice.setValue(0)  # the middle slice, once the axis is chosen
            self.slice.blockSignals(False)
            self.axis.blockSignals(True)
            self.axis.setCurrentIndex(int(np.argmin(vol.shape)))  # the largest 2-D slices
            self.axis.blockSignals(False)
            self._recenter()
            self._axis_changed()
        if context.stale:
            self.mark_stale()
        self.result_shown.emit(True)

    def has_result(self) -> bool:
        """Whether a result is shown (what Save prediction and the picture exports need)."""
        return self.result is not None

    def enable_with_result(self, *items: QWidget | QAction) -> None:
        """Keep ``items`` (the picture exports' actions) enabled only while a result is shown."""
        for item in items:
            item.setEnabled(self.has_result())
            self.result_shown.connect(item.setEnabled)

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
            self.volume_of,
            *self.cross,
        )

    def clear(self) -> None:
        """Show nothing (a new or opened document): no image, no ranges from an old result."""
        self.play.setChecked(False)
        self.result = None
        self.context = RunContext()
        self.stale = False
        if self.plots is not None:
            self.input_image.clear()
            self.pred_image.clear()
            self.target_image.clear()
            self.hist_curve.setData([], [])
            self.input_plot.setTitle("Input slice")
            self.pred_plot.setTitle("Prediction slice")
            self.target_plot.setTitle(TARGET_TITLE)
        self.info.setText("Run the graph (F5) to inspect its prediction.")
        self.slice_label.setText("0")
        for w in self._controls():
            if isinstance(w, (QSpinBox, QSlider)) and w is not self.fps:  # the crosshair too
                w.blockSignals(True)
                w.setRange(0, 0)
                w.blockSignals(False)
            w.setEnabled(False)
        self.update_volume()  # no planes, no crosshair
        self.result_shown.emit(False)

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
        """The shown tab's plots (slices, or the volume), as a PNG; False when nothing is shown."""
        if self.plots is None or self.result is None:
            return False
        data = QByteArray()
        buffer = QBuffer(data)
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        if not self.views.currentWidget().grab().save(buffer, "PNG"):
            raise FileError(f"Cannot save `{path}`: the view could not be drawn as a PNG")
        atomic_write_bytes(path, data.data())
        return True

    def export_time_series(self, path: str) -> bool:
        """The shown slice over every time step as an animated GIF at the player's frame rate;
        False when nothing is shown."""
        import imageio.v3 as iio

        frames = self._time_frames()
        if frames is None:
            return False
        gif = iio.imwrite(
            "<bytes>", frames, extension=".gif", duration=1000 / self.fps.value(), loop=0
        )
        atomic_write_bytes(path, gif)
        return True

    def export_video(self, path: str) -> bool:
        """The shown slice over every time step as an H.264 MP4 at the player's frame rate
        (ffmpeg from imageio-ffmpeg), enlarged so its voxels can be seen; False when nothing is
        shown. ffmpeg writes a temporary file, copied to ``path`` atomically."""
        import imageio.v3 as iio

        frames = self._time_frames()
        if frames is None:
            return False
        with tempfile.TemporaryDirectory(prefix="conv3dt-video-") as folder:
            video = Path(folder) / "video.mp4"
            iio.imwrite(
                video,
                video_frames(frames),
                extension=".mp4",
                fps=self.fps.value(),
                codec="libx264",
                macro_block_size=VIDEO_BLOCK,
            )
            atomic_write_bytes(path, video.read_bytes())
        return True

    def _time_frames(self) -> np.ndarray | None:
        r = self.result
        if r is None:
            return None
        return time_frames(
            r.prediction,
            self.batch.value(),
            self.filter.value(),
            self.axis.currentIndex(),
            self.slice.value(),
            self.channels_first,
        )

    def mark_stale(self) -> None:
        """The graph or its weights changed since this prediction: say so above it (it stays for
        comparison)."""
        if self.result is None or self.stale:
            return
        self.stale = True
        self.info.setText(STALE_NOTE + self.info.text())

    def info_text(self) -> str:
        return self.info.text()

    def _info_text(self, r: RunResult, s: dict[str, float]) -> str:
        # min, max, mean and std are over the finite values (NumPy's would be inf or nan)
        finite = "finite " if s["nan"] or s["inf"] else ""
        rows = [
            ("node", self.context.node or r.prediction_node),
            ("layer name", r.info.name),
            ("graph index", r.info.index),
            ("output shape", fmt_shape(r.info.shape)),
            ("output layout", layout_text(r.info.shape, self.channels_first)),
            ("input layout", layout_text(r.input.shape, self.input_channels_first)),
            ("dtype", str(r.prediction.dtype)),
            (f"{finite}min / max", f"{s['min']:.6g} / {s['max']:.6g}"),
            (f"{finite}mean / std", f"{s['mean']:.6g} / {s['std']:.6g}"),
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
            self.target_plot.setTitle(f"{TARGET_TITLE} {index}")
        else:
            self.target_image.clear()
            self.target_plot.setTitle(f"{TARGET_TITLE} (none: {self._no_target()})")
        self.pred_plot.setTitle(f"Prediction slice {index}")
        self._show(shown)
        self.update_volume()

    # ------------------------------------------------------------------ the volume
    def shown_volume(self) -> np.ndarray | None:
        """The 3-D volume the Volume tab shows: the chosen tensor at the chosen sample, time and
        channel (the filter, or the input channel for the input), sliced with its own layout;
        None without a result or that tensor."""
        r = self.result
        if r is None:
            return None
        b, t = self.batch.value(), self.time.value()
        which = self.volume_of.currentIndex()
        if which == INPUT_VOLUME:
            x = r.input
            if x.ndim != 6:
                return None
            b, t = min(b, x.shape[0] - 1), min(t, x.shape[1] - 1)
            return volume(x, b, t, self.in_channel.value(), self.input_channels_first)
        a = r.prediction if which == PREDICTION_VOLUME else r.target
        if a is None or a.shape != r.prediction.shape:
            return None
        return volume(a, b, t, self.filter.value(), self.channels_first)

    def _no_target(self) -> str:
        """Why the shown result has no target to show beside its prediction."""
        r = self.result
        if r is not None and r.target is not None:
            return f"its shape {fmt_shape(r.target.shape)} is not the prediction's"
        return self.context.no_target

    def _tensor_changed(self, *_args) -> None:
        self._recenter()
        self.update_volume()

    def _recenter(self) -> None:
        """The crosshair's ranges for the shown volume, at its centre."""
        vol = self.shown_volume()
        for n, spin in zip(vol.shape if vol is not None else (1, 1, 1), self.cross):
            spin.blockSignals(True)
            spin.setRange(0, max(n - 1, 0))
            spin.setValue(n // 2)
            spin.blockSignals(False)

    def plane_clicked(self, plane: int, column: int, row: int) -> None:
        """A click on a plane (0-2: d1-d3; 3: the projection) moves the crosshair there."""
        across = plane if plane < 3 else self.axis.currentIndex()
        rows, cols = plane_axes(across)
        for axis, value in ((rows, row), (cols, column)):
            self.cross[axis].blockSignals(True)
            self.cross[axis].setValue(value)  # clamped to the volume
            self.cross[axis].blockSignals(False)
        self.update_volume()

    def crosshair(self) -> tuple[int, int, int]:
        d1, d2, d3 = (spin.value() for spin in self.cross)
        return d1, d2, d3

    def update_volume(self, *_args) -> None:
        """The three planes through the crosshair and the projection along the viewer's axis,
        on the volume's colour scale (its finite range: moving the crosshair keeps it)."""
        if self.plots is None:
            return
        vol = self.shown_volume()
        for spin in self.cross:  # nothing to move through without a volume
            spin.setEnabled(vol is not None)
        for line in (line for lines in self.cross_lines for line in lines):
            line.setVisible(vol is not None)
        if vol is None:
            which = self.volume_of.currentIndex()
            if self.result is None:
                why = "no run yet"
            else:
                why = self._no_target() if which == TARGET_VOLUME else "not a 6-D tensor"
            for plane, (image, plot) in enumerate(zip(self.planes, self.plane_plots)):
                image.clear()
                plot.setTitle(f"{TENSORS[which]}: none ({why})" if plane == 0 else "")
            return
        at = self.crosshair()
        along = self.axis.currentIndex()
        shown = [take_slice(vol, a, at[a]) for a in range(3)] + [projection(vol, along)]
        titles = [f"{AXES[a]} plane {at[a]}" for a in range(3)] + [f"MIP along {AXES[along]}"]
        for plane, (image, values) in enumerate(zip(self.planes, shown)):
            image.setImage(np.ascontiguousarray(values, dtype=np.float32), autoLevels=False)
            rows, cols = plane_axes(plane if plane < 3 else along)
            vertical, horizontal = self.cross_lines[plane]
            vertical.setPos(at[cols] + 0.5)
            horizontal.setPos(at[rows] + 0.5)
            self.plane_plots[plane].setTitle(titles[plane])
        self.volume_bar.setLevels(finite_range(vol))

    def _show(self, shown: dict[pg.ImageItem, np.ndarray]) -> None:
        """Show each slice on one colour scale: the range of all their finite values."""
        images = {item: np.ascontiguousarray(a, dtype=np.float32) for item, a in shown.items()}
        values = np.concatenate([a.ravel() for a in images.values()])
        for item, image in images.items():
            item.setImage(image, autoLevels=False)
        self.color_bar.setLevels(finite_range(values))
