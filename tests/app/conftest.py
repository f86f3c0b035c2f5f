"""Fixtures for the editor tests: offscreen Qt, a temporary user data folder, dialogs that never
block, and small graphs that run in milliseconds."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any Qt import
os.environ.setdefault("QT_PREFERRED_BINDING", "PySide6")

import pytest  # noqa: E402
from small_graphs import small_doc  # noqa: E402


class FakeDialogs:
    """Answers every question from queues; records what the user would have seen."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []
        self.questions: list[str] = []
        self.question_answer = True
        self.question_answers: list[bool] = []  # answered first, in order; then question_answer
        self.save_changes_answer = "discard"
        self.save_changes_asked = 0
        self.save_changes_weights: list[bool] = []  # whether trained weights were unsaved
        self.open_paths: list[str] = []
        self.save_paths: list[str] = []

    def message(self, title: str, text: str) -> None:
        self.messages.append((title, text))

    def question(self, title: str, text: str) -> bool:
        self.questions.append(text)
        return self.question_answers.pop(0) if self.question_answers else self.question_answer

    def save_changes(self, name: str, weights: bool = False) -> str:
        self.save_changes_asked += 1
        self.save_changes_weights.append(weights)
        return self.save_changes_answer

    def open_path(self, title: str, file_filter: str) -> str | None:
        return self.open_paths.pop(0) if self.open_paths else None

    def save_path(self, title: str, file_filter: str, suggested: str = "") -> str | None:
        return self.save_paths.pop(0) if self.save_paths else None


def pytest_configure(config):
    # NodeGraphQt 0.6.44 uses distutils' LooseVersion and Qt 5's event.pos()
    config.addinivalue_line("filterwarnings", r"ignore::DeprecationWarning:NodeGraphQt\..*")


@pytest.fixture(autouse=True)
def empty_clipboard(qapp):
    """Qt's offscreen platform crashes at exit while the application owns clipboard data (a
    copy test): every test leaves the clipboard empty, as the editor does when it quits."""
    yield
    qapp.clipboard().clear()


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    """A fresh user data folder (autosaves, settings) per test."""
    path = tmp_path / "user-data"
    monkeypatch.setenv("CONV3DT_STUDIO_DATA_DIR", str(path))
    return path


@pytest.fixture(autouse=True)
def no_real_dialogs(monkeypatch):
    """A real modal dialog would block the offscreen test run: fail instead."""
    from conv3dt_studio.app.editor import dialogs

    def refuse(*_args, **_kwargs):
        raise AssertionError("a real dialog was opened in a test")

    for name in ("message", "question", "save_changes", "open_path", "save_path"):
        monkeypatch.setattr(dialogs.Dialogs, name, refuse)


@pytest.fixture
def fake_dialogs():
    return FakeDialogs()


@pytest.fixture
def make_window(qtbot, fake_dialogs):
    """``make_window(doc=None, **kwargs)``: a shown MainWindow with fake dialogs."""
    from conv3dt_studio.app import MainWindow

    windows = []

    def make(doc=None, path=None, dialogs=None, **kwargs):
        kwargs.setdefault("autosave_delay_ms", 50)
        kwargs.setdefault("offer_recovery", False)
        if path is not None:
            w = MainWindow(path, dialogs=dialogs or fake_dialogs, **kwargs)
        else:
            w = MainWindow(document=doc, dialogs=dialogs or fake_dialogs, **kwargs)
        w.show()
        windows.append(w)
        return w

    yield make
    dispose_windows(windows)


def dispose_windows(windows) -> None:
    """Stop runs, then delete the windows now (not at interpreter exit, which can crash), with
    the windows they opened for restored autosaves."""
    from PySide6.QtCore import QThreadPool

    from conv3dt_studio.app.editor.main_window import dispose

    every = [*windows, *(r for w in windows for r in w.recovered_windows)]
    for w in every:
        w.stop()  # a run or a training
    QThreadPool.globalInstance().waitForDone(20_000)
    for w in every:
        w.autosaver.close()
        w.files.forget_changes()
        w.close()
    for w in windows:
        dispose(w)


@pytest.fixture
def window(make_window):
    """A window on the small toolkit graph."""
    return make_window(small_doc())


@pytest.fixture
def make_doc():
    """``make_doc(batch=2, conv=None)`` -> a small toolkit graph."""
    return small_doc
