"""Conv3DT Studio's two front ends, side by side: the command line (:mod:`.cli`, Qt-free) and the
desktop editor (:mod:`.editor`, everything Qt lives there).

Importing this package imports no Qt: :class:`MainWindow` and :func:`launch` are loaded on first
access, so the command line stays light for commands that need no GUI.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MainWindow", "launch"]


def __getattr__(name: str) -> Any:
    if name in ("MainWindow", "launch"):
        from .editor import main_window

        return getattr(main_window, name)
    raise AttributeError(f"module 'conv3dt_studio.app' has no attribute {name!r}")
