"""Conv3DT Studio desktop editor (everything Qt lives here).

``import app`` does not import Qt: :class:`MainWindow` is loaded on first access, so the command line
(``app.cli``) stays light for commands that need no GUI.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MainWindow", "launch"]


def __getattr__(name: str) -> Any:
    if name in ("MainWindow", "launch"):
        from . import main_window

        return getattr(main_window, name)
    raise AttributeError(f"module 'app' has no attribute {name!r}")
