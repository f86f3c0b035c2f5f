"""What the command-line tests share: the error prefix, the one-line error check, and the
command line run in a real process on the installed package."""

from __future__ import annotations

import os
import subprocess
import sys

ERR = "conv3dt-studio: error: "


def one_error_line(capsys) -> str:
    """The one error line the command wrote to stderr, without its prefix."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(ERR) and "Traceback" not in err, err
    return err[len(ERR) :].rstrip("\n")


def installed_env() -> dict[str, str]:
    """The installed package, not the checkout's folders: no PYTHONPATH."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def run_module(*argv: str, cwd, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m conv3dt_studio ARGV`` in ``cwd``, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "conv3dt_studio", *argv],
        cwd=cwd,
        env=installed_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
