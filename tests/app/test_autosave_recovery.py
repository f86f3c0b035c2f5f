"""Autosave to the user data folder and the offer to restore after a crash."""

from __future__ import annotations

import json

from app import autosave


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
