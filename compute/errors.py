"""Errors raised by the compute core.

Every message is one line in Keras's style: it names the thing, what is allowed and what was received.
"""

from __future__ import annotations


class Conv3DTStudioError(Exception):
    """Base class of every error this project raises on purpose (a user error, not a bug)."""


class ParameterError(Conv3DTStudioError, ValueError):
    """A layer or optimizer parameter has a value outside what its declaration allows.

    ``param`` names the parameter at fault (None when the error concerns no single one), so
    callers place the message beside the right field instead of parsing it out of the text.
    """

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ShapeError(Conv3DTStudioError, ValueError):
    """Data of the wrong shape reached a layer or a loss."""


class StateError(Conv3DTStudioError, RuntimeError):
    """An operation was asked for in a state that cannot serve it (e.g. backward after an
    inference-mode forward, gradients while ``store`` is False)."""


class BackendError(Conv3DTStudioError, RuntimeError):
    """The requested array backend is not available."""
