"""How the command line fails: exit statuses, the :class:`UsageError`, and one line per problem.

Every user error is one line on stderr, ``conv3dt-studio: error: MESSAGE`` (one line per problem
when a graph has several, each naming the file, node and parameter), and exit status 2; ``--debug``
adds the traceback. A Python warning that a command raises (NumPy's overflow in a prediction that
holds Inf, a library's notice) is one line too, ``conv3dt-studio: warning: MESSAGE``, once per
message, instead of Python's two lines with a source path. Ctrl+C exits 130 and a closed stdout
141, both silently; stdout that cannot be written (a full disk) is one line naming it, exit status
2. An unexpected exception (a bug, or a file that defeats every check) is one line too, naming the
file being worked on and what failed, and exit status 2; ``--debug`` shows its traceback.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TextIO

PROG = "conv3dt-studio"
EXIT_OK, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 0, 2, 130, 141


class UsageError(Exception):
    """A command-line mistake: a usage error from the parser, or one found after parsing (e.g. an
    output file that already exists)."""


class StdoutError(Exception):
    """Standard output cannot be written (e.g. redirected to a full disk); the message says so."""

    def __init__(self, exc: OSError) -> None:
        super().__init__(f"cannot write to standard output: {exc.strerror or exc}")


class _NamedStdout:
    """``stream`` (stdout) whose write failures name it: print() reports only the errno."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return self._guard(self.stream.write, text)

    def flush(self) -> None:
        self._guard(self.stream.flush)

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding...
        return getattr(self.stream, name)

    @staticmethod
    def _guard(call: Callable[..., Any], *args: Any) -> Any:
        try:
            return call(*args)
        except BrokenPipeError:  # a reader that left: handled as such
            raise
        except OSError as exc:
            raise StdoutError(exc) from exc


def print_error(message: str) -> None:
    """One error line on stderr, in the command line's own form."""
    print(f"{PROG}: error: {message}", file=sys.stderr)


def with_source(exc: Exception, source: object) -> Exception:
    """``exc`` whose problems are reported as found in the file ``source``."""
    exc.source = str(source)  # type: ignore[attr-defined]
    return exc


def error_lines(exc: BaseException, options: Mapping[str, str] | None = None) -> list[str]:
    """One line per problem, each naming the file, node and parameter where known. An error
    about one argument of the Python API (its ``param``) that a command-line option stands for
    (``options``: argument -> option, e.g. ``{"force": "--force"}``) names the option instead."""
    problems = getattr(exc, "problems", None)
    if problems:
        source = getattr(exc, "source", None)
        return [f"{source}: {p}" if source else str(p) for p in problems]
    if isinstance(exc, OSError) and exc.filename:
        return [f"`{exc.filename}`: {exc.strerror or exc}"]
    text = str(exc) or type(exc).__name__
    param = getattr(exc, "param", None)
    if options and param in options:
        text = as_option(text, param, options[param])
    return [" ".join(text.split())]


def as_option(text: str, param: str, option: str) -> str:
    """``text`` with the API's spellings of the argument ``param`` - `param`, param=True,
    param=VALUE - written as the command-line ``option``."""
    text = text.replace(f"`{param}`", option).replace(f"{param}=True", option)
    return re.sub(rf"\b{re.escape(param)}=", f"{option} ", text)


def report(exc: BaseException, debug: bool, options: Mapping[str, str] | None = None) -> int:
    """Print ``exc`` as error lines (after its traceback with ``debug``; ``options`` as for
    :func:`error_lines`); the exit status."""
    if debug:
        traceback.print_exc()
    for line in error_lines(exc, options):
        print_error(line)
    return EXIT_ERROR


def guarded(
    action: Callable[[], int],
    debug: bool,
    subject: object = None,
    options: Mapping[str, str] | None = None,
) -> int:
    """Run a command; user errors, Ctrl+C, a closed stdout and unexpected exceptions become exit
    statuses (``subject``: the file the command works on, named in an unexpected error;
    ``options``: the API arguments the command's options stand for, see :func:`error_lines`)."""
    from conv3dt_studio.compute import Conv3DTStudioError

    try:
        with contextlib.redirect_stdout(_NamedStdout(sys.stdout)), warnings_as_lines():
            code = action()
            sys.stdout.flush()  # a buffered write fails here, not at exit
        return code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `conv3dt-studio validate g.json | head -1`
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except StdoutError as exc:  # e.g. `conv3dt-studio info > /dev/full`
        _silence_stdout()  # what is still buffered would fail again at exit
        return report(exc, debug)
    except (Conv3DTStudioError, UsageError, OSError) as exc:
        return report(exc, debug, options)
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


@contextlib.contextmanager
def warnings_as_lines() -> Iterator[None]:
    """Show each Python warning that is shown at all (the filters still decide) as one line on
    stderr, ``conv3dt-studio: warning: MESSAGE``, once per message. Warnings meant for
    developers are not shown, as Python does not show them outside ``__main__``: deprecations,
    and JAX's note on a fork (a video reader's ffmpeg started while Keras is loaded), which
    concerns a child that runs no Python."""
    shown: set[str] = set()

    def show(message: Warning | str, *_args: Any, **_kwargs: Any) -> None:
        text = " ".join(str(message).split())
        if text not in shown:
            shown.add(text)
            print(f"{PROG}: warning: {text}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        warnings.filterwarnings("ignore", r"os\.fork\(\) was called", RuntimeWarning)
        warnings.showwarning = show
        yield


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (tests)
        pass
