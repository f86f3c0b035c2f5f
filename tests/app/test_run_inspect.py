"""Running in a worker, stopping, errors on nodes, and the prediction inspector."""

from __future__ import annotations

import gc
import time

import numpy as np
import pytest
from PySide6.QtCore import QTimer

from conv3dt_studio import nodes
from conv3dt_studio.app.editor.run_job import prediction_to_run, weights_text

RUN_TIMEOUT_MS = 30_000


def test_run_shows_the_prediction_in_the_inspector(window, qtbot):
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        assert window.run()
    result = blocker.args[0]
    assert result.prediction.shape == (2, 2, 3, 10, 10, 5)
    text = window.inspector.info_text()
    for expected in ("layer name", "time_distributed", "graph index", "(2, 2, 3, 10, 10, 5)"):
        assert expected in text
    assert "float32" in text and "NaN / Inf" in text
    image = window.inspector.pred_image.image
    assert image is not None and image.size > 0 and np.isfinite(image).all()
    assert window.inspector.input_image.image.size > 0
    assert "Prediction 2×2×3×10×10×5" in window.log.text()
    assert window.action_run.isEnabled() and not window.action_stop.isEnabled()


def test_slice_controls_pick_the_slice(window, qtbot):
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        window.run()
    y = blocker.args[0].prediction
    insp = window.inspector
    insp.batch.setValue(1)
    insp.time.setValue(1)
    insp.filter.setValue(2)
    insp.axis.setCurrentIndex(0)
    insp.slice.setValue(4)
    np.testing.assert_array_equal(insp.pred_image.image, y[1, 1, 2, 4])
    insp.axis.setCurrentIndex(2)
    insp.slice.setValue(3)
    np.testing.assert_array_equal(insp.pred_image.image, y[1, 1, 2, :, :, 3])


def test_save_prediction_writes_npy(window, qtbot, tmp_path):
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        window.run()
    window.dialogs.save_paths.append(str(tmp_path / "pred"))
    window.inspector.save_button.click()
    np.testing.assert_array_equal(np.load(tmp_path / "pred.npy"), blocker.args[0].prediction)


def test_stop_cancels_a_long_run(make_window, qtbot):
    doc = nodes.default_document()  # 10 samples of the toolkit's size
    doc.set_param("prediction_6d", "batch_size", 1)  # Stop acts between batches
    w = make_window(doc)
    w.activity.progress.connect(lambda f, m: w.stop() if "batch" in m else None)
    with qtbot.waitSignal(w.run_stopped, timeout=RUN_TIMEOUT_MS):
        w.run()
    assert "Run stopped" in w.log.text()
    assert w.inspector.result is None
    assert w.action_run.isEnabled()


def test_canvas_stays_responsive_during_a_run(make_window, qtbot):
    """No event-loop stall over 50 ms while the toolkit example runs (after a warm-up run that
    compiles the kernels)."""
    w = make_window(nodes.default_document())
    with qtbot.waitSignal(w.run_finished, timeout=RUN_TIMEOUT_MS):
        w.run()
    qtbot.wait(300)  # let the inspector lay out and paint the first result
    gc.collect()  # garbage of earlier tests' windows is not the run's doing
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(2)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    with qtbot.waitSignal(w.run_finished, timeout=RUN_TIMEOUT_MS):
        w.run()
    timer.stop()
    gaps = np.diff(ticks)
    assert len(ticks) > 2
    assert gaps.max() < 0.050, f"event loop stalled {gaps.max() * 1000:.0f} ms"


def test_graph_with_problems_does_not_run(window, qtbot):
    window.canvas.disconnect("input", "y", "time_distributed", "x")
    with qtbot.waitSignal(window.run_failed, timeout=1000):
        assert not window.run()
    assert "Cannot run" in window.log.text()
    assert not window.is_running()


def _unexpected_exception(window, monkeypatch):
    from conv3dt_studio.app.editor import run_job

    def broken(*_args, **_kwargs):
        raise RuntimeError("the kernel caught fire")

    monkeypatch.setattr(run_job, "run_document", broken)
    return "RuntimeError: the kernel caught fire"


def _memory_refusal(window, monkeypatch):
    from conv3dt_studio.nodes import memory

    monkeypatch.setattr(memory, "available_memory", lambda: 1024)
    return "above the memory limit of 0.0 MiB"


def _cupy_unavailable(window, monkeypatch):
    from conv3dt_studio.compute import BackendError, get_backend

    try:
        get_backend("cupy")
    except BackendError:
        window.backend_selector.setCurrentText("cupy")
        return "Backend `cupy` is unavailable"
    pytest.skip("CuPy works here")


def test_a_run_that_would_not_fit_is_refused_on_its_prediction_node_before_running(
    window, qtbot, monkeypatch
):
    needle = _memory_refusal(window, monkeypatch)
    with qtbot.waitSignal(window.run_failed, timeout=RUN_TIMEOUT_MS):
        assert not window.run()  # the live validation found it: nothing starts
    assert needle in window.canvas.views["prediction_6d"].view.toolTip()
    assert any(needle in line for line in window.log.lines)
    assert window.action_run.isEnabled()


@pytest.mark.parametrize("break_run", [_unexpected_exception, _cupy_unavailable])
def test_a_failure_that_is_no_nodes_fault_goes_to_the_log_and_status_bar(
    window, qtbot, monkeypatch, break_run
):
    needle = break_run(window, monkeypatch)
    with qtbot.waitSignal(window.run_failed, timeout=RUN_TIMEOUT_MS):
        assert window.run()
    assert needle in window.log.lines[-1] and "Run failed: " in window.log.lines[-1]
    assert needle in window.statusBar().currentMessage()
    assert window.canvas.run_errors == {}
    assert "Problems:" not in window.canvas.views["prediction_6d"].view.toolTip()
    assert window.action_run.isEnabled()


def test_a_node_problem_found_by_the_run_goes_on_its_node(window, qtbot, monkeypatch):
    from conv3dt_studio.app.editor import run_job

    def refuse(*_args, **_kwargs):
        raise nodes.DocumentProblems([nodes.Problem("data", "path", "file `x.npy` is gone")])

    monkeypatch.setattr(run_job, "run_document", refuse)
    with qtbot.waitSignal(window.run_failed, timeout=RUN_TIMEOUT_MS):
        window.run()
    assert window.canvas.run_errors == {"data": "file `x.npy` is gone"}
    assert "file `x.npy` is gone" in window.canvas.views["data"].view.toolTip()
    assert "see the red nodes" in window.statusBar().currentMessage()


def _two_predictions(make_doc):
    """The small graph plus a second chain from its Input: Conv3DTranspose 2 (7 filters) ->
    TimeDistributed 2 -> Prediction 6D 2."""
    doc = make_doc()
    conv = doc.add_node("conv3d_transpose", {"n_filters": 7}, pos=(260, 400)).id
    td = doc.add_node("time_distributed", {}, pos=(560, 300)).id
    pred = doc.add_node("prediction_6d", {}, pos=(860, 300)).id
    doc.connect("input", "y", td, "x")
    doc.connect(conv, "layer", td, "layer")
    doc.connect(td, "y", pred, "x")
    assert (conv, td, pred) == ("conv3d_transpose_2", "time_distributed_2", "prediction_6d_2")
    return doc


@pytest.mark.parametrize(
    ("selected", "expected"),
    [
        ((), "prediction_6d"),  # nothing selected: the first
        (("prediction_6d_2",), "prediction_6d_2"),
        (("conv3d_transpose_2",), "prediction_6d_2"),  # its chain ends there
        (("time_distributed_2",), "prediction_6d_2"),
        (("data",), "prediction_6d"),  # feeds both: the document's order
        (("prediction_6d_2", "prediction_6d"), "prediction_6d"),
        (("conv3d_transpose", "prediction_6d_2"), "prediction_6d_2"),  # a selected one first
        (("gone",), "prediction_6d"),
    ],
)
def test_the_prediction_to_run_follows_the_selection(make_doc, selected, expected):
    assert prediction_to_run(_two_predictions(make_doc), selected) == expected


@pytest.mark.parametrize(
    ("selected", "expected"),
    [
        (("loss",), "prediction_6d_2"),  # the one feeding it, not the first
        (("target",), "prediction_6d_2"),  # the one feeding the Loss it feeds
        (("target", "conv3d_transpose"), "prediction_6d"),  # downstream before upstream
        (("target", "prediction_6d"), "prediction_6d"),  # a selected one first
    ],
)
def test_a_selected_loss_or_target_runs_the_prediction_feeding_the_loss(
    make_doc, selected, expected
):
    doc = _two_predictions(make_doc)
    doc.add_node("target", {"sample_shape": [2, 7, 10, 10, 5]}, node_id="target")
    doc.add_node("loss", {}, node_id="loss")
    doc.connect("prediction_6d_2", "y", "loss", "prediction")
    doc.connect("target", "data", "loss", "target")
    assert prediction_to_run(doc, selected) == expected


@pytest.mark.parametrize(
    ("selected", "expected", "title", "filters"),
    [
        (None, "prediction_6d", "Prediction 6D", 3),
        ("prediction_6d_2", "prediction_6d_2", "Prediction 6D 2", 7),
        ("conv3d_transpose_2", "prediction_6d_2", "Prediction 6D 2", 7),
    ],
)
def test_run_computes_the_selected_prediction_node(
    make_window, make_doc, qtbot, selected, expected, title, filters
):
    w = make_window(_two_predictions(make_doc))
    w.canvas.select(selected)
    with qtbot.waitSignal(w.run_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        assert w.run()
    result = blocker.args[0]
    assert result.prediction_node == expected and result.prediction.shape[2] == filters
    assert f"Run of {title} (`{expected}`) with seeded weights" in w.log.text()
    assert f"of {title} (`{expected}`) from `" in w.log.text()
    assert w.inspector.result is result and f"<td>{expected}</td>" in w.inspector.info_text()


def _unfinished_second_chain(make_doc):
    """Two chains; the second's TimeDistributed has no layer (QA's two_unf.json)."""
    doc = _two_predictions(make_doc)
    doc.disconnect("conv3d_transpose_2", "layer", "time_distributed_2", "layer")
    return doc


def test_an_unfinished_branch_does_not_block_running_another(make_window, make_doc, qtbot):
    w = make_window(_unfinished_second_chain(make_doc))
    with qtbot.waitSignal(w.run_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        assert w.run()
    assert blocker.args[0].prediction_node == "prediction_6d"
    assert not w.canvas.report.ok  # the other branch stays red
    assert "Problems:" in w.canvas.views["time_distributed_2"].view.toolTip()


def test_the_unfinished_branch_itself_does_not_run(make_window, make_doc, qtbot):
    w = make_window(_unfinished_second_chain(make_doc))
    w.canvas.select("prediction_6d_2")
    with qtbot.waitSignal(w.run_failed, timeout=1000) as blocker:
        assert not w.run()
    assert "time_distributed_2" in blocker.args[0] and not w.is_running()
    assert "Cannot run Prediction 6D 2 (`prediction_6d_2`): 1 problem(s)" in w.log.text()


def test_a_document_wide_problem_blocks_every_chain(make_window, make_doc, qtbot):
    doc = _two_predictions(make_doc)
    doc.extras["training"] = {"epochs": -1}
    w = make_window(doc)
    with qtbot.waitSignal(w.run_failed, timeout=1000) as blocker:
        assert not w.run()
    assert "epochs" in blocker.args[0] and not w.is_running()


CHAIN_1_WEIGHTS = {"conv3d_transpose/kernel": np.zeros(1), "conv3d_transpose/bias": np.zeros(1)}


@pytest.mark.parametrize(
    ("node_id", "weights", "embedded", "expected"),
    [
        ("prediction_6d", CHAIN_1_WEIGHTS, False, "trained weights"),
        (
            "prediction_6d_2",
            CHAIN_1_WEIGHTS,
            False,
            "seeded weights (the trained weights name none",
        ),
        ("prediction_6d_2", CHAIN_1_WEIGHTS, True, "seeded weights (the trained weights name none"),
        ("prediction_6d", None, False, "seeded weights"),
        ("prediction_6d", None, True, "embedded weights"),
    ],
)
def test_the_run_log_names_the_weights_the_chain_uses(
    make_doc, node_id, weights, embedded, expected
):
    doc = _two_predictions(make_doc)
    if embedded:
        doc.extras["weights"] = {"conv3d_transpose/kernel": {}}
    assert weights_text(doc, node_id, weights).startswith(expected)


def test_trained_weights_are_found_by_the_layers_name(make_doc):
    doc = _two_predictions(make_doc)
    doc.set_param("conv3d_transpose_2", "name", "decoder")
    assert (
        weights_text(doc, "prediction_6d_2", {"decoder/kernel": np.zeros(1)}) == "trained weights"
    )
    assert (
        weights_text(doc, "prediction_6d_2", {"conv3d_transpose_2/kernel": 0}) != "trained weights"
    )


def test_a_run_of_a_chain_the_trained_weights_do_not_cover_says_seeded(
    make_window, make_doc, qtbot
):
    from conv3dt_studio.nodes.weights import weights_dict

    w = make_window(_two_predictions(make_doc))
    w.canvas.select("prediction_6d_2")
    with qtbot.waitSignal(w.run_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        w.run()
    seeded = blocker.args[0].prediction
    trained = weights_dict(nodes.run_document(w.canvas.doc, backend="numpy").graph.layers)
    w.training.weights = {k: v + 1 for k, v in trained.items() if k.endswith(("kernel", "bias"))}
    with qtbot.waitSignal(w.run_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        w.run()
    np.testing.assert_array_equal(blocker.args[0].prediction, seeded)
    assert (
        "Run of Prediction 6D 2 (`prediction_6d_2`) with seeded weights (the trained weights name "
        "none of its layers) started" in w.log.text()
    )
