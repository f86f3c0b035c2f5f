"""Snippet PNGs: a picture of the graph (or the selection) with the graph JSON embedded.

The picture is rendered from the canvas scene into a QImage (works offscreen); the JSON goes into a
PNG text chunk with :func:`nodes.snippet.embed_graph_text`; the file is written atomically. Dropping
such a PNG on the canvas recreates its nodes. ``conv3dt-studio snippet GRAPH.json -o FILE.png``
calls :func:`main`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter

from conv3dt_studio.nodes import GraphDocument
from conv3dt_studio.nodes.files import atomic_write_bytes
from conv3dt_studio.nodes.snippet import embed_graph_text

MARGIN = 40
BACKGROUND = QColor(24, 27, 33)


def render_png(canvas, node_ids: Iterable[str] | None = None, scale: float = 1.5) -> bytes:
    """PNG bytes of the canvas showing ``node_ids`` (all nodes when None), others hidden."""
    ids = set(canvas.views if node_ids is None else node_ids)
    scene = canvas.viewer.scene()
    hidden = []
    selected = canvas.selected_ids()
    canvas.graph.clear_selection()
    for nid, view in canvas.views.items():
        if nid not in ids and view.view.isVisible():
            view.view.setVisible(False)
            hidden.append(view.view)
    for link_view in _pipes(canvas, ids):
        link_view.setVisible(False)
        hidden.append(link_view)
    try:
        rect = QRectF()
        for nid in ids:
            item = canvas.views[nid].view
            rect = rect.united(item.sceneBoundingRect()).united(
                item.mapRectToScene(item.childrenBoundingRect())
            )
        rect = rect.adjusted(-MARGIN, -MARGIN, MARGIN, MARGIN)
        if rect.isEmpty():
            rect = QRectF(0, 0, 200, 120)
        width, height = max(1, int(rect.width() * scale)), max(1, int(rect.height() * scale))
        image = QImage(width, height, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(BACKGROUND)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
        scene.render(painter, QRectF(0, 0, width, height), rect, Qt.AspectRatioMode.KeepAspectRatio)
        painter.end()
    finally:
        for item in hidden:
            item.setVisible(True)
        for nid in selected:
            canvas.views[nid].set_selected(True)
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    buffer.close()
    return bytes(data.data())


def _pipes(canvas, ids: set[str]):
    """Pipe items touching a node outside ``ids``."""
    out = []
    for nid, view in canvas.views.items():
        for port in view.inputs().values():
            for pipe in port.view.connected_pipes:
                other = (
                    canvas.node_id_of_view(pipe.output_port.node.id) if pipe.output_port else None
                )
                if nid not in ids or other not in ids:
                    out.append(pipe)
    return out


def snippet_bytes(
    canvas, node_ids: Iterable[str] | None = None, document: GraphDocument | None = None
) -> bytes:
    """The snippet PNG (picture + embedded graph JSON) of the whole graph or of ``node_ids``;
    ``document`` is the graph embedded instead (the whole graph as saved, for Save As)."""
    ids = list(canvas.doc.nodes if node_ids is None else node_ids)
    doc = canvas.doc.sub_document(ids) if document is None else document
    return embed_graph_text(render_png(canvas, ids), doc.dumps())


def export_snippet(
    canvas,
    path: str | os.PathLike,
    node_ids: Iterable[str] | None = None,
    document: GraphDocument | None = None,
) -> None:
    atomic_write_bytes(path, snippet_bytes(canvas, node_ids, document))


def render_document(doc: GraphDocument, path: str | os.PathLike) -> None:
    """Render ``doc`` offscreen to a snippet PNG (creates a QApplication when there is none)."""
    from PySide6.QtWidgets import QApplication

    if QApplication.instance() is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = QApplication([sys.argv[0] if sys.argv else "conv3dt-studio"])
        app.setApplicationName("conv3dt-studio")
    from .canvas import Canvas

    canvas = Canvas(doc)
    try:
        export_snippet(canvas, path)
    finally:
        canvas.viewer.deleteLater()


def main(args) -> int:
    """``conv3dt-studio snippet GRAPH.json -o FILE.png [--force]``: ``args`` has ``graph``,
    ``output`` and optionally ``force`` (without it an existing output is not overwritten).
    Returns the exit status: 0, or 2 for bad input (one line on stderr), as every command."""
    from conv3dt_studio import nodes

    output = str(args.output)
    if os.path.exists(output) and hasattr(args, "force") and not args.force:
        print(
            f"conv3dt-studio: error: `{output}` exists; use --force to overwrite it",
            file=sys.stderr,
        )
        return 2
    try:
        doc = nodes.load(args.graph)
        render_document(doc, output)
    except (nodes.FileError, nodes.DocumentError) as exc:
        print(f"conv3dt-studio: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {output} ({len(doc.nodes)} nodes, graph JSON embedded)")
    return 0


__all__ = ["export_snippet", "main", "render_document", "render_png", "snippet_bytes"]
