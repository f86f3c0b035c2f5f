"""The inspector's Volume tab: three orthogonal planes through a crosshair (moved by a click on a
plane or by its spin boxes), a maximum-intensity projection, one colour scale per tensor, each
tensor sliced with its own layout; and the time series as MP4."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from small_graphs import small_doc

from conv3dt_studio.app.editor.prediction_inspector import (
    VIDEO_BLOCK,
    projection,
    video_frames,
    volume,
)

RUN_TIMEOUT_MS = 60_000


@pytest.fixture
def insp(window, qtbot):
    """The inspector of ``window`` after a run (F5), on its Volume tab."""
    return _run_and_show_volume(window, qtbot)


def _run_and_show_volume(window, qtbot):
    """Run (a real F5), then show the Volume tab with a real click on its tab."""
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS):
        window.activateWindow()
        qtbot.waitUntil(window.isActiveWindow)
        QTest.keyClick(window.canvas.viewer, Qt.Key.Key_F5)
    insp = window.inspector
    bar = insp.views.tabBar()
    QTest.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(1).center())
    assert insp.views.currentIndex() == 1
    slices, page = insp.views.widget(0), insp.views.widget(1)
    qtbot.waitUntil(lambda: page.size() == slices.size())  # laid out in the tab's area
    corner = []  # where a plane's pixel is drawn, the same twice over: the planes are settled

    def settled() -> bool:
        QApplication.processEvents()
        corner.append(insp.planes[0].mapToScene(QPointF(1.0, 1.0)))
        return len(corner) > 1 and corner[-1] == corner[-2]

    qtbot.waitUntil(settled)
    return insp


def _type(spin, text):
    """Select the spin box's number and type ``text``, then Enter: real keys."""
    spin.setFocus()
    spin.selectAll()
    QTest.keyClicks(spin, text)
    QTest.keyClick(spin, Qt.Key.Key_Return)


def _click_pixel(insp, plane, column, row):
    """A real left click on pixel (column, row) of a plane."""
    view = insp.volume_plots
    at = insp.planes[plane].mapToScene(QPointF(column + 0.5, row + 0.5))
    QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.mapFromScene(at))


def test_the_planes_go_through_the_crosshair_typed_in_its_spin_boxes(insp):
    vol = volume(insp.result.prediction, 0, 0, 0, True)  # (10, 10, 5) on the small graph
    assert [s.maximum() for s in insp.cross] == [n - 1 for n in vol.shape]
    assert insp.crosshair() == tuple(n // 2 for n in vol.shape)  # starts at the centre
    for spin, text in zip(insp.cross, ("2", "7", "1")):
        _type(spin, text)
    assert insp.crosshair() == (2, 7, 1)
    np.testing.assert_array_equal(insp.planes[0].image, vol[2])
    np.testing.assert_array_equal(insp.planes[1].image, vol[:, 7])
    np.testing.assert_array_equal(insp.planes[2].image, vol[:, :, 1])
    assert insp.cross_lines[0][0].value() == 1.5 and insp.cross_lines[0][1].value() == 7.5


def test_a_click_on_a_plane_moves_the_crosshair_there(insp):
    _click_pixel(insp, 0, column=3, row=6)  # d1 plane: rows d2, columns d3
    d1 = insp.crosshair()[0]
    assert insp.crosshair() == (d1, 6, 3)
    _click_pixel(insp, 2, column=8, row=1)  # d3 plane: rows d1, columns d2
    assert insp.crosshair() == (1, 8, 3)
    vol = volume(insp.result.prediction, 0, 0, 0, True)
    np.testing.assert_array_equal(insp.planes[1].image, vol[:, 8])


def test_the_projection_is_the_maximum_along_the_viewer_axis(insp):
    vol = volume(insp.result.prediction, 0, 0, 0, True)
    for axis in range(3):
        insp.axis.setCurrentIndex(axis)
        np.testing.assert_array_equal(insp.planes[3].image, vol.max(axis=axis))
        assert insp.plane_plots[3].titleLabel.text.endswith(("d1", "d2", "d3")[axis])


def test_projection_ignores_nan():
    vol = np.array([[[np.nan, 1.0]], [[2.0, np.nan]]], np.float32)
    np.testing.assert_array_equal(projection(vol, 0), [[2.0, 1.0]])


def test_one_colour_scale_per_tensor_kept_while_the_crosshair_moves(insp):
    r = insp.result
    pred = volume(r.prediction, 0, 0, 0, True)
    assert insp.volume_bar.levels() == pytest.approx((pred.min(), pred.max()))
    _type(insp.cross[0], "0")
    assert insp.volume_bar.levels() == pytest.approx((pred.min(), pred.max()))
    insp.volume_of.setCurrentText("input")
    x = volume(r.input, 0, 0, 0, True)
    assert insp.volume_bar.levels() == pytest.approx((x.min(), x.max()))
    assert [s.maximum() for s in insp.cross] == [n - 1 for n in x.shape]  # its own size


def test_the_input_volume_uses_the_input_layout(make_window, qtbot):
    w = make_window(small_doc())
    c = w.canvas
    c.set_param("conv3d_transpose", "data_format", "channels_last")
    c.set_param("input", "shape", [2, 8, 8, 3, 2])
    c.set_param("data", "sample_shape", [2, 8, 8, 3, 2])
    insp = _run_and_show_volume(w, qtbot)
    insp.volume_of.setCurrentText("input")
    insp.in_channel.setValue(1)
    x = insp.result.input  # (2, 2, 8, 8, 3, 2): channels last
    np.testing.assert_array_equal(insp.shown_volume(), x[0, 0, :, :, :, 1])
    assert [s.maximum() for s in insp.cross] == [7, 7, 2]


def test_without_a_loss_the_target_volume_says_so(insp):
    insp.volume_of.setCurrentText("target")
    assert insp.planes[0].image is None
    assert "none" in insp.plane_plots[0].titleLabel.text


def test_the_volume_view_exports_as_png(window, insp, fake_dialogs, tmp_path):
    fake_dialogs.save_paths = [str(tmp_path / "volume.png")]
    window.action_export_view.trigger()
    image = iio.imread(tmp_path / "volume.png")
    size = window.inspector.views.currentWidget().size()  # the Volume tab, not the slices
    assert image.shape[:2] == (size.height(), size.width())


def test_the_time_series_exports_as_mp4(window, insp, fake_dialogs, tmp_path):
    fake_dialogs.save_paths = [str(tmp_path / "series")]
    window.action_export_video.trigger()
    frames = iio.imread(tmp_path / "series.mp4", index=None)
    assert frames.shape[0] == insp.result.prediction.shape[1]  # one frame per time step
    assert frames.shape[1] % VIDEO_BLOCK == 0 and frames.shape[2] % VIDEO_BLOCK == 0
    assert frames[0].std() > 0  # a picture, not a blank frame


def test_video_frames_enlarge_by_whole_pixels_and_pad_to_blocks():
    frames = np.arange(2 * 10 * 3 * 3, dtype=np.uint8).reshape(2, 10, 3, 3)
    big = video_frames(frames)
    assert big.shape == (2, 320, 96, 3)  # x32: 320 x 96, already multiples of 16
    np.testing.assert_array_equal(big[:, ::32, ::32], frames)
    odd = video_frames(np.ones((1, 7, 5, 3), np.uint8))
    assert odd.shape[1] % VIDEO_BLOCK == 0 and odd.shape[2] % VIDEO_BLOCK == 0
    assert odd[0, -1, -1].tolist() == [0, 0, 0]  # padded with black
