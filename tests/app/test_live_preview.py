"""Live preview: with Live on, each edit re-runs the chosen Prediction 6D on the first sample's
first time step in the background and shows a thumbnail under the node; the newest edit wins;
nothing happens with Live off; Run stays free."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QSpinBox
from small_graphs import small_doc

from conv3dt_studio.app.editor.jobs import JobControl
from conv3dt_studio.app.editor.live_preview import preview_job, to_qimage
from conv3dt_studio.app.editor.prediction_inspector import thumbnail
from conv3dt_studio.nodes import run_document
from conv3dt_studio.nodes.graph_document import default_document

PRED = "prediction_6d"
WAIT_MS = 20_000


def _control(stop: bool = False) -> JobControl:
    return JobControl(lambda *_a: None, lambda *_a: None, lambda: stop)


def _expected(doc) -> np.ndarray:
    """The thumbnail of a full run's first sample and first time step."""
    y = run_document(doc, backend="numpy", prediction_node=PRED).prediction
    return thumbnail(y[:1, :1], True)


def _settle(window, qtbot) -> None:
    """Every preview job ended and its signal delivered."""
    window.live.pool.waitForDone(WAIT_MS)
    qtbot.waitUntil(lambda: not window.live.jobs, timeout=WAIT_MS)


def _shown(window) -> QImage | None:
    return window.canvas.thumbnail(PRED)


def _ctrl_l(window, qtbot) -> None:
    """A real Ctrl+L on the focused canvas of the active window."""
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=WAIT_MS)
    window.canvas.viewer.setFocus()
    QTest.keyClick(window.canvas.viewer, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)


def _live_on(window, qtbot) -> None:
    _ctrl_l(window, qtbot)
    assert window.action_live_preview.isChecked()
    _settle(window, qtbot)


# ---------------------------------------------------------------------- the pure job
@pytest.mark.parametrize("conv", [None, {"stride": [2, 1, 1], "activation": "tanh"}])
def test_a_preview_is_the_first_step_of_a_full_run(conv):
    doc = small_doc(conv)
    preview = preview_job(doc, PRED, 7)(_control())
    assert preview.generation == 7 and preview.node == PRED and not preview.problem
    np.testing.assert_array_equal(preview.image, _expected(doc))


def test_a_superseded_preview_computes_nothing():
    preview = preview_job(small_doc(), PRED, 1)(_control(stop=True))
    assert preview.image is None and preview.problem == "superseded"


def test_a_chain_with_problems_gives_no_picture_and_says_why():
    doc = small_doc()
    doc.set_param("input", "shape", [2, 2, 9, 8, 3])  # not the data's shape
    preview = preview_job(doc, PRED, 1)(_control())
    assert preview.image is None and "shape" in preview.problem


# ---------------------------------------------------------------------- in the window
def test_ctrl_l_toggles_live_preview_in_the_run_menu(window, qtbot):
    action = window.action_live_preview
    assert action.isCheckable() and not action.isChecked()
    menus = [a.menu() for a in window.menuBar().actions() if a.text() == "&Run"]
    assert action in menus[0].actions()
    _live_on(window, qtbot)
    assert window.live.enabled and _shown(window) is not None  # previewed at once
    _ctrl_l(window, qtbot)
    assert not action.isChecked() and not window.live.enabled
    assert _shown(window) is None  # Live off takes the thumbnail away


def test_an_edit_puts_its_preview_under_the_prediction_node(window, qtbot):
    _live_on(window, qtbot)
    with qtbot.waitSignal(window.live.preview_shown, timeout=WAIT_MS) as shown:
        window.canvas.set_param("conv3d_transpose", "activation", "tanh")
        assert not window.activity.busy and window.action_run.isEnabled()  # not a run
    assert shown.args == [PRED]
    expected = to_qimage(_expected(window.canvas.doc))
    image = _shown(window)
    assert image is not None and image.width() > expected.width()  # scaled up to be seen
    scaled = expected.scaled(image.size())  # the canvas scales with the same nearest rule
    assert image.convertToFormat(scaled.format()) == scaled


def test_two_quick_typed_edits_show_only_the_second(window, qtbot):
    _live_on(window, qtbot)
    window.canvas.select("conv3d_transpose")
    spin = window.properties.fields["n_filters"].editor.findChild(QSpinBox)
    shown = []
    window.live.preview_shown.connect(lambda node: shown.append(window.live.generation))
    spin.setFocus()
    for text in ("5", "12"):  # two edits, typed one after the other
        spin.selectAll()
        QTest.keyClicks(spin, text)
        QTest.keyClick(spin, Qt.Key.Key_Return)
    assert window.canvas.doc.params("conv3d_transpose")["n_filters"] == 12
    assert window.live.generation == 3  # Live on, then one preview per edit
    _settle(window, qtbot)
    assert len(shown) == 1  # the first edit's preview was cancelled or dropped
    expected = to_qimage(_expected(window.canvas.doc))
    image = _shown(window)
    assert image is not None
    assert image.convertToFormat(expected.format()) == expected.scaled(image.size())


def test_with_live_off_an_edit_starts_no_preview(window, qtbot):
    assert not window.action_live_preview.isChecked()
    window.canvas.set_param("conv3d_transpose", "n_filters", 5)
    assert not window.live.jobs and window.live.generation == 0
    _settle(window, qtbot)
    assert _shown(window) is None


def test_run_and_stop_stay_free_while_previews_run(window, qtbot):
    _live_on(window, qtbot)
    window.canvas.set_param("conv3d_transpose", "n_filters", 4)
    with qtbot.waitSignal(window.run_finished, timeout=WAIT_MS):
        assert window.run()  # the preview does not make the editor busy
    _settle(window, qtbot)
    assert _shown(window) is not None


def test_the_edit_never_waits_for_the_preview(make_window, qtbot):
    """On the toolkit example the edit returns before its preview is computed (the preview
    runs in the background); its thumbnail arrives afterwards. (How fast it arrives is a
    benchmark's business, not a test's.)"""
    window = make_window(default_document())
    _live_on(window, qtbot)  # the first preview generates the data (cached after)
    shown = []
    window.live.preview_shown.connect(lambda *args: shown.append(args))
    with qtbot.waitSignal(window.live.preview_shown, timeout=WAIT_MS):
        window.canvas.set_param("conv3d_transpose", "activation", "tanh")
        assert shown == []  # the edit is done; its preview is not yet
    assert len(shown) == 1


def test_new_weights_refresh_the_live_preview(make_window, qtbot):
    """A training's weights (as a reset's or a load's) change what the graph computes: Live
    previews it again with them."""
    from small_graphs import teacher_doc

    window = make_window(teacher_doc(2))
    _live_on(window, qtbot)
    before = window.live.generation
    with qtbot.waitSignal(window.training.train_finished, timeout=60_000):
        assert window.training.train()
    assert window.live.generation > before
    _settle(window, qtbot)
