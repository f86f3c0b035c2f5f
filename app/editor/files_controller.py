"""The window's document as a file: its path, modified state and autosave, and the file
operations: New, Open (a file, an example, a recent file), Import, Save, Save As, Export JSON,
Export snippet PNG, and saving a prediction.

Every question goes through the window's :class:`~.dialogs.Dialogs`; every message to the log
through its :class:`~.activity.Activity`. The window follows by signals: ``document_opened(doc)``
when another document is shown, ``title_changed(name, modified)``, ``file_used(path)`` for the
recent files. A file that cannot be read or written is a message, never an exception; a failed
write is one line naming the file, the reason and what would work (:func:`write_failure`).
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from conv3dt_studio import nodes
from conv3dt_studio.compute import Conv3DTStudioError
from conv3dt_studio.nodes import GraphDocument, RunResult
from conv3dt_studio.nodes.files import save_npy

from . import autosave
from .activity import Activity
from .canvas import Canvas
from .dialogs import (
    GRAPH_FILTER,
    JSON_FILTER,
    NPY_FILTER,
    PNG_FILTER,
    SAVE_FILTER,
    Dialogs,
    confirmed_path,
    suffix_problem,
    with_suffix,
)
from .snippet_export import export_snippet

__all__ = ["FilesController", "with_suffix", "write_failure", "write_problem"]

# what would work, by the reason a write failed (errno)
REMEDIES = {
    errno.ENOSPC: "free some disk space or choose another disk",
    errno.EDQUOT: "free some disk space or choose another disk",
    errno.EACCES: "choose a folder you can write to",
    errno.EPERM: "choose a folder you can write to",
    errno.EROFS: "choose a folder you can write to",
    errno.ENAMETOOLONG: "choose a shorter name",
}
ANOTHER_PLACE = "choose another file name or folder"
GRAPH_SUFFIXES = (".json", ".png")  # what Save As writes: graph JSON, or a snippet PNG
NOTHING_SHOWN = "Nothing to export yet: run the graph (F5) so that the inspector shows a prediction"


def write_problem(path: str) -> str | None:
    """Why ``path`` cannot be written, as one line naming it, the reason and what would work;
    None when nothing is in the way."""
    target = Path(path)
    if target.is_dir():
        return f"Cannot save `{path}`: it is a folder; choose a file name inside it"
    folder = target.parent if str(target.parent) else Path(".")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        return (
            f"Cannot save `{path}`: `{existing}` is a file, not a folder; choose a file in an "
            "existing folder"
        )
    if not folder.is_dir():
        return (
            f"Cannot save `{path}`: folder `{folder}` does not exist; create it first or choose "
            "an existing folder"
        )
    try:  # permissions alone do not tell (root, read-only file systems)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return f"Cannot save `{path}`: cannot write in folder `{folder}` ({reason}); " + (
            REMEDIES.get(exc.errno or 0, ANOTHER_PLACE)
        )
    return None


def write_failure(path: str, exc: BaseException) -> str:
    """One line for a write of ``path`` that failed with ``exc``: the file, the reason, what
    would work. The reason is :func:`write_problem`'s when it finds one (the write's own error
    may blame a missing folder that is a file), else the first line of ``exc`` (no tool's
    dump, such as ffmpeg's command line)."""
    problem = write_problem(path)
    if problem is not None:
        return problem
    cause = exc if getattr(exc, "errno", None) else exc.__cause__
    remedy = REMEDIES.get(getattr(cause, "errno", None) or 0, ANOTHER_PLACE)
    if isinstance(exc, nodes.FileError):  # names the file already
        return f"{str(exc).splitlines()[0]}; {remedy}"
    lines = str(exc).strip().splitlines()
    reason = getattr(exc, "strerror", None) or (lines[0] if lines else type(exc).__name__)
    reason = re.sub(r"^\[Errno \d+\]\s*", "", reason)  # OSError's prefix, when no strerror
    return f"Cannot save `{path}`: {reason}; {remedy}"


class FilesController(QObject):
    """Opens, saves and autosaves one window's document."""

    document_opened = Signal(object)  # the GraphDocument now shown
    title_changed = Signal(str, bool)  # file name (or 'Untitled'), modified
    file_used = Signal(str)  # a file opened or saved
    graph_saved = Signal()  # the document was written to its file

    def __init__(
        self,
        canvas: Canvas,
        dialogs: Dialogs,
        activity: Activity,
        for_saving: Callable[[GraphDocument], GraphDocument],
        autosave_delay_ms: int = autosave.DEFAULT_DELAY_MS,
        parent: QObject | None = None,
        unsaved_weights: Callable[[], bool] = lambda: False,
        keep_weights: Callable[[str], bool] = lambda how: True,
        weights_modified: Callable[[], bool] | None = None,
        end_training: Callable[[], bool] = lambda: True,
        for_autosave: Callable[[GraphDocument], GraphDocument] = lambda doc: doc,
        autosave_state: Callable[[], dict[str, Any] | None] = lambda: None,
        restore_autosave_state: Callable[[dict[str, Any] | None], None] = lambda state: None,
    ) -> None:
        super().__init__(parent)
        self.canvas = canvas
        self.dialogs = dialogs
        self.activity = activity
        self.for_saving = for_saving  # the document as written (trained weights embedded or not)
        self.unsaved_weights = unsaved_weights  # trained weights not saved yet: unsaved work
        self.keep_weights = keep_weights  # 'embed' or 'npz': save them before they go
        # the weights differ from the saved document's (trained, reset, loaded): a change
        self.weights_modified = weights_modified or unsaved_weights
        # a training runs: ask to stop it and wait for its weights (False: the user keeps it)
        self.end_training = end_training
        # the autosave holds the document with every weights embedded, and the weights' state
        # beside it (epochs, unsaved...), which recovery gives back
        self.for_autosave = for_autosave
        self.restore_autosave_state = restore_autosave_state
        self.path: str | None = None
        self.opened_from: str | None = None  # a snippet PNG, an example: the title shows it
        self.dirty_without_undo = False  # restored work not yet saved
        self.autosaver = autosave.Autosaver(
            lambda: self.for_autosave(canvas.doc).to_json(),
            lambda: self.path,
            autosave_delay_ms,
            self,
            trained=autosave_state,
        )
        canvas.document_changed.connect(self._on_document_changed)
        stack = canvas.undo_stack
        stack.cleanChanged.connect(self._update_title)
        # a command's redo runs inside push(), before the stack moves: re-check after it
        stack.indexChanged.connect(self._on_document_changed)
        # deleted with the canvas, the stack empties itself: nothing to follow then
        canvas.destroyed.connect(lambda: stack.blockSignals(True))

    # ------------------------------------------------------------------ document and state
    def set_document(self, doc: GraphDocument, path: str | os.PathLike | None) -> None:
        """Show ``doc`` as the file ``path`` (None: not saved yet), unmodified."""
        self.canvas.set_document(doc)
        self.path = str(path) if path else None
        self.opened_from = None
        self.dirty_without_undo = False
        self.canvas.undo_stack.setClean()
        self.document_opened.emit(doc)
        self.canvas.fit()
        self.canvas.select(None)
        self.autosaver.discard()
        self._update_title()

    def open_first(self, path: str | os.PathLike | None, doc: GraphDocument | None) -> None:
        """A new window's document: the file ``path``, else ``doc``, else (also when the file
        cannot be opened) the toolkit example."""
        if path is None or not self.open_path(path):
            self.set_document(nodes.default_document() if doc is None else doc, None)

    def adopt_recovery(self, recovery: autosave.Recovery, doc: GraphDocument) -> None:
        """Show restored work as unsaved, autosaved under this window's own file."""
        self.set_document(doc, recovery.path)
        self.restore_autosave_state(recovery.trained)  # the trained weights as they were
        self.dirty_without_undo = True
        self._update_title()
        if self.autosaver.save_now():  # its copy is safe in this window's autosave
            recovery.discard()
        self.activity.log(f"Restored {recovery.describe()}", "ok")

    def is_modified(self) -> bool:
        return self.graph_modified() or self.weights_modified()

    def graph_modified(self) -> bool:
        return self.dirty_without_undo or not self.canvas.undo_stack.isClean()

    def forget_changes(self) -> None:
        """Treat the document as saved (closing without a question: tests, scripts)."""
        self.canvas.undo_stack.setClean()
        self.dirty_without_undo = False
        self._update_title()

    def display_name(self) -> str:
        shown = self.path or self.opened_from
        return Path(shown).name if shown else "Untitled"

    def refresh_title(self) -> None:
        self._update_title()

    def weights_changed(self) -> None:
        """The trained weights came, went or were saved: the title follows, and unsaved ones are
        autosaved like an edit (the autosave embeds them)."""
        self._on_document_changed()

    def _update_title(self, *_args) -> None:
        self.title_changed.emit(self.display_name(), self.is_modified())

    def _on_document_changed(self, *_args) -> None:
        self._update_title()
        if self.is_modified():
            self.autosaver.schedule()
        else:
            self.autosaver.discard()

    # ------------------------------------------------------------------ opening
    def ok_to_replace(self) -> bool:
        """Ask about unsaved changes; False when the user cancels. A running training is stopped
        first (when the user agrees), so that its weights are this document's to keep or discard,
        never the next document's."""
        if not self.end_training():
            return False
        if not self.is_modified():
            return True
        weights = self.unsaved_weights()
        answer = self.dialogs.save_changes(self.display_name(), weights)
        if answer in ("embed", "npz"):  # keep the trained weights, then the graph
            if not self.keep_weights(answer):
                return False
            return self.save() if answer == "embed" or self.graph_modified() else True
        if answer == "save":
            return self.save()
        return answer == "discard"

    def new_document(self) -> None:
        if self.ok_to_replace():
            self.set_document(GraphDocument(), None)
            self.activity.log("New empty graph: drag nodes from the palette (or press Tab).")

    def open_dialog(self) -> None:
        if not self.ok_to_replace():
            return
        path = self.dialogs.open_path("Open graph", GRAPH_FILTER)
        if path:
            self.open_path(path)

    def open_path(self, path: str | os.PathLike) -> bool:
        doc = self._load(path, "Cannot open")
        if doc is None:
            return False
        is_graph_json = str(path).lower().endswith(".json")
        # never overwrite a snippet PNG or another framework's model: Save asks for a .json
        self.set_document(doc, str(path) if is_graph_json else None)
        self.opened_from = str(path)
        self._update_title()
        if not is_graph_json and not str(path).lower().endswith(".png"):
            self.dirty_without_undo = True  # an imported model is work to save
            self._update_title()
        self.file_used.emit(str(path))
        self.activity.log(f"Opened {path} ({len(doc.nodes)} nodes)", "ok")
        return True

    def open_example(self, path: Path) -> None:
        if self.ok_to_replace() and self.open_path(path):
            self.path = None  # keep the bundled example intact: Save asks for a file
            self._update_title()

    def open_recent(self, path: str) -> None:
        if self.ok_to_replace():
            self.open_path(path)

    def import_dialog(self) -> None:
        path = self.dialogs.open_path("Import graph", GRAPH_FILTER)
        if path:
            self.import_path(path)

    def import_path(self, path: str | os.PathLike) -> list[str]:
        """Add a file's nodes to this graph at the view centre (undoable)."""
        other = self._load(path, "Cannot import")
        return (
            [] if other is None else self.canvas.insert_document(other, self.canvas.view_center())
        )

    def _load(self, path: str | os.PathLike, title: str) -> GraphDocument | None:
        """A graph (JSON, snippet PNG) or a model from Keras or PyTorch (``nodes.load`` imports
        it, weights embedded); a file that cannot be read is a message."""
        notes: list[str] = []
        try:
            doc = nodes.load(path, notes)
        except Conv3DTStudioError as exc:
            self.activity.log(str(exc), "error")
            self.dialogs.message(title, str(exc))
            return None
        for note in notes:  # what an import chose itself, e.g. 1 time step
            self.activity.log(note, "warning")
        return doc

    # ------------------------------------------------------------------ saving
    def save(self) -> bool:
        if self.path is None:
            return self.save_as()
        return self._save_to(self.path)

    def save_as(self) -> bool:
        """Save under a chosen name, in the format its suffix names: graph JSON (``.json``, or a
        name without a suffix) or a snippet PNG of the whole graph (``.png``); other suffixes
        are refused, as the command line refuses them."""
        stem = Path(self.opened_from).stem if self.opened_from else "graph"
        chosen = self.dialogs.save_path("Save graph", SAVE_FILTER, self.path or f"{stem}.json")
        if not chosen:
            return False
        problem = suffix_problem(chosen, GRAPH_SUFFIXES, "a graph (JSON or snippet PNG)")
        if problem is not None:
            self._refuse("Cannot save", problem, log=True)
            return False
        path = confirmed_path(self.dialogs, chosen, ".json")
        if not path or not self._save_to(path):
            return False
        self.path = path
        self._update_title()
        return True

    def _save_to(self, path: str) -> bool:
        """Write the document (as saved: trained weights embedded when asked for) to ``path``:
        a snippet PNG when its name ends in .png, else graph JSON."""
        doc = self.for_saving(self.canvas.doc)
        if path.lower().endswith(".png"):
            save = lambda: export_snippet(self.canvas, path, None, doc)  # noqa: E731
        else:
            save = lambda: doc.save(path)  # noqa: E731
        if not self._write("Cannot save", path, save, True):
            return False
        self.forget_changes()
        self.autosaver.discard()
        self.file_used.emit(path)
        self.graph_saved.emit()
        self.activity.log(f"Saved {path}", "ok")
        return True

    def export_json(self, path: str | None = None) -> bool:
        path = path or self._ask_save_path("Export graph JSON", JSON_FILTER, "graph.json")
        if not path or not self._suffix_fits(path, ".json", "graph JSON"):
            return False
        doc = self.for_saving(self.canvas.doc)
        out = with_suffix(path, ".json")
        if not self._write("Cannot export", out, lambda: doc.save(out)):
            return False
        self.activity.log(f"Exported graph JSON to {path}", "ok")
        return True

    def export_snippet_dialog(self) -> bool:
        path = self._ask_save_path("Export snippet PNG", PNG_FILTER, "snippet.png")
        return bool(path) and self.export_snippet(path)

    def export_snippet(self, path: str, selection_only: bool | None = None) -> bool:
        """The selection when nodes are selected (or ``selection_only``), else the whole graph."""
        if not self._suffix_fits(path, ".png", "a snippet PNG"):
            return False
        selected = self.canvas.selected_ids()
        use_selection = bool(selected) if selection_only is None else selection_only
        ids = selected if use_selection else None
        out = with_suffix(path, ".png")
        if not self._write("Cannot export", out, lambda: export_snippet(self.canvas, out, ids)):
            return False
        what = f"{len(selected)} selected nodes" if use_selection else "the graph"
        self.activity.log(f"Exported a snippet PNG of {what} to {path}", "ok")
        return True

    def save_prediction(self, result: RunResult | None, path: str | None = None) -> bool:
        if result is None:
            return False
        path = path or self._ask_save_path("Save prediction", NPY_FILTER, "prediction.npy")
        if not path or not self._suffix_fits(path, ".npy", "a NumPy array"):
            return False
        out = with_suffix(path, ".npy")
        if not self._write("Cannot save", out, lambda: save_npy(out, result.prediction), True):
            return False
        self.activity.log(f"Saved prediction {result.prediction.shape} to {path}", "ok")
        return True

    def export_picture(
        self, title: str, suggested: str, write: Callable[[str], bool], path: str | None = None
    ) -> bool:
        """Ask where (unless ``path``), then ``write(path)`` a picture (PNG, GIF or MP4, by the
        suggested name's suffix; it returns False when there is nothing to draw, raises OSError
        when it cannot write); False when nothing was written, and the message says why."""
        suffix = Path(suggested).suffix
        path = path or self._ask_save_path(title, f"Images (*{suffix})", suggested)
        if not path or not self._suffix_fits(path, suffix, f"a picture ({suffix})"):
            return False
        out = with_suffix(path, suffix)
        try:
            written = write(out)
        except OSError as exc:
            self._refuse(f"Cannot {title.lower()}", write_failure(out, exc), log=True)
            return False
        if not written:
            self._refuse(f"Cannot {title.lower()}", NOTHING_SHOWN)
            return False
        self.activity.log(f"{title}: {out}", "ok")
        return True

    def _ask_save_path(self, title: str, file_filter: str, suggested: str) -> str | None:
        """The save dialog's answer with the suggested name's suffix added, asking before that
        names an existing file; None when cancelled. (A name ending in another suffix is
        returned as it is: the caller refuses it, saying why.)"""
        chosen = self.dialogs.save_path(title, file_filter, suggested)
        return chosen and confirmed_path(self.dialogs, chosen, Path(suggested).suffix)

    def _suffix_fits(self, path: str, suffix: str, what: str) -> bool:
        """Whether ``path`` ends in ``suffix`` (any case) or in none; else a message says why it
        is refused (no file hides its format behind a wrong name)."""
        problem = suffix_problem(path, (suffix,), what)
        if problem is not None:
            self._refuse("Cannot save", problem)
        return problem is None

    def _write(self, title: str, path: str, write: Callable[[], object], log: bool = False) -> bool:
        """Run ``write``, which writes ``path``; a failure becomes a one-line message (and a log
        line with ``log``) and False."""
        try:
            write()
        except OSError as exc:  # nodes.FileError among them
            self._refuse(title, write_failure(path, exc), log)
            return False
        return True

    def _refuse(self, title: str, text: str, log: bool = False) -> None:
        if log:
            self.activity.log(text, "error")
        self.dialogs.message(title, text)
