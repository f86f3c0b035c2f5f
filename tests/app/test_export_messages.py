"""The inspector's picture exports and Save prediction: refused with a clear line before there is
anything to export, and every failure to write one line: the file, the reason, what would work."""

from __future__ import annotations

import errno

import pytest

from conv3dt_studio.app.editor.files_controller import write_failure, write_problem
from conv3dt_studio.nodes import FileError

RUN_TIMEOUT_MS = 60_000
PICTURES = ("action_export_view", "action_export_time_series", "action_export_video")
SUFFIXES = {"action_export_view": ".png", "action_export_time_series": ".gif"}
SUFFIXES["action_export_video"] = ".mp4"


def _run(window, qtbot):
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS):
        assert window.run()


def _one_line(text: str, path) -> None:
    """One line naming ``path`` once."""
    assert "\n" not in text
    assert text.count(str(path)) == 1


@pytest.mark.parametrize("name", PICTURES)
def test_a_picture_export_before_any_run_is_off_and_says_there_is_nothing_to_export(
    window, fake_dialogs, tmp_path, name
):
    action = getattr(window, name)
    assert not action.isEnabled()  # the window's wiring: off while no result is shown
    (tmp_path / "out").mkdir()
    fake_dialogs.save_paths = [str(tmp_path / "out" / "picture")]
    action.setEnabled(True)  # triggered all the same (a caller that enables it)
    action.trigger()
    assert list((tmp_path / "out").iterdir()) == []
    title, text = fake_dialogs.messages[-1]
    assert title.startswith("Cannot export") and "run the graph (F5)" in text


def test_the_inspector_enables_the_picture_exports_only_while_it_shows_a_result(
    window, qtbot, fake_dialogs
):
    actions = [getattr(window, name) for name in PICTURES]
    assert not window.inspector.has_result()
    assert not any(a.isEnabled() for a in actions)
    with qtbot.waitSignal(window.inspector.result_shown) as shown:
        _run(window, qtbot)
    assert shown.args == [True] and all(a.isEnabled() for a in actions)
    window.files.new_document()
    assert not any(a.isEnabled() for a in actions)


@pytest.mark.parametrize("name", PICTURES)
def test_a_picture_that_cannot_be_written_is_one_clear_line(
    window, qtbot, fake_dialogs, tmp_path, name
):
    _run(window, qtbot)
    (tmp_path / "ro").write_text("a file, not a folder")
    out = tmp_path / "ro" / f"picture{SUFFIXES[name]}"
    fake_dialogs.save_paths = [str(out)]
    getattr(window, name).trigger()
    assert fake_dialogs.messages, "a failure must be said"
    title, text = fake_dialogs.messages[-1]
    assert title.startswith("Cannot export")
    _one_line(text, out)
    assert "is a file, not a folder" in text and "choose" in text
    assert "FFMPEG" not in text and "Errno" not in text


def test_saving_a_prediction_under_a_file_says_it_is_a_file(window, qtbot, fake_dialogs, tmp_path):
    _run(window, qtbot)
    (tmp_path / "ro").write_text("a file, not a folder")
    out = tmp_path / "ro" / "p.npy"
    fake_dialogs.save_paths = [str(out)]
    window.inspector.save_button.click()
    text = fake_dialogs.messages[-1][1]
    _one_line(text, out)
    assert "does not exist" not in text
    assert f"`{tmp_path / 'ro'}` is a file, not a folder" in text


def test_a_missing_folder_is_named_with_what_would_work(tmp_path):
    out = tmp_path / "no" / "such" / "p.npy"
    text = write_problem(str(out))
    _one_line(text, out)
    assert f"folder `{out.parent}` does not exist" in text and "choose" in text


def test_a_folder_chosen_as_the_file_is_named(tmp_path):
    text = write_problem(str(tmp_path))
    assert "is a folder" in text and "choose a file name" in text


def test_a_writable_destination_has_no_problem(tmp_path):
    assert write_problem(str(tmp_path / "p.npy")) is None


@pytest.mark.parametrize(
    "make_error, reason",
    [
        (lambda out: OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
        (lambda out: BrokenPipeError(errno.EPIPE, "Broken pipe"), "Broken pipe"),
        (
            lambda out: OSError(f"[Errno 32] Broken pipe\n\nFFMPEG COMMAND:\nffmpeg -y {out}\n"),
            "Broken pipe",
        ),
        (lambda out: FileError(f"Cannot save `{out}`: Permission denied"), "Permission denied"),
    ],
    ids=["no space", "broken pipe", "ffmpeg dump", "file error"],
)
def test_a_failure_while_writing_is_one_line_with_what_would_work(tmp_path, make_error, reason):
    out = tmp_path / "p.mp4"  # in a folder that can be written: the error says why it failed
    text = write_failure(str(out), make_error(out))
    _one_line(text, out)
    assert reason in text and "choose" in text and "FFMPEG" not in text and "Errno" not in text
