"""The inspector over time: play/pause at a frame rate, the view as PNG, the time series as GIF."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from conv3dt_studio.app.editor.prediction_inspector import time_frames

RUN_TIMEOUT_MS = 60_000


def _run(window, qtbot):
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS):
        assert window.run()
    return window.inspector


def test_play_steps_the_time_axis_and_pause_stops_it(window, qtbot):
    inspector = _run(window, qtbot)
    assert inspector.time.maximum() == 1  # two time steps
    inspector.fps.setValue(50)
    inspector.play.setFocus()
    QTest.keyClick(inspector.play, Qt.Key.Key_Space)  # a real press on the focused button
    assert inspector.play.isChecked() and inspector.player.interval() == 20
    seen = set()
    qtbot.waitUntil(lambda: seen.add(inspector.time.value()) or seen == {0, 1}, timeout=2000)
    QTest.keyClick(inspector.play, Qt.Key.Key_Space)
    assert not inspector.play.isChecked() and not inspector.player.isActive()


def test_new_stops_the_player(window, qtbot, fake_dialogs):
    inspector = _run(window, qtbot)
    inspector.play.setChecked(True)
    window.files.new_document()
    assert not inspector.player.isActive() and not inspector.play.isEnabled()


def test_the_view_exports_as_png(window, qtbot, fake_dialogs, tmp_path):
    _run(window, qtbot)
    fake_dialogs.save_paths = [str(tmp_path / "view")]
    window.action_export_view.trigger()
    image = iio.imread(tmp_path / "view.png")
    assert image.shape[0] > 100 and image.shape[1] > 100 and image.shape[2] in (3, 4)
    assert len(np.unique(image.reshape(-1, image.shape[2]), axis=0)) > 16  # slices drawn


def test_the_time_series_exports_as_an_animated_gif(window, qtbot, fake_dialogs, tmp_path):
    inspector = _run(window, qtbot)
    fake_dialogs.save_paths = [str(tmp_path / "series.gif")]
    window.action_export_time_series.trigger()
    frames = iio.imread(tmp_path / "series.gif", index=None)
    y = inspector.result.prediction
    assert frames.shape[0] == y.shape[1]  # one frame per time step
    axis, index = inspector.axis.currentIndex(), inspector.slice.value()
    expected = time_frames(y, 0, 0, axis, index, True)
    assert frames.shape[1:3] == expected.shape[1:3]


def test_time_frames_share_one_colour_scale():
    y = np.zeros((1, 2, 1, 2, 2, 2), np.float32)
    y[0, 1] = 1.0  # step 0 all low, step 1 all high
    frames = time_frames(y, 0, 0, 0, 0, True)
    assert frames.shape == (2, 2, 2, 3) and frames.dtype == np.uint8
    assert not np.array_equal(frames[0], frames[1])
    assert (frames[0] == frames[0, 0, 0]).all() and (frames[1] == frames[1, 0, 0]).all()
