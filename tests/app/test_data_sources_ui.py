"""The editor with TIFF, video and image-folder sources: the shape on the node from the header,
reading inside the run's job with progress, a bad file as the node's one-line problem, and the
inspector's target beside the prediction on one colour scale."""

from __future__ import annotations

import numpy as np
import pytest
from media_files import FRAMES, write_image_folder, write_stack, write_video

from conv3dt_studio import nodes
from conv3dt_studio.app.editor.jobs import JobControl
from conv3dt_studio.app.editor.run_job import prediction_job
from conv3dt_studio.nodes.examples import toolkit_example, upsample_2x

RUN_TIMEOUT_MS = 30_000


def _reading(doc: nodes.GraphDocument, path, axes: str = "") -> nodes.GraphDocument:
    for name, value in (("source", "file"), ("path", str(path)), ("axes", axes)):
        doc.set_param("data", name, value)
    return doc


@pytest.mark.parametrize("writer", [write_video, write_image_folder, write_stack])
def test_a_run_job_reads_the_file_with_progress(tmp_path, writer):
    source = writer(tmp_path / {write_video: "c.mp4", write_stack: "s.tif"}.get(writer, "f"))
    shape = nodes.validate(_reading(toolkit_example(), source)).shapes["data"]
    doc = _reading(toolkit_example(input_shape=shape[1:]), source)
    seen: list[str] = []
    control = JobControl(
        progress=lambda f, m: seen.append(m), report=lambda *a: None, should_stop=lambda: False
    )
    done = prediction_job(doc, "numpy")(control)
    assert done.result.input.shape == shape
    assert f"reading {source.name}" in seen


def test_the_canvas_shows_the_files_shape_and_its_problems(make_window, tmp_path):
    window = make_window(_reading(toolkit_example(), write_video(tmp_path / "c.mp4")))
    assert window.canvas.shape_text("data").startswith(f"1×{FRAMES}×3×1×16×32")
    window.canvas.doc.set_param("data", "axes", "TYX")
    problems = window.canvas.report.problems_of("data")
    assert [p.param for p in problems] == ["axes"] and "c.mp4` has 4 axes" in problems[0].message


def test_the_inspector_shows_input_prediction_and_target_on_one_scale(make_window, qtbot):
    doc = upsample_2x()
    doc.nodes["data"].params["batch_size"] = 4
    window = make_window(doc)
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        assert window.run()
    result = blocker.args[0]
    assert result.target is not None and result.target.shape == result.prediction.shape
    insp = window.inspector
    target = insp.target_image.image
    assert target is not None and target.shape == insp.pred_image.image.shape
    shown = np.concatenate(
        [im.image.ravel() for im in (insp.input_image, insp.pred_image, insp.target_image)]
    )
    assert insp.color_bar.levels() == pytest.approx((shown.min(), shown.max()))
    for image in (insp.input_image, insp.pred_image, insp.target_image):
        assert image.getLevels() == pytest.approx(insp.color_bar.levels())


def test_without_a_loss_the_target_pane_says_so(make_window, qtbot):
    window = make_window(toolkit_example(data={"batch_size": 1}, input_shape=(1, 1, 4, 4, 4)))
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        assert window.run()
    assert blocker.args[0].target is None
    assert window.inspector.target_image.image is None
    assert "none" in window.inspector.target_plot.titleLabel.text
