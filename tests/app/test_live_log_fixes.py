"""Live Preview reads a data file again when it changed on disk and says why it shows nothing;
the log panel updates its last line in place and keeps its document within the line cap."""

from __future__ import annotations

import os

import numpy as np
import pytest
from small_graphs import SMALL_SAMPLE, small_doc

from conv3dt_studio.app.editor import live_preview
from conv3dt_studio.app.editor.live_preview import SourceCache
from conv3dt_studio.app.editor.log_panel import LogPanel

WAIT_MS = 20_000


# ---------------------------------------------------------------------- the source cache
def _file_doc(path):
    doc = small_doc()
    doc.set_param("data", "source", "file")
    doc.set_param("data", "path", str(path))
    return doc


def _write(path, value: float, batch: int = 2, mtime: float | None = None) -> None:
    np.save(path, np.full((batch, *SMALL_SAMPLE), value, np.float32))
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def test_a_data_file_changed_on_disk_is_read_again(tmp_path):
    path = tmp_path / "x.npy"
    _write(path, 1.0, mtime=1_000_000)
    doc, cache = _file_doc(path), SourceCache()
    assert cache.first_step(doc, "data").mean() == 1.0
    _write(path, 10.0, mtime=1_000_100)  # same shape and size, new contents
    assert cache.first_step(doc, "data").mean() == 10.0


def test_a_data_file_of_another_size_is_read_again(tmp_path):
    path = tmp_path / "x.npy"
    _write(path, 1.0, mtime=1_000_000)
    doc, cache = _file_doc(path), SourceCache()
    cache.first_step(doc, "data")
    _write(path, 3.0, batch=3, mtime=1_000_000)  # the same mtime: the size tells
    assert cache.first_step(doc, "data").mean() == 3.0


def test_an_unchanged_data_file_is_read_once(tmp_path, monkeypatch):
    path = tmp_path / "x.npy"
    _write(path, 1.0)
    reads = []
    read = live_preview.first_step
    monkeypatch.setattr(live_preview, "first_step", lambda d, n: reads.append(n) or read(d, n))
    doc, cache = _file_doc(path), SourceCache()
    cache.first_step(doc, "data")
    cache.first_step(doc, "data")
    assert reads == ["data"]


def test_a_frame_changed_in_an_image_folder_is_read_again(tmp_path):
    import imageio.v3 as iio
    from media_files import write_image_folder

    folder = write_image_folder(tmp_path / "frames")
    doc = small_doc()
    for name, value in (("source", "file"), ("path", str(folder))):
        doc.set_param("data", name, value)
    cache = SourceCache()
    before = cache.first_step(doc, "data").copy()
    first = folder / "frame_000.png"  # rewritten in place: the folder's own mtime stays
    iio.imwrite(first, np.full((16, 32, 3), 255, np.uint8))
    os.utime(first, (2_000_000, 2_000_000))
    assert not np.array_equal(cache.first_step(doc, "data"), before)


# ---------------------------------------------------------------------- a failed preview says why
def test_a_failed_preview_says_why_in_the_log_and_status_bar(make_window, qtbot, tmp_path):
    path = tmp_path / "cut.npy"
    _write(path, 1.0)
    path.write_bytes(path.read_bytes()[:200])  # the header is intact: validation passes
    window = make_window(_file_doc(path))
    assert window.canvas.report.ok
    with qtbot.waitSignal(window.live.preview_failed, timeout=WAIT_MS) as failed:
        window.action_live_preview.setChecked(True)
    text = failed.args[1]
    assert "cut.npy" in text
    line = window.log.lines[-1]
    assert "[warning]" in line and "live preview" in line.lower() and text in line
    assert text in window.statusBar().currentMessage()


def test_repeated_preview_failures_share_one_log_line(make_window, qtbot, tmp_path):
    path = tmp_path / "cut.npy"
    _write(path, 1.0)
    path.write_bytes(path.read_bytes()[:200])
    window = make_window(_file_doc(path))
    with qtbot.waitSignal(window.live.preview_failed, timeout=WAIT_MS):
        window.action_live_preview.setChecked(True)
    count = len(window.log.lines)
    with qtbot.waitSignal(window.live.preview_failed, timeout=WAIT_MS):
        window.canvas.set_param("conv3d_transpose", "activation", "tanh")
    assert len(window.log.lines) == count


# ---------------------------------------------------------------------- the log panel
@pytest.fixture
def log(qtbot):
    panel = LogPanel()
    qtbot.addWidget(panel)
    return panel


def _blocks(panel: LogPanel) -> list[str]:
    doc = panel.view.document()
    texts = [doc.findBlockByNumber(i).text() for i in range(doc.blockCount())]
    return [] if texts == [""] else texts


def _never_rebuilt(panel: LogPanel, monkeypatch) -> None:
    def rebuilt(*_args):
        raise AssertionError("the whole log was rebuilt")

    monkeypatch.setattr(panel, "redraw", rebuilt)
    monkeypatch.setattr(panel.view, "setHtml", rebuilt)
    monkeypatch.setattr(panel.view, "clear", rebuilt)


def test_an_epoch_line_replaces_only_the_last_line(log, monkeypatch):
    for i in range(20):
        log.log(f"line {i}")
    _never_rebuilt(log, monkeypatch)
    for epoch in range(1, 31):
        log.log(f"epoch {epoch}: loss {1 / epoch:.3g}", group="epoch")
    blocks = _blocks(log)
    assert len(blocks) == 21 == len(log.entries)
    assert blocks[-1].endswith("epoch 30: loss 0.0333") and blocks[-2].endswith("line 19")


def test_a_repeated_line_updates_its_count_in_place(log, monkeypatch):
    log.log("first")
    _never_rebuilt(log, monkeypatch)
    for _ in range(3):
        log.log("again", "warning")
    blocks = _blocks(log)
    assert len(blocks) == 2 and blocks[-1].endswith("again (× 3)")


def test_the_log_view_keeps_within_the_line_cap(log, monkeypatch):
    monkeypatch.setattr(LogPanel, "MAX_LINES", 5)
    for i in range(12):
        log.log(f"line {i}")
    blocks = _blocks(log)
    assert len(blocks) == 5 and blocks[0].endswith("line 7") and blocks[-1].endswith("line 11")


def test_lines_hidden_by_the_filter_are_counted_off_the_cap_too(log, monkeypatch):
    monkeypatch.setattr(LogPanel, "MAX_LINES", 4)
    log.level_filter.setCurrentText("Errors")
    for i in range(6):
        log.log(f"error {i}", "error")
        log.log(f"info {i}")
    assert [b.split(" ", 1)[1] for b in _blocks(log)] == ["error 4", "error 5"]


def test_a_group_line_leaving_the_filter_leaves_the_view(log, monkeypatch):
    log.level_filter.setCurrentText("Warnings and errors")
    log.log("bad", "error")
    _never_rebuilt(log, monkeypatch)
    log.log("epoch 1: trouble", "warning", group="epoch")
    assert len(_blocks(log)) == 2
    log.log("epoch 2: fine", "info", group="epoch")
    assert [b.split(" ", 1)[1] for b in _blocks(log)] == ["bad"]
    log.log("epoch 3: trouble again", "warning", group="epoch")
    assert [b.split(" ", 1)[1] for b in _blocks(log)] == ["bad", "epoch 3: trouble again"]


def test_a_redraw_shows_what_the_updates_showed(log):
    for i in range(5):
        log.log(f"line {i}", "warning" if i % 2 else "info")
    log.log("line 4", "info")
    for epoch in range(3):
        log.log(f"epoch {epoch}", group="epoch")
    incremental = _blocks(log)
    log.redraw()
    assert _blocks(log) == incremental
    log.text_filter.setText("epoch")
    assert [b.split(" ", 1)[1] for b in _blocks(log)] == ["epoch 2"]
