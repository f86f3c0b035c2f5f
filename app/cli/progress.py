"""Progress of a long command on stderr, as the ``progress(fraction, message)`` callback that
``nodes.run_document`` and ``nodes.training.train_document`` call.

On a terminal a tqdm bar is redrawn in place (with the elapsed and remaining time). Anywhere else
(a pipe, a log file, CI) plain lines are printed instead, one each time the work passes another
tenth (`` 30% epoch 2/4, batch 1/8``), never a ``\\r`` redraw.
"""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm

BAR_FORMAT = "{percentage:3.0f}%|{bar}| {desc} [{elapsed}<{remaining}]"
STEPS = 10  # plain lines: one per tenth of the work


class Progress:
    """A ``progress(fraction, message)`` callback drawing on ``stream`` (default: stderr).

    ``leave``: keep the finished bar on the terminal (False erases it, e.g. when other lines are
    printed between bars). :meth:`write` prints a line without breaking the bar; :meth:`close`
    ends it."""

    def __init__(self, stream: TextIO | None = None, *, leave: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.leave = leave
        self._bar: tqdm | None = None
        self._tenths_printed = 0
        self._last = 0.0

    def __call__(self, fraction: float, message: str) -> None:
        if fraction < self._last:  # the next piece of work (reading, then computing)
            self.close()
        self._last = fraction
        if _is_terminal(self.stream):
            self._draw(fraction, message)
        else:
            self._print_line(fraction, message)

    def write(self, line: str) -> None:
        """Print ``line`` on stdout; on a terminal the bar is cleared first and redrawn after."""
        if self._bar is None:
            print(line, flush=True)
        else:
            tqdm.write(line, file=sys.stdout)

    def close(self) -> None:
        """End the bar (left on screen or erased, as ``leave`` says); a later call starts anew."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._tenths_printed = 0
        self._last = 0.0

    def _draw(self, fraction: float, message: str) -> None:
        if self._bar is None:
            self._bar = tqdm(
                total=1.0, file=self.stream, leave=self.leave, bar_format=BAR_FORMAT, desc=message
            )
        self._bar.set_description_str(message, refresh=False)
        self._bar.update(fraction - self._bar.n)  # redrawn at most every tqdm.mininterval

    def _print_line(self, fraction: float, message: str) -> None:
        tenths = int(fraction * STEPS + 1e-9)
        if tenths > self._tenths_printed:
            self._tenths_printed = tenths
            print(f"{fraction:4.0%} {message}", file=self.stream, flush=True)


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
