"""The one background-job abstraction: outcomes as signals, cancelling, and the run and training
job functions called directly (no thread) with a stand-in control."""

from __future__ import annotations

import threading

import pytest

from conv3dt_studio.app.editor.jobs import Cancelled, Job, JobControl
from conv3dt_studio.app.editor.run_job import prediction_job
from conv3dt_studio.app.editor.train_job import stored_gradients, training_job
from conv3dt_studio.compute import Conv3DTranspose
from conv3dt_studio.nodes.examples import teacher_student

TIMEOUT_MS = 10_000


def _control(stop: bool = False, events: list | None = None) -> JobControl:
    events = [] if events is None else events
    return JobControl(
        progress=lambda f, m: events.append(("progress", f, m)),
        report=lambda kind, payload: events.append((kind, payload)),
        should_stop=lambda: stop,
    )


def test_a_job_reports_progress_and_events_then_its_result(qtbot):
    def work(control: JobControl) -> int:
        control.progress(0.5, "half way")
        control.report("step", (1, {"loss": 0.25}))
        return 42

    job = Job(work)
    seen = []
    job.progress.connect(lambda f, m: seen.append((f, m)))
    job.report.connect(lambda kind, payload: seen.append((kind, payload)))
    with qtbot.waitSignal(job.finished, timeout=TIMEOUT_MS) as blocker:
        job.start()
    assert blocker.args == [42]
    assert seen == [(0.5, "half way"), ("step", (1, {"loss": 0.25}))]


def test_an_exception_in_the_job_arrives_as_failed(qtbot):
    def work(_control: JobControl) -> None:
        raise ValueError("no such file")

    job = Job(work)
    with qtbot.waitSignal(job.failed, timeout=TIMEOUT_MS) as blocker:
        job.start()
    assert isinstance(blocker.args[0], ValueError) and str(blocker.args[0]) == "no such file"


def test_cancel_is_seen_by_should_stop_and_ends_as_cancelled(qtbot):
    started = threading.Event()

    def work(control: JobControl) -> None:
        started.set()
        while not control.should_stop():
            threading.Event().wait(0.001)
        raise Cancelled("stopped after 3 of 10 batches")

    job = Job(work)
    with qtbot.waitSignal(job.cancelled, timeout=TIMEOUT_MS) as blocker:
        job.start()
        assert started.wait(TIMEOUT_MS / 1000)
        job.cancel()
    assert job.cancelling and blocker.args == ["stopped after 3 of 10 batches"]


def test_a_stopped_run_is_a_cancellation(make_doc):
    predict = prediction_job(make_doc(), "numpy")
    with pytest.raises(Cancelled, match="cancelled"):
        predict(_control(stop=True))


def test_the_run_job_works_on_its_own_copy_of_the_document(make_doc):
    doc = make_doc()
    predict = prediction_job(doc, "numpy")
    doc.set_param("conv3d_transpose", "n_filters", 5)  # an edit after Run was pressed
    done = predict(_control())
    assert done.result.prediction.shape[2] == 3
    assert done.summary is not None


def test_the_training_job_reports_epochs_and_reads_the_stored_gradients():
    doc = teacher_student()
    doc.extras["training"]["epochs"] = 2
    events: list = []
    done = training_job(doc, "numpy")(_control(events=events))
    epochs = [event[1][0] for event in events if event[0] == "epoch_end"]
    assert epochs == [0, 1] and len(done.result.history["loss"]) == 2
    (grads,) = done.gradients.values()  # the example's one layer has store on
    assert set(grads) == {"kernel", "bias", "input"}


def test_a_layer_without_a_backward_step_has_no_gradients_yet():
    assert stored_gradients([Conv3DTranspose(n_filters=1, size=1, store=True)]) == {}
