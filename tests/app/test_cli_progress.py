"""Progress on stderr: a tqdm bar on a terminal, plain lines (one per tenth, never `\\r`)
anywhere else; lines printed during the work do not break the bar."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest

from conv3dt_studio.app.cli.progress import Progress
from conv3dt_studio.nodes.examples import toolkit_example


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def feed(progress: Progress, steps: int) -> None:
    for i in range(1, steps + 1):
        progress(i / steps, f"batch {i}/{steps}")


@pytest.mark.parametrize(("steps", "lines"), [(1, 1), (3, 3), (10, 10), (250, 10)])
def test_off_a_terminal_one_plain_line_per_tenth(steps, lines):
    stream = io.StringIO()
    progress = Progress(stream)
    feed(progress, steps)
    progress.close()
    text = stream.getvalue()
    assert "\r" not in text and len(text.splitlines()) == lines
    assert text.splitlines()[-1] == f"100% batch {steps}/{steps}"


def test_closing_starts_the_tenths_anew():
    stream = io.StringIO()
    progress = Progress(stream)
    feed(progress, 2)
    progress.close()
    feed(progress, 2)
    assert stream.getvalue().splitlines() == [" 50% batch 1/2", "100% batch 2/2"] * 2


def test_on_a_terminal_a_bar_redrawn_in_place_and_left():
    stream = Terminal()
    progress = Progress(stream)
    feed(progress, 3)
    progress.close()
    text = stream.getvalue()
    last = text.split("\r")[-1]
    assert "\r" in text and text.endswith("\n")
    assert last.startswith("100%|") and "| batch 3/3 [" in last


def test_a_bar_that_is_not_left_is_erased(capsys):
    stream = Terminal()
    progress = Progress(stream, leave=False)
    feed(progress, 2)
    progress.write("epoch 1: loss: 0.5")
    progress.close()
    assert stream.getvalue().split("\r")[-1].strip() == ""
    assert capsys.readouterr().out == "epoch 1: loss: 0.5\n"


def test_write_without_a_bar_is_a_plain_line(capsys):
    Progress(io.StringIO()).write("epoch 1: loss: 0.5")
    assert capsys.readouterr().out == "epoch 1: loss: 0.5\n"


def test_a_multi_batch_run_on_a_terminal_draws_the_bar(tmp_path):
    """The real command, its stderr on a pseudo-terminal."""
    sample = (2, 2, 8, 8, 3)
    doc = toolkit_example(
        {}, data={"batch_size": 3, "sample_shape": list(sample)}, input_shape=sample
    )
    doc.set_param("prediction_6d", "batch_size", 1)
    graph = tmp_path / "batched.json"
    doc.save(graph)
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "conv3dt_studio", "run", str(graph)],
            stdout=subprocess.PIPE,
            stderr=child,
            timeout=120,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        )
        os.close(child)
        err = _read_all(main)
    finally:
        os.close(main)
    assert proc.returncode == 0
    assert "\r" in err and "100%|" in err and "batch 3/3" in err
    assert b"batch 1/3" not in proc.stdout


def _read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()
