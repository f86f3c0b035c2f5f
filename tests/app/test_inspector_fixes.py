"""The inspector against what the run it shows really computed: smaller reruns, edits during a run,
a channels_last Input inspected, the view kept across reruns, the target pane's reasons and the
statistics of a prediction with Inf."""

from __future__ import annotations

import re

import numpy as np
import pytest
from small_graphs import small_doc

from conv3dt_studio.app.editor.prediction_inspector import volume
from conv3dt_studio.nodes.examples import teacher_student

RUN_TIMEOUT_MS = 60_000


def _run(window, qtbot):
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        assert window.run()
    return blocker.args[0]


def _inspect(window, qtbot, node_id):
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        window.canvas_menus.inspect_requested.emit(node_id)
    return blocker.args[0]


def _text(html: str) -> str:
    return " ".join(re.sub("<[^>]+>", " ", html).replace("&nbsp;", " ").split())


def _view(insp):
    """What the viewer shows: (batch, time, filter, axis, slice, crosshair)."""
    return (
        insp.batch.value(),
        insp.time.value(),
        insp.filter.value(),
        insp.axis.currentIndex(),
        insp.slice.value(),
        insp.crosshair(),
    )


def test_a_rerun_with_fewer_samples_and_time_steps_clamps_the_view_without_an_error(
    make_window, qtbot
):
    w = make_window(small_doc(batch=4))
    w.canvas.set_param("data", "sample_shape", [5, 2, 8, 8, 3])  # the Input follows
    assert w.canvas.doc.params("input")["shape"][0] == 5
    _run(w, qtbot)
    insp = w.inspector
    insp.batch.setValue(3)
    insp.time.setValue(4)
    w.canvas.set_param("data", "sample_shape", [2, 2, 8, 8, 3])
    w.canvas.set_param("data", "batch_size", 2)
    with qtbot.captureExceptions() as exceptions:
        y = _run(w, qtbot).prediction
    assert exceptions == []
    assert (insp.batch.value(), insp.time.value()) == (1, 1)
    b, t, c = insp.batch.value(), insp.time.value(), insp.filter.value()
    vol = volume(y, b, t, c, True)
    axis, index = insp.axis.currentIndex(), insp.slice.value()
    np.testing.assert_array_equal(insp.pred_image.image, np.take(vol, index, axis=axis))


def test_a_result_computed_before_an_edit_arrives_stale(window, qtbot):
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS):
        assert window.run()
        # the run copied the graph when it started: this edit is not in its prediction
        assert window.canvas.set_param("conv3d_transpose", "activation", "tanh") is None
    assert window.inspector.stale
    assert "Stale" in window.inspector.info_text()


def test_a_result_of_the_unchanged_graph_is_current(window, qtbot):
    _run(window, qtbot)
    window.canvas.set_param("conv3d_transpose", "activation", "tanh")
    assert window.inspector.stale  # the shown result predates the edit
    _run(window, qtbot)
    assert not window.inspector.stale and "Stale" not in window.inspector.info_text()


def _channels_last_doc():
    doc = small_doc({"data_format": "channels_last"}, sample_shape=[2, 8, 8, 3, 4])
    doc.set_param("input", "shape", [2, 8, 8, 3, 4])
    return doc


def test_inspecting_a_channels_last_input_slices_it_as_channels_last(make_window, qtbot):
    w = make_window(_channels_last_doc())
    assert not w.canvas.channels_first("input")
    x = _inspect(w, qtbot, "input").prediction  # (2, 2, 8, 8, 3, 4)
    insp = w.inspector
    assert not insp.channels_first and insp.filter.maximum() == 3  # 4 channels, on the last axis
    insp.batch.setValue(1)
    insp.filter.setValue(2)
    insp.axis.setCurrentIndex(0)
    insp.slice.setValue(5)
    np.testing.assert_array_equal(insp.pred_image.image, x[1, 0, 5, :, :, 2])
    assert "2×2×8×8×3×[4] channels_last" in _text(insp.info_text())


def test_an_inspected_output_is_named_as_the_canvas_names_its_node(make_window, qtbot):
    w = make_window(_channels_last_doc())
    _inspect(w, qtbot, "input")
    info = _text(w.inspector.info_text())
    assert "node Input (`input`)" in info and "probe" not in info
    assert "probe" not in w.log.text().splitlines()[-1]


def test_a_rerun_with_the_same_shapes_keeps_the_axis_slice_and_crosshair(window, qtbot):
    _run(window, qtbot)
    insp = window.inspector
    insp.batch.setValue(1)
    insp.filter.setValue(2)
    insp.axis.setCurrentIndex(0)
    insp.slice.setValue(0)  # the first slice is a choice too
    for spin, value in zip(insp.cross, (3, 8, 1)):
        spin.setValue(value)
    before = _view(insp)
    window.canvas.set_param("conv3d_transpose", "activation", "tanh")
    y = _run(window, qtbot).prediction
    assert _view(insp) == before
    np.testing.assert_array_equal(insp.pred_image.image, y[1, 0, 2, 0])
    np.testing.assert_array_equal(insp.planes[1].image, y[1, 0, 2, :, 8])


def test_a_rerun_with_other_shapes_starts_the_view_afresh(window, qtbot):
    _run(window, qtbot)
    insp = window.inspector
    insp.axis.setCurrentIndex(0)
    insp.slice.setValue(9)
    window.canvas.set_param("conv3d_transpose", "size", [2, 2, 2])  # 9×9×4 volumes now
    y = _run(window, qtbot).prediction
    vol = volume(y, 0, 0, 0, True)
    assert insp.axis.currentIndex() == int(np.argmin(vol.shape))
    assert insp.crosshair() == tuple(n // 2 for n in vol.shape)


def test_the_target_pane_says_why_a_loss_has_no_target(make_window, qtbot, tmp_path):
    doc = teacher_student()
    doc.set_param("data", "batch_size", 2)
    w = make_window(doc)
    w.canvas.set_param("target", "source", "file")
    w.canvas.set_param("target", "path", str(tmp_path / "missing.npy"))
    result = _run(w, qtbot)  # the Target's problem does not block the Prediction 6D
    assert result.target is None
    title = w.inspector.target_plot.titleLabel.text
    assert "no Loss" not in title and "target cannot be computed" in title


def test_without_a_loss_the_target_pane_says_so(window, qtbot):
    _run(window, qtbot)
    assert "no Loss" in window.inspector.target_plot.titleLabel.text


def test_a_volume_with_no_target_shows_no_stale_titles_or_active_crosshair(window, qtbot):
    _run(window, qtbot)
    insp = window.inspector
    insp.views.setCurrentIndex(1)
    insp.volume_of.setCurrentText("target")
    titles = [plot.titleLabel.text for plot in insp.plane_plots]
    assert "none" in titles[0] and "no Loss" in titles[0]
    assert not any("plane" in t or "MIP" in t for t in titles[1:])
    assert not any(spin.isEnabled() for spin in insp.cross)
    assert not any(line.isVisible() for lines in insp.cross_lines for line in lines)
    insp.volume_of.setCurrentText("prediction")  # back to a volume: all active again
    assert all(spin.isEnabled() for spin in insp.cross)
    assert all(line.isVisible() for lines in insp.cross_lines for line in lines)
    assert insp.plane_plots[3].titleLabel.text.startswith("MIP along")


@pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")
def test_statistics_over_finite_values_say_so_beside_the_inf_count(make_window, qtbot):
    conv = {
        "filter_initializer": "constant",
        "constant_value": 30.0,
        "activation": "exponential",
        "padding": True,
    }
    w = make_window(small_doc(conv))
    y = _run(w, qtbot).prediction
    assert np.isinf(y).any()
    info = _text(w.inspector.info_text())
    finite = y[np.isfinite(y)]
    assert f"finite min / max {finite.min():.6g} / {finite.max():.6g}" in info
    assert "finite mean / std" in info
    assert f"NaN / Inf 0 / {int(np.isinf(y).sum())}" in info


def test_statistics_of_an_all_finite_prediction_are_plain(window, qtbot):
    _run(window, qtbot)
    info = _text(window.inspector.info_text())
    assert "min / max" in info and "finite" not in info
