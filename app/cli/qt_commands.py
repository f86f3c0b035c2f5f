"""The commands that need Qt: ``open`` (also the default with no command) and ``snippet``.

Both check what can be checked without Qt first (the display, the system libraries of Qt's X11
plugin, ``CONV3DT_STUDIO_QUIT_AFTER``, the graph and the output file), then hand over to the
editor's own entry points (``main_window.launch``, ``snippet_export.main``), which are loaded by
name only now (:func:`.lazy_import.optional_module`): the command line itself imports no Qt.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from .errors import EXIT_ERROR, EXIT_OK, UsageError
from .lazy_import import optional_module
from .output_files import checked_output

QUIT_AFTER_ENV = "CONV3DT_STUDIO_QUIT_AFTER"  # read by app.editor.main_window.launch


def cmd_snippet(args: argparse.Namespace) -> int:
    """``snippet``: render the graph as a PNG with the graph embedded."""
    from conv3dt_studio import nodes

    # .png added as the editor's Export Snippet PNG does; another suffix would hide the PNG from
    # `open` and the file dialogs
    args.output = str(checked_output(args.output, args.force, "-o", suffix=".png"))
    nodes.load(args.graph)  # file and format errors reported here, in the CLI's own form
    module = optional_module("conv3dt_studio.app.editor.snippet_export", "the `snippet` command")
    return exit_code(module.main, args)


def cmd_open(path: str | None) -> int:
    """``open [FILE]``: start the editor, after the checks Qt would answer with an abort."""
    _check_display()
    from .qt_platform import platform_problem

    _check_quit_after(os.environ.get(QUIT_AFTER_ENV, ""))
    problem = platform_problem()
    if problem:  # Qt would abort with a message naming the wrong library
        raise UsageError(problem)
    module = optional_module("conv3dt_studio.app.editor.main_window", "the editor")
    return exit_code(module.launch, path)


def _check_display() -> None:
    if sys.platform.startswith("linux") and not any(
        os.environ.get(k) for k in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    ):  # Qt would abort with several lines of its own
        raise UsageError(
            "the editor needs a display and none was found (DISPLAY and WAYLAND_DISPLAY are "
            "unset); the headless commands run, train and validate work without one"
        )


def _check_quit_after(value: str) -> None:
    """``CONV3DT_STUDIO_QUIT_AFTER`` (seconds until the editor quits by itself, for smoke tests)."""
    try:
        ok = not value or float(value) >= 0
    except ValueError:
        ok = False
    if not ok:
        raise UsageError(
            f"Invalid value for `{QUIT_AFTER_ENV}`: expected a number of seconds >= 0. "
            f"Received: {value!r}"
        )


def exit_code(function: Callable[[object], object], argument: object) -> int:
    """Call another module's entry point; its return value or SystemExit becomes our status."""
    try:
        code = function(argument)
    except SystemExit as exc:  # e.g. its own argparse's --help or usage error
        code = exc.code
    if code is None:
        return EXIT_OK
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # sys.exit("message") prints its message
    return EXIT_ERROR
