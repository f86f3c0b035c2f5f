"""The ``conv3dt-studio`` command line (also ``python -m conv3dt_studio``), Qt-free.

``run``, ``validate``, ``info``, ``train`` and ``bench`` are headless: importing this package, or
running them, loads no Qt module, so they work on a server, in a script or in CI. ``open`` (the
default with no command) and ``snippet`` need Qt: they load the editor's modules by name when they
run. Every user error is one line on stderr starting with ``conv3dt-studio: error:`` and exit
status 2; ``--debug`` adds the traceback.

Modules: :mod:`.dispatch` (:func:`main`), :mod:`.parser` (the grammar), one per command group
(:mod:`.run`: run, validate, info; :mod:`.train`; :mod:`.bench`; :mod:`.qt_commands`: open,
snippet), and what they share: :mod:`.errors` (exit statuses, one line per problem),
:mod:`.output_files` (the check of every output file), :mod:`.progress` (progress on stderr),
:mod:`.lazy_import` (modules loaded by name) and :mod:`.qt_platform` (can Qt's X11 plugin load?).
"""

from __future__ import annotations

from .dispatch import main
from .errors import EXIT_BROKEN_PIPE, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, PROG, UsageError
from .qt_commands import QUIT_AFTER_ENV

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "PROG",
    "QUIT_AFTER_ENV",
    "UsageError",
    "main",
]
