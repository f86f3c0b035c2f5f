"""How the command line fails: exit statuses, the :class:`UsageError`, and one line per problem.

Every user error is one line on stderr, ``conv3dt-studio: error: MESSAGE`` (one line per problem
when a graph has several, each naming the file, node and parameter), and exit status 2; ``--debug``
adds the traceback. Ctrl+C exits 130 and a closed stdout 141, both silently. An unexpected
exception (a bug, or a file that defeats every check) is one line too, naming the file being
worked on and what failed, and exit status 2; ``--debug`` shows its traceback.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable

PROG = "conv3dt-studio"
EXIT_OK, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 0, 2, 130, 141


class UsageError(Exception):
    """A command-line mistake: a usage error from the parser, or one found after parsing (e.g. an
    output file that already exists)."""


def print_error(message: str) -> None:
    """One error line on stderr, in the command line's own form."""
    print(f"{PROG}: error: {message}", file=sys.stderr)


def with_source(exc: Exception, source: object) -> Exception:
    """``exc`` whose problems are reported as found in the file ``source``."""
    exc.source = str(source)  # type: ignore[attr-defined]
    return exc


def error_lines(exc: BaseException) -> list[str]:
    """One line per problem, each naming the file, node and parameter where known."""
    problems = getattr(exc, "problems", None)
    if problems:
        source = getattr(exc, "source", None)
        return [f"{source}: {p}" if source else str(p) for p in problems]
    if isinstance(exc, OSError) and exc.filename:
        return [f"`{exc.filename}`: {exc.strerror or exc}"]
    text = str(exc) or type(exc).__name__
    return [" ".join(text.split())]


def report(exc: BaseException, debug: bool) -> int:
    """Print ``exc`` as error lines (after its traceback with ``debug``); the exit status."""
    if debug:
        traceback.print_exc()
    for line in error_lines(exc):
        print_error(line)
    return EXIT_ERROR


def guarded(action: Callable[[], int], debug: bool, subject: object = None) -> int:
    """Run a command; user errors, Ctrl+C, a closed stdout and unexpected exceptions become exit
    statuses (``subject``: the file the command works on, named in an unexpected error)."""
    from conv3dt_studio.compute import Conv3DTStudioError

    try:
        return action()
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `conv3dt-studio validate g.json | head -1`
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except (Conv3DTStudioError, UsageError, OSError) as exc:
        return report(exc, debug)
    except Exception as exc:  # noqa: BLE001 - one line, not a crash
        where = f"`{subject}`: " if subject else ""
        text = " ".join((str(exc) or "").split())[:300]
        return report(
            UsageError(
                f"{where}unexpected {type(exc).__name__}{': ' + text if text else ''} "
                "(please report it; --debug shows the traceback)"
            ),
            debug,
        )


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (tests)
        pass
