"""Starting and ending the editor process: the QApplication and its style, the first window,
the event loop, a last-resort exception hook, and deleting windows before the interpreter exits.

:func:`run_editor` takes the window to show from a factory, so this module does not depend on the
main window (``main_window.launch`` passes it).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QCoreApplication, QEvent, QThreadPool, QTimer
from PySide6.QtWidgets import QApplication

from conv3dt_studio.resources import STYLE_SHEET

if TYPE_CHECKING:
    from .main_window import MainWindow

APP_TITLE = "Conv3DT Studio"
QUIT_AFTER_ENV = "CONV3DT_STUDIO_QUIT_AFTER"


def apply_style(app: QApplication) -> None:
    if STYLE_SHEET.is_file():
        app.setStyleSheet(STYLE_SHEET.read_text(encoding="utf-8"))


def run_editor(make_window: Callable[[], MainWindow]) -> int:
    """Show the window ``make_window()`` gives and run the event loop; with
    ``CONV3DT_STUDIO_QUIT_AFTER=SECONDS`` in the environment it quits by itself after that time."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("conv3dt-studio")
    app.setApplicationDisplayName(APP_TITLE)
    apply_style(app)
    window = make_window()
    install_excepthook(window)
    window.show()
    QTimer.singleShot(0, window.canvas.viewer, window.canvas.fit)
    QTimer.singleShot(300, window.inspector, window.inspector.prepare)  # plots before a run
    # compile (or load from the disk cache) the CPU kernels off the GUI thread, before the first run
    from conv3dt_studio.compute.conv3d_transpose_ops import warm_up

    QThreadPool.globalInstance().start(warm_up)
    quit_after = os.environ.get(QUIT_AFTER_ENV, "")
    if quit_after:  # smoke tests of an installed editor: open, draw, quit
        QTimer.singleShot(int(float(quit_after) * 1000), app.quit)
    code = app.exec()
    dispose(window)
    if app.platformName() == "offscreen":
        # Qt's offscreen platform crashes at exit while the process owns clipboard data; X11,
        # Wayland and the others hand the data to the system's clipboard instead
        app.clipboard().clear()
    return code


def install_excepthook(window: MainWindow) -> None:
    """An unexpected exception in a slot goes to the log and the status bar, not to a crash."""
    previous = sys.excepthook

    def hook(kind, value, tb) -> None:
        previous(kind, value, tb)
        try:
            window.log.log(f"Internal error: {kind.__name__}: {value}", "error")
            window.statusBar().showMessage(f"Internal error: {value} (see the log)", 8000)
        except RuntimeError:  # the window is gone
            pass

    sys.excepthook = hook


def dispose(window: MainWindow) -> None:
    """Delete the window now: left to interpreter shutdown, the NodeGraphQt and pyqtgraph items
    can be torn down in an order that crashes. Windows it opened for restored work go too."""
    for other in window.recovered_windows:
        dispose(other)
    window.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
