"""Live preview: with Live on, every edit re-runs the chosen Prediction 6D's chain on a small slice
(the first sample's first time step) in a background :class:`~.jobs.Job`, and shows the result as a
thumbnail under that node on the canvas (:meth:`.canvas.Canvas.set_thumbnail`).

A preview is not a run. It never goes through the window's :class:`~.activity.Activity`, so Run,
Train and Stop stay free and the editor is never busy; it computes on NumPy in its own one-thread
pool (a slice this small gains nothing from a GPU, and a run keeps the GPU); and only the newest
edit's result is shown: each edit cancels the previous preview, and a result that arrives after a
newer edit started is dropped. The pure steps (:func:`first_step`, :func:`preview_document`,
:func:`preview_job`) are tested without Qt's event loop.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from PySide6.QtCore import QObject, QThreadPool, Signal
from PySide6.QtGui import QImage

from conv3dt_studio.compute import Conv3DTStudioError
from conv3dt_studio.nodes import GraphDocument, infer_shapes, plan, run_document
from conv3dt_studio.nodes.runner import load_data, with_data

from .canvas import Canvas
from .jobs import Job, JobControl
from .prediction_inspector import layouts_of, thumbnail
from .run_job import failure_text, prediction_to_run


class Preview(NamedTuple):
    """One preview's outcome: which edit it follows, the node, its picture (RGB uint8) or why
    there is none."""

    generation: int
    node: str | None
    image: np.ndarray | None
    problem: str = ""


class SourceCache:
    """The first sample's first time step of the last Data node read, keyed by its parameters
    and, for a file, by :func:`file_stamp` (a file rewritten on disk is read again, as a Run
    reads it): an edit of a layer does not generate or read the data again. Used from the
    preview thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.key = ""
        self.value: np.ndarray | None = None

    def first_step(self, doc: GraphDocument, data_node: str) -> np.ndarray:
        stamp = file_stamp(doc, data_node)
        key = json.dumps([data_node, doc.params(data_node), stamp], sort_keys=True, default=str)
        with self.lock:
            if key == self.key and self.value is not None:
                return self.value
        value = first_step(doc, data_node)
        with self.lock:
            self.key, self.value = key, value
        return value


def file_stamp(doc: GraphDocument, data_node: str) -> list:
    """What tells whether the file a Data node reads changed: its full path with its
    modification time and size, and for a folder of images those of each entry (a frame
    rewritten in place leaves the folder's own time alone); [] for generated data."""
    params = doc.nodes[data_node].params
    if params.get("source") != "file" or not isinstance(params.get("path"), str):
        return []
    path = doc.resolve_path(params["path"])
    try:
        if not os.path.isdir(path):
            st = os.stat(path)
            return [path, st.st_mtime_ns, st.st_size]
        with os.scandir(path) as entries:
            found = sorted((e.name, e.stat().st_mtime_ns, e.stat().st_size) for e in entries)
        return [path, found]
    except OSError:
        return [path, None]  # gone: reading it says why


def first_step(doc: GraphDocument, data_node: str) -> np.ndarray:
    """The samples of ``data_node`` (a Data node, before any transform) cut to the first sample's
    first time step: shape (1, 1, ...)."""
    x = load_data(doc, data_node)
    return np.ascontiguousarray(x[:1, :1])


def preview_document(
    doc: GraphDocument, prediction_node: str, input_node: str, x: np.ndarray
) -> GraphDocument:
    """A copy of ``doc`` whose Data node (the one feeding ``prediction_node``) describes ``x``, the
    slice, and whose Input takes the shape that then arrives at it (through any Resample), so the
    chain validates and runs on it."""
    out = with_data(doc, x, prediction_node)
    feed = out.feeder(input_node, "x")
    arriving = infer_shapes(out).get(feed) if feed is not None else None
    if arriving:
        out.nodes[input_node].params = {
            **out.nodes[input_node].params,
            "shape": [int(s) for s in arriving[1:]],
        }
    return out


def preview_job(
    doc: GraphDocument,
    prediction_node: str,
    generation: int,
    weights: dict | None = None,
    cache: SourceCache | None = None,
) -> Callable[[JobControl], Preview]:
    """The function of a preview job on a copy of ``doc`` (taken now, on the caller's thread). It
    never raises: a chain with problems, or weights that do not fit, give a Preview without an
    image; a preview superseded before it starts gives one without computing."""
    doc = doc.copy()
    cache = cache or SourceCache()

    def preview(control: JobControl) -> Preview:
        if control.should_stop():
            return Preview(generation, prediction_node, None, "superseded")
        try:
            p = plan(doc, prediction_node)
            x = cache.first_step(doc, p.data_node)
            if control.should_stop():
                return Preview(generation, prediction_node, None, "superseded")
            small = preview_document(doc, p.prediction_node, p.input_node, x)
            result = run_document(
                small,
                backend="numpy",
                data=x,
                weights=weights,
                prediction_node=p.prediction_node,
            )
        except (Conv3DTStudioError, ValueError, MemoryError) as exc:
            return Preview(generation, prediction_node, None, failure_text(exc))
        image = thumbnail(result.prediction, layouts_of(result)[1])
        return Preview(generation, prediction_node, image)

    return preview


def to_qimage(rgb: np.ndarray) -> QImage:
    """An RGB uint8 (rows, columns, 3) array as a QImage that owns its pixels."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class LivePreview(QObject):
    """Follows the canvas's edits while enabled; ``preview_shown(node_id)`` after a thumbnail
    was put on the canvas, ``preview_failed(node_id, text)`` when the newest edit gives none."""

    preview_shown = Signal(str)
    preview_failed = Signal(str, str)

    def __init__(
        self,
        canvas: Canvas,
        weights: Callable[[], dict | None],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.canvas = canvas
        self.weights = weights  # the trained weights, or None
        self.enabled = False
        self.generation = 0
        self.job: Job | None = None  # the newest preview's job
        self.jobs: dict[int, Job] = {}  # every job not ended yet, by generation
        self.cache = SourceCache()
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)  # previews queue; superseded ones end at once
        self.shown: str | None = None  # the node showing a thumbnail
        canvas.document_changed.connect(self.schedule)
        canvas.selection_changed.connect(self._selection_changed)

    def set_enabled(self, enabled: bool) -> None:
        """Live on: preview now and after every edit. Off: cancel, remove the thumbnail."""
        self.enabled = bool(enabled)
        if self.enabled:
            self.schedule()
        else:
            self._cancel()
            self._show(None, None)

    def schedule(self) -> None:
        """Start a preview of the document as it is now (the previous one is cancelled)."""
        if not self.enabled:
            return
        self._cancel()
        doc = self.canvas.doc
        pid = prediction_to_run(doc, self.canvas.selected_ids())
        if pid is None:
            self._show(None, None)
            return
        self.generation += 1
        job = Job(preview_job(doc, pid, self.generation, self.weights(), self.cache))
        job.finished.connect(self._finished)
        self.job = self.jobs[self.generation] = job
        job.start(self.pool)

    def _selection_changed(self, _node_id: object) -> None:
        """Another Prediction 6D chosen by the selection: preview that one."""
        if self.enabled and prediction_to_run(self.canvas.doc, self.canvas.selected_ids()) != (
            self.shown
        ):
            self.schedule()

    def _cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.job = None

    def _finished(self, preview: Preview) -> None:
        self.jobs.pop(preview.generation, None)
        if not self.enabled or preview.generation != self.generation:
            return  # a newer edit's preview is on its way
        self.job = None
        if preview.image is None:
            self._show(None, None)
            self.preview_failed.emit(preview.node or "", preview.problem)
            return
        self._show(preview.node, to_qimage(preview.image))
        self.preview_shown.emit(preview.node)

    def _show(self, node: str | None, image: QImage | None) -> None:
        if self.shown is not None and self.shown != node:
            self.canvas.set_thumbnail(self.shown, None)
        if node is not None:
            self.canvas.set_thumbnail(node, image)
        self.shown = node if image is not None else None

    def close(self, msecs: int = 5000) -> None:
        """Cancel and wait for the preview thread (closing the window)."""
        self._cancel()
        self.pool.waitForDone(msecs)
