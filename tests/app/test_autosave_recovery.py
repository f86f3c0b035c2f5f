"""Autosave to the user data folder and the offer to restore after a crash."""

from __future__ import annotations

import json
import os

import pytest

from conv3dt_studio.app.editor import autosave


def _autosaves(data_dir):
    return sorted(data_dir.glob("autosave-*.json"))


def test_autosave_is_written_a_moment_after_a_change(window, qtbot, data_dir):
    assert _autosaves(data_dir) == []
    window.canvas.set_param("conv3d_transpose", "n_filters", 8)
    qtbot.waitUntil(lambda: len(_autosaves(data_dir)) == 1, timeout=3000)
    saved = json.loads(_autosaves(data_dir)[0].read_text())
    assert saved["document"] == window.canvas.doc.to_json()


def test_saving_removes_the_autosave(window, qtbot, data_dir, tmp_path):
    window.canvas.move_node("data", (5.0, 5.0))
    qtbot.waitUntil(lambda: len(_autosaves(data_dir)) == 1, timeout=3000)
    window.dialogs.save_paths.append(str(tmp_path / "s.json"))
    window.save()
    assert _autosaves(data_dir) == []


def test_after_a_crash_the_next_start_offers_to_restore(window, make_window, qtbot, data_dir):
    window.canvas.set_param("conv3d_transpose", "n_filters", 11)
    window.canvas.move_node("data", (-5.0, 7.0))
    qtbot.waitUntil(lambda: len(_autosaves(data_dir)) == 1, timeout=3000)
    expected = window.canvas.doc.to_json()
    window.autosaver.abandon()  # as if the process had died
    assert len(autosave.orphans()) == 1
    restored = make_window(offer_recovery=True)
    assert restored.dialogs.questions and "did not close normally" in restored.dialogs.questions[0]
    assert restored.canvas.doc.to_json() == expected
    assert restored.isWindowModified()
    assert autosave.orphans() == []


def test_declining_the_restore_forgets_it(window, make_window, qtbot, data_dir, fake_dialogs):
    window.canvas.move_node("data", (3.0, 3.0))
    qtbot.waitUntil(lambda: len(_autosaves(data_dir)) == 1, timeout=3000)
    window.autosaver.abandon()
    fake_dialogs.question_answer = False
    fresh = make_window(offer_recovery=True)
    assert fresh.canvas.doc.nodes["data"].pos != (3.0, 3.0)
    assert autosave.orphans() == []


def test_a_live_window_autosave_is_not_an_orphan(window, qtbot, data_dir):
    window.canvas.move_node("data", (3.0, 3.0))
    qtbot.waitUntil(lambda: len(_autosaves(data_dir)) == 1, timeout=3000)
    assert autosave.orphans() == []


def test_data_dir_follows_the_environment(data_dir):
    assert autosave.data_dir() == data_dir


def test_an_unusable_data_dir_falls_back_to_the_temp_folder(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("CONV3DT_STUDIO_DATA_DIR", str(blocker / "sub"))
    assert autosave.data_dir().name == "conv3dt-studio"
    assert autosave.data_dir().is_dir()


def _autosave_file(data_dir, content: bytes):
    data_dir.mkdir(parents=True, exist_ok=True)
    file = data_dir / "autosave-damaged.json"
    file.write_bytes(content)
    return file


def _autosave_json(**fields) -> bytes:
    data = {"format": autosave.FORMAT, "pid": os.getpid(), "token": "gone", "time": 0.0}
    return json.dumps({**data, "path": None, "document": {}, **fields}).encode()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{not json", "not valid JSON: Expecting property name"),
        (b"\xff\xfe\x00garbage", "not UTF-8 text"),
        (b"[1, 2]", "not an autosave: a JSON list, not an object"),
        (b'{"format": "other"}', 'not an autosave (expected "format": "conv3dt-studio/autosave")'),
        (_autosave_json(pid="x"), "field `pid` is missing or damaged. Received: pid='x'"),
        (_autosave_json(document=None), "field `document` is missing or damaged"),
        (_autosave_json(time=float("nan")), "`time` must be a finite timestamp"),
        (_autosave_json(time=1e300), "Received: time=1e+300"),
        (_autosave_json(time=10**400), "field `time` must be a finite timestamp"),
        (_autosave_json(pid=2**70), f"Received: pid={2**70}"),
        (_autosave_json(pid=0), "field `pid` must be a process id from 1 to"),
        (_autosave_json(pid=-5), "Received: pid=-5"),
        (_autosave_json(pid=True), "Received: pid=True"),
        (_autosave_json(path="/w/a\x00b.json"), "field `path` must be a file path the system"),
        (_autosave_json(path="/w/\ud800.json"), "Received: path='/w/\\ud800.json'"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (_autosave_json(started="yesterday"), "field `started` is damaged"),
        (_autosave_json(host=5), "field `host` is damaged"),
    ],
)
def test_an_unreadable_autosave_is_listed_with_its_reason(data_dir, content, reason):
    file = _autosave_file(data_dir, content)
    found, unreadable = autosave.scan()
    assert found == [] and [u.file for u in unreadable] == [file]
    assert reason in unreadable[0].reason


def test_the_window_reports_an_unreadable_autosave_and_keeps_it(make_window, data_dir):
    file = _autosave_file(data_dir, b"{not json")
    w = make_window(offer_recovery=True)
    (line,) = [line for line in w.log.lines if "cannot be read" in line]
    assert f"Autosave `{file}` cannot be read (not valid JSON: " in line
    assert line.endswith("; the file is kept")
    assert "1 autosave file(s) cannot be read" in w.statusBar().currentMessage()
    assert w.dialogs.questions == [] and w.dialogs.messages == []  # nothing to restore, no modal
    assert file.read_bytes() == b"{not json"


@pytest.mark.parametrize(
    ("field", "value", "received"),
    [
        ("time", float("nan"), "time=nan"),
        ("time", 1e300, "time=1e+300"),
        ("pid", 2**70, f"pid={2**70}"),
        ("pid", 0, "pid=0"),
        ("path", "/w/a\x00b.json", "path='/w/a\\x00b.json'"),
    ],
)
def test_an_autosave_with_an_impossible_value_is_reported_and_the_editor_starts(
    make_window, data_dir, field, value, received
):
    file = _autosave_file(data_dir, _autosave_json(token="odd", **{field: value}))
    content = file.read_bytes()
    w = make_window(offer_recovery=True)  # raised in __init__ before the fix
    (line,) = [line for line in w.log.lines if "cannot be read" in line]
    assert f"Autosave `{file}` cannot be read (field `{field}` must be " in line
    assert f"Received: {received})" in line
    assert w.dialogs.questions == [] and file.read_bytes() == content


@pytest.mark.parametrize("pid", [0, -1, 2**70])
def test_a_pid_no_process_can_have_is_not_alive(pid):
    assert autosave._pid_alive(pid) is False


def test_an_autosave_whose_graph_cannot_be_restored_is_kept(make_window, data_dir):
    file = _autosave_file(data_dir, _autosave_json(document={"format": "other"}))
    w = make_window(offer_recovery=True)
    assert w.dialogs.questions  # offered, accepted, then refused by the graph loader
    ((title, text),) = w.dialogs.messages
    assert title == "Cannot restore" and f"`{file}`" in text and "the file is kept" in text
    assert text in w.log.text()
    assert file.exists()


def _crashed(data_dir, make_doc, token: str, saved_at: float, x: float):
    """An autosave left by a crashed session: the small graph with Data at (x, 0)."""
    doc = make_doc()
    doc.nodes["data"].pos = (x, 0.0)
    content = _autosave_json(token=token, time=saved_at, document=doc.to_json())
    data_dir.mkdir(parents=True, exist_ok=True)
    file = data_dir / f"autosave-{token}.json"
    file.write_bytes(content)
    return file


def _data_x(w) -> float:
    return w.canvas.doc.nodes["data"].pos[0]


def test_every_crashed_session_is_offered_newest_first(make_window, make_doc, data_dir):
    for token, saved_at, x in (("a", 100.0, 1.0), ("c", 300.0, 3.0), ("b", 200.0, 2.0)):
        _crashed(data_dir, make_doc, token, saved_at, x)
    w = make_window(offer_recovery=True)
    assert [q.split("(autosave ")[-1][:6] for q in w.dialogs.questions] == [
        "1 of 3",
        "2 of 3",
        "3 of 3",
    ]
    restored = [w, *w.recovered_windows]
    assert [_data_x(r) for r in restored] == [3.0, 2.0, 1.0]  # this window holds the newest
    assert all(r.isWindowModified() and r.isVisible() for r in restored)
    assert autosave.orphans() == []  # each is now its window's own autosave


@pytest.mark.parametrize(
    ("answers", "restored_x", "deleted"),
    [  # answers to the newest first: (new at x=2, old at x=1)
        ((False, True), [1.0], "new"),
        ((True, False), [2.0], "old"),
    ],
)
def test_declining_an_autosave_deletes_only_that_one(
    make_window, make_doc, data_dir, fake_dialogs, answers, restored_x, deleted
):
    files = {
        "old": _crashed(data_dir, make_doc, "old", 100.0, 1.0),
        "new": _crashed(data_dir, make_doc, "new", 200.0, 2.0),
    }
    w = make_window()
    fake_dialogs.question_answers = list(answers)
    restored = w.offer_recovery()
    assert len(fake_dialogs.questions) == 2  # the older one is asked about too
    assert [_data_x(r) for r in restored] == restored_x
    assert not files[deleted].exists()
    assert any("Deleted the autosave of" in line for line in w.log.lines)


def test_a_failed_restore_among_several_keeps_its_file_and_goes_on(make_window, make_doc, data_dir):
    broken = _crashed(data_dir, make_doc, "broken", 200.0, 2.0)
    broken.write_bytes(_autosave_json(token="broken", time=200.0, document={"format": "other"}))
    _crashed(data_dir, make_doc, "good", 100.0, 1.0)
    w = make_window()
    restored = w.offer_recovery()
    ((title, _text),) = w.dialogs.messages
    assert title == "Cannot restore" and broken.exists()
    assert restored == [w] and _data_x(w) == 1.0  # the older one, in this window


@pytest.mark.parametrize("count", [1, 2])
def test_a_window_opened_on_a_file_keeps_it_and_restores_into_new_windows(
    make_window, make_doc, data_dir, tmp_path, count
):
    mine, doc = tmp_path / "mine.json", make_doc()
    doc.nodes["data"].pos = (-9.0, 0.0)
    doc.save(mine)
    for n in range(count):
        _crashed(data_dir, make_doc, f"crash{n}", 100.0 + n, 1.0 + n)
    w = make_window(path=str(mine), offer_recovery=True)
    assert w.path == str(mine) and _data_x(w) == -9.0 and not w.isWindowModified()
    assert [_data_x(r) for r in w.recovered_windows] == [float(count - n) for n in range(count)]
    assert all(r.isWindowModified() for r in w.recovered_windows)


def test_a_window_with_changes_of_its_own_restores_into_a_new_window(window, make_doc, data_dir):
    window.canvas.move_node("data", (-9.0, 0.0))
    _crashed(data_dir, make_doc, "crash", 100.0, 1.0)
    restored = window.offer_recovery()
    assert _data_x(window) == -9.0 and restored == window.recovered_windows
    assert [_data_x(r) for r in restored] == [1.0]


def test_an_autosave_whose_pid_now_belongs_to_another_process_is_offered(data_dir):
    """The pid lives, but it is not the process that wrote the file (its start time differs):
    the writer crashed and the pid was reused, so the work is offered."""
    import subprocess

    data_dir.mkdir(parents=True, exist_ok=True)
    other = subprocess.Popen(["sleep", "60"])
    try:
        started = autosave.process_start(other.pid)
        assert started is not None  # Linux: /proc/<pid>/stat
        for token, when in (("reused", started - 1), ("same", started)):
            content = _autosave_json(token=token, pid=other.pid, started=when)
            (data_dir / f"autosave-{token}.json").write_bytes(content)
        found, unreadable = autosave.scan()
    finally:
        other.kill()
        other.wait()
    assert unreadable == []
    assert [r.file.name for r in found] == ["autosave-reused.json"]


def test_another_hosts_autosave_is_never_taken(data_dir):
    _autosave_file(data_dir, _autosave_json(token="far", pid=1, host="another-machine"))
    assert autosave.scan() == ([], [])


def test_autosaves_record_their_process_and_host(window, qtbot, data_dir):
    import socket

    window.canvas.add_node("data", (0, 0))
    assert window.autosaver.save_now()
    data = json.loads(window.autosaver.file.read_text())
    assert data["started"] == autosave.process_start(os.getpid())
    assert data["host"] == socket.gethostname()
