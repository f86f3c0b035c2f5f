"""Modules that a command loads only when it runs: the editor's (Qt) for ``open`` and ``snippet``,
the benchmark for ``bench``.

They are imported by name, never by an import statement, so that importing the command line loads
no Qt (tests/test_architecture.py checks both). A module missing from this build, or Qt failing to
load, is one error line instead of a traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import UsageError

QT_PACKAGES = ("PySide6", "shiboken6", "NodeGraphQt", "Qt", "pyqtgraph")


def optional_module(name: str, what: str) -> ModuleType:
    """Import the module ``name`` that ``what`` (e.g. "the editor") needs; a :class:`UsageError`
    when it is missing or Qt fails to load."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:  # ModuleNotFoundError, or a Qt library that fails to load
        if isinstance(exc, ModuleNotFoundError) and exc.name == name:
            raise UsageError(f"{what} is not available in this build (no module `{name}`)") from exc
        if (exc.name or "").split(".")[0] in QT_PACKAGES:
            raise UsageError(
                f"{what} needs Qt (PySide6, NodeGraphQt), which failed to load: {exc}"
            ) from exc
        raise
