"""The entry point: parse the command line, run the chosen command, return its exit status.

``bench`` is handed everything after it (it parses its own options); ``--debug`` may come before
or after any command. With no command the editor opens.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .bench import cmd_bench
from .errors import UsageError, guarded, report
from .interop import cmd_export, cmd_import
from .parser import build_parser, parse
from .qt_commands import cmd_open, cmd_snippet
from .run import cmd_info, cmd_run, cmd_validate
from .summary import cmd_summary
from .train import cmd_train

COMMANDS: dict[str | None, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "train": cmd_train,
    "validate": cmd_validate,
    "summary": cmd_summary,
    "info": cmd_info,
    "export": cmd_export,
    "import": cmd_import,
    "snippet": cmd_snippet,
    "open": lambda args: cmd_open(args.file),
    None: lambda args: cmd_open(None),
}

# the arguments of the Python API that each command's options stand for: an error about one of
# them (its ``param``) names the option, e.g. "pass --force" where the API says "pass force=True"
OPTION_NAMES: dict[str, dict[str, str]] = {
    "run": {"array_name": "--array", "axes": "--axes"},
    "train": {"array_name": "--array", "axes": "--axes"},
    "export": {"path": "-o", "force": "--force"},
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``conv3dt-studio``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    bench = split_bench(argv)
    if bench is not None:
        debug, rest = bench
        return guarded(lambda: cmd_bench(rest), debug)
    try:
        args = parse(build_parser(), argv)
    except UsageError as exc:
        return report(exc, "--debug" in argv)
    if isinstance(args, int):  # --help or --version, already printed
        return args
    subject = next(
        (getattr(args, k) for k in ("graph", "model", "file") if getattr(args, k, None)), None
    )
    return guarded(
        lambda: COMMANDS[args.command](args),
        getattr(args, "debug", False),
        subject,
        OPTION_NAMES.get(args.command),
    )


def split_bench(argv: Sequence[str]) -> tuple[bool, list[str]] | None:
    """``[--debug] bench ARGS...`` -> (debug, ARGS), else None: bench parses its own options;
    ``--debug`` may also come after ``bench``, as for every command."""
    debug = False
    for i, token in enumerate(argv):
        if token == "--debug":
            debug = True
        elif token == "bench":
            rest = list(argv[i + 1 :])
            return debug or "--debug" in rest, [t for t in rest if t != "--debug"]
        else:
            return None
    return None
