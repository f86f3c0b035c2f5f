"""The NodeGraphQt canvas: a view over the graph document.

The document is the source of truth. User gestures on the canvas (connect, disconnect, move, drop)
are intercepted before NodeGraphQt changes anything, checked against the document's edit API, and
pushed as undoable commands that call that API. The canvas subscribes to the document's change
events: after every change (whoever made it) the view is reconciled with the document (nodes,
positions, links) and each node shows its inferred output shape, or turns red with its problem in
the tooltip.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable

os.environ.setdefault("QT_PREFERRED_BINDING", "PySide6")  # NodeGraphQt goes through Qt.py

from NodeGraphQt import BaseNode, NodeGraph  # noqa: E402
from NodeGraphQt.constants import MIME_TYPE  # noqa: E402
from NodeGraphQt.widgets.viewer import NodeViewer  # noqa: E402
from PySide6.QtCore import QMimeData, QObject, QPoint, QPointF, Signal  # noqa: E402
from PySide6.QtGui import (  # noqa: E402
    QBrush,
    QColor,
    QContextMenuEvent,
    QFont,
    QGuiApplication,
    QImage,
    QPixmap,
    QUndoStack,
)
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsSimpleTextItem  # noqa: E402

from conv3dt_studio import nodes  # noqa: E402
from conv3dt_studio.compute import Conv3DTStudioError, ParameterError  # noqa: E402
from conv3dt_studio.nodes import LAYER, NODE_TYPES, GraphDocument, Link, LinkError, Node, NodeType  # noqa: E402
from conv3dt_studio.nodes.graph_document import MISSING, REMOVED, Change  # noqa: E402
from conv3dt_studio.nodes.runner import memory_problems  # noqa: E402

from .prediction_inspector import layout_text  # noqa: E402
from .undo import (  # noqa: E402
    AddNodesCmd,
    ChangeLinksCmd,
    DeleteNodesCmd,
    MoveNodesCmd,
    SetParamCmd,
)

IDENTIFIER = "conv3dt"
GRAPH_MIME = "application/x-conv3dt-studio-graph"  # the clipboard's graph JSON
NODE_MIME_PREFIX = "conv3dt-studio/node:"  # payload of a palette drag (under NodeGraphQt's MIME)
PORT_COLORS = {nodes.TENSOR: (90, 170, 250), LAYER: (250, 165, 60)}
ERROR_COLOR = (150, 36, 40)
UNKNOWN_COLOR = (90, 90, 90)
LABEL_COLOR = QColor(190, 200, 215)
LABEL_ERROR_COLOR = QColor(255, 120, 120)
FROZEN_COLOR = (70, 86, 110)  # a frozen (update=False) layer: cold and grey
LDA_COLOR = QColor(255, 200, 120)
THUMBNAIL_SIZE = 112  # the live preview's picture under a node, at most this wide and high


# ---------------------------------------------------------------------- node classes
class StudioNode(BaseNode):
    """Base of the node classes generated from the catalogue."""

    __identifier__ = IDENTIFIER
    NODE_NAME = "Node"
    NODE_TYPE: NodeType | None = None

    def __init__(self) -> None:
        super().__init__()
        # the title is derived from the node's id (the layer's name, which its weights are saved
        # under): not editable in place, where a rename only changed the text on screen
        self.view.text_item.set_locked(True)
        nt = self.NODE_TYPE
        if nt is None:
            return
        for port in nt.inputs:
            self.add_input(port.name, multi_input=False, color=PORT_COLORS[port.kind])
        for port in nt.outputs:
            self.add_output(
                port.name, multi_output=port.kind != LAYER, color=PORT_COLORS[port.kind]
            )
        self.set_color(*nt.color)


class UnknownNode(StudioNode):
    """Stands for a node whose type this version does not know (shown, never run)."""

    NODE_NAME = "Unknown"


def _class_name(type_id: str) -> str:
    return "".join(w.title() for w in type_id.split("_")) + "Node"


NODE_CLASSES: dict[str, type[StudioNode]] = {
    t.type_id: type(_class_name(t.type_id), (StudioNode,), {"NODE_NAME": t.title, "NODE_TYPE": t})
    for t in NODE_TYPES.values()
}


def node_identifier(type_id: str) -> str:
    cls = NODE_CLASSES.get(type_id, UnknownNode)
    return f"{IDENTIFIER}.{cls.__name__}"


def display_name(node: Node) -> str:
    """'Conv3DTranspose' for id conv3d_transpose, 'Conv3DTranspose 2' for conv3d_transpose_2."""
    nt = NODE_TYPES.get(node.type)
    if nt is None:
        return f"{node.id} (unknown type)"
    if node.id == node.type:
        return nt.title
    suffix = node.id[len(node.type) + 1 :] if node.id.startswith(node.type + "_") else ""
    return f"{nt.title} {suffix}" if suffix.isdigit() else node.id


def _value_text(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return "×".join(_value_text(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return str(value.get("algorithm", "…"))
    return str(value)


def changed_params_text(node: Node, width: int = 36) -> str:
    """What differs from the node type's defaults ('stride 2×2×2 · padding on · activation
    tanh'), wrapped to lines of about ``width`` characters: the canvas, and so a snippet PNG,
    documents the model. The layer name is in the title already."""
    nt = NODE_TYPES.get(node.type)
    if nt is None:
        return ""
    defaults = nt.schema.to_json(nt.schema.defaults())
    parts = [
        f"{name} {_value_text(value)}"
        for name, value in node.params.items()
        if name != "name" and name in defaults and value != defaults[name]
    ]
    lines: list[str] = []
    for part in parts:
        if lines and len(lines[-1]) + len(part) + 3 <= width:
            lines[-1] += " · " + part
        else:
            lines.append(part)
    return "\n".join(lines)


def fmt_shape(shape) -> str:
    return "×".join("?" if s is None else str(s) for s in shape)


# ---------------------------------------------------------------------- the graph widget
class StudioViewer(NodeViewer):
    """NodeGraphQt's view without its own Undo/Redo actions (they would answer Ctrl+Z too, an
    ambiguous shortcut that then does nothing) and without its context menu: a right click asks
    for ours (``context_menu_requested(scene position, global position)``)."""

    context_menu_requested = Signal(object, object)

    def __init__(self) -> None:
        super().__init__(undo_stack=None)

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:  # noqa: N802 - Qt's name
        self.RMB_state = False
        scene = self.mapToScene(event.pos())
        self.context_menu_requested.emit((scene.x(), scene.y()), event.globalPos())
        event.accept()


class StudioGraph(NodeGraph):
    """NodeGraph whose user gestures go to the :class:`Canvas` instead of NodeGraphQt's model."""

    def __init__(self, canvas: Canvas) -> None:
        self._canvas = canvas
        # its own undo stack keeps only selection changes, with no action: ours has the edits
        super().__init__(parent=canvas, viewer=StudioViewer())

    def _on_connection_changed(self, disconnected, connected) -> None:
        if disconnected or connected:
            self._canvas.user_relinked(disconnected, connected)

    def _on_connection_sliced(self, ports) -> None:
        if ports:
            self._canvas.user_relinked(ports, [])

    def _on_nodes_moved(self, node_data) -> None:
        self._canvas.user_moved(node_data)

    def _on_insert_node(self, pipe, node_id, prev_node_pos) -> None:
        self._canvas.user_moved(prev_node_pos)  # dropping a node on a pipe only moves it

    def _on_node_data_dropped(self, mimedata, pos) -> None:
        self._canvas.drop(mimedata, pos)

    def _on_search_triggered(self, node_type, pos) -> None:
        type_id = next((k for k in NODE_CLASSES if node_identifier(k) == node_type), None)
        if type_id:
            self._canvas.add_node(type_id, (pos[0], pos[1]))

    def toggle_node_search(self) -> None:
        """Tab search over the catalogue's node types only (not NodeGraphQt's built-ins)."""
        if self._viewer.underMouse():
            names = {cls.NODE_NAME: [node_identifier(t)] for t, cls in NODE_CLASSES.items()}
            self._viewer.tab_search_set_nodes(names)
            self._viewer.tab_search_toggle()

    def _on_node_name_changed(self, node_id, name) -> None:
        self._canvas.sync_view()  # names are derived from ids: undo the in-place rename


# ---------------------------------------------------------------------- the canvas
class Canvas(QObject):
    """Owns the document, its undo stack and the NodeGraphQt view over it."""

    document_changed = Signal()
    selection_changed = Signal(object)  # the selected node id, or None
    message = Signal(str, str)  # (level: info/warning/error, text) for the log
    problems_changed = Signal(object)  # the new nodes.Report

    def __init__(self, doc: GraphDocument | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.doc = doc if doc is not None else GraphDocument()
        self.undo_stack = QUndoStack(self)
        self.graph = StudioGraph(self)
        self.graph.register_nodes([UnknownNode, *NODE_CLASSES.values()])
        self.graph.set_acyclic(True)
        self.graph.set_pipe_collision(False)
        self.graph.set_background_color(24, 27, 33)
        self.graph.set_grid_color(36, 40, 48)
        self.viewer = self.graph.viewer()
        self.viewer.setObjectName("graph_canvas")
        self.views: dict[str, BaseNode] = {}
        self.labels: dict[str, QGraphicsSimpleTextItem] = {}
        self.link_labels: dict[str, QGraphicsSimpleTextItem] = {}  # lda_coeff on a link
        self.thumbnails: dict[str, QGraphicsPixmapItem] = {}  # live previews under nodes
        self.run_errors: dict[str, str] = {}
        self.report: nodes.Report = nodes.validate(self.doc)
        self._logged_problems: set[str] = set()
        self._undrawn: list[str] = []  # links a one-link port cannot show (a damaged file)
        self._dialog = None  # callable(title, text) for messages that need the user's eyes
        self._unsubscribe = None
        self._sizes: dict[str, tuple[float, float]] = {}
        self.graph.node_selection_changed.connect(self._on_selection)
        self.graph.node_selected.connect(self._on_selection)
        self.set_document(self.doc)

    # ------------------------------------------------------------------ whole document
    def set_document(self, doc: GraphDocument) -> None:
        """Show ``doc`` (positions filled in where missing) and follow its changes; clears undo
        history."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.doc = doc
        self._unsubscribe = doc.subscribe(self._on_document_change)
        _layout_missing(doc, list(doc.nodes))
        self.run_errors.clear()
        self._logged_problems.clear()
        self.undo_stack.clear()
        self.sync_view()
        self._changed()

    def set_message_dialog(self, show) -> None:
        self._dialog = show

    # ------------------------------------------------------------------ user-level edits (undoable)
    def add_node(
        self, type_id: str, pos: tuple[float, float], params: dict | None = None
    ) -> str | None:
        """Create a node of ``type_id`` centred on ``pos`` and select it; returns its id (None
        when refused)."""
        w, h = self._node_size(type_id)
        try:
            node = self.doc.new_node(type_id, params, pos=(pos[0] - w / 2, pos[1] - h / 2))
        except ParameterError as exc:
            self._warn(str(exc))
            return None
        self.undo_stack.push(AddNodesCmd(self.doc, [node], [], f"create {node.id}"))
        self.select(node.id)
        return node.id

    def _node_size(self, type_id: str) -> tuple[float, float]:
        """The drawn size of a node of ``type_id`` (measured once on a throw-away view)."""
        if type_id not in self._sizes:
            view = self.graph.create_node(node_identifier(type_id), selected=False, push_undo=False)
            rect = view.view.boundingRect()
            self._sizes[type_id] = (rect.width(), rect.height())
            self.graph.remove_node(view, push_undo=False)
        return self._sizes[type_id]

    # ------------------------------------------------------------------ clipboard
    def selection_json(self, node_ids: Iterable[str] | None = None) -> str:
        """The selected nodes (or ``node_ids``) with the links among them, as graph JSON."""
        ids = self.selected_ids() if node_ids is None else list(node_ids)
        return self.doc.sub_document(ids).dumps()

    def copy_selection(self) -> bool:
        """Put the selection on the clipboard as graph JSON (any window, any text editor)."""
        if not self.selected_ids():
            return False
        mime = QMimeData()
        text = self.selection_json()
        mime.setText(text)
        mime.setData(GRAPH_MIME, text.encode("utf-8"))
        QGuiApplication.clipboard().setMimeData(mime)
        return True

    def cut_selection(self) -> bool:
        ids = self.selected_ids()
        if not self.copy_selection():
            return False
        self.delete_nodes(ids)
        return True

    def paste(self, at: tuple[float, float] | None = None) -> list[str]:
        """Insert the graph JSON on the clipboard (at the view centre), its nodes selected."""
        mime = QGuiApplication.clipboard().mimeData()
        raw = bytes(mime.data(GRAPH_MIME).data()) if mime.hasFormat(GRAPH_MIME) else b""
        text = raw.decode("utf-8") if raw else mime.text()
        try:
            other = nodes.loads(text, "the clipboard")
        except Conv3DTStudioError as exc:
            self._warn(f"Nothing to paste: {exc}")
            return []
        return self.insert_document(other, at or self.view_center())

    def duplicate(self, node_ids: Iterable[str] | None = None) -> list[str]:
        """Copies of the selected nodes (and the links among them), offset down and right."""
        ids = self.selected_ids() if node_ids is None else list(node_ids)
        if not ids:
            return []
        other = self.doc.sub_document(ids)
        _layout_missing(other, list(other.nodes))
        x = min(n.pos[0] for n in other.nodes.values())
        y = min(n.pos[1] for n in other.nodes.values())
        return self.insert_document(other, (x + 40.0, y + 40.0))

    def delete_nodes(self, node_ids: Iterable[str]) -> None:
        ids = [i for i in node_ids if i in self.doc.nodes]
        if ids:
            self.undo_stack.push(DeleteNodesCmd(self.doc, ids))

    def move_node(self, node_id: str, pos: tuple[float, float]) -> None:
        old = self.doc.nodes[node_id].pos
        if old is not None and tuple(old) == (float(pos[0]), float(pos[1])):
            return  # not a move: no undo entry, no modified mark
        self.undo_stack.push(
            MoveNodesCmd(self.doc, {node_id: (old, (float(pos[0]), float(pos[1])))})
        )

    def connect(self, src: str, src_port: str, dst: str, dst_port: str) -> bool:
        """Connect, replacing what fed ``dst_port``; refused (False, with a message) when the
        port rules forbid it."""
        return self._apply_links([], [Link((src, src_port), (dst, dst_port))])

    def disconnect(self, src: str, src_port: str, dst: str, dst_port: str) -> None:
        link = Link((src, src_port), (dst, dst_port))
        if link in self.doc.links:
            self.undo_stack.push(ChangeLinksCmd(self.doc, [link], [], "disconnect"))

    def set_param(self, node_id: str, name: str, value) -> str | None:
        """Validate and set a parameter; returns the error message when refused (the document
        keeps its last good value)."""
        node = self.doc.nodes.get(node_id)
        if node is None:
            return f"No node `{node_id}` in the graph"
        try:
            new = self.doc.check_param(node_id, name, value)
        except ParameterError as exc:
            return str(exc)
        old = node.params.get(name, MISSING)
        if new == old:
            return None
        after = self.doc.copy()
        after.store_param(node_id, name, new)
        follow = self._inputs_following(after)
        if follow:  # one undoable edit: the data and the Inputs that follow it
            self.undo_stack.beginMacro(f"set {node_id}.{name} (Input follows)")
        self.undo_stack.push(SetParamCmd(self.doc, node_id, name, old, new))
        for input_id, shape in follow.items():
            before = self.doc.nodes[input_id].params.get("shape", MISSING)
            self.undo_stack.push(SetParamCmd(self.doc, input_id, "shape", before, shape))
            self.message.emit("info", f"{input_id} follows its data: shape {fmt_shape(shape)}")
        if follow:
            self.undo_stack.endMacro()
        return None

    def _inputs_following(self, after: GraphDocument) -> dict[str, list[int]]:
        """The Inputs that follow their data, each with its new shape: those whose declared
        shape is the shape of the samples arriving at them now, or whose data has no shape now
        (a Data switched to a file not chosen yet, or one that cannot be read), when the
        arriving samples have another shape in ``after``. An Input typed to another shape than
        its data's is left alone."""
        now, then = nodes.infer_shapes(self.doc), nodes.infer_shapes(after)
        out: dict[str, list[int]] = {}
        for input_id in self.doc.ids_with_role(nodes.INPUT):
            nt = NODE_TYPES[self.doc.nodes[input_id].type]
            feeder = self.doc.upstream(input_id, nt.inputs[0].name)
            shape = self.doc.nodes[input_id].params.get("shape")
            if feeder is None or not isinstance(shape, list):
                continue
            old, new = now.get(feeder[0]), then.get(feeder[0])
            if new is None or None in new or list(new[1:]) == shape:
                continue
            if old is not None and list(old[1:]) != shape:
                continue
            try:
                out[input_id] = after.check_param(input_id, "shape", list(new[1:]))
            except ParameterError:
                continue  # an Input cannot take that shape: it turns red instead
        return out

    def set_params(self, node_id: str, values: dict, text: str) -> str | None:
        """Set several parameters as one undoable edit; the first refusal stops it (nothing
        set) and is returned."""
        check = self.doc.copy()
        try:
            for name, value in values.items():
                check.set_param(node_id, name, value)
        except (ParameterError, KeyError) as exc:
            return str(exc)
        self.undo_stack.beginMacro(text)
        for name, value in values.items():
            self.set_param(node_id, name, value)
        self.undo_stack.endMacro()
        return None

    def insert_document(self, other: GraphDocument, at: tuple[float, float]) -> list[str]:
        """Add ``other``'s nodes and links (ids renamed where taken), its top-left at ``at``."""
        if not other.nodes:
            self._warn("The dropped graph has no nodes")
            return []
        _layout_missing(other, list(other.nodes))
        xs = [n.pos[0] for n in other.nodes.values()]
        ys = [n.pos[1] for n in other.nodes.values()]
        dx, dy = at[0] - min(xs), at[1] - min(ys)
        taken = set(self.doc.nodes)
        rename: dict[str, str] = {}
        new_nodes = []
        for n in other.nodes.values():
            nid = n.id if n.id not in taken else self.doc.new_id(n.type, taken)
            taken.add(nid)
            rename[n.id] = nid
            new_nodes.append(
                Node(nid, n.type, copy.deepcopy(n.params), (n.pos[0] + dx, n.pos[1] + dy))
            )
        links = [
            Link((rename[ln.src[0]], ln.src[1]), (rename[ln.dst[0]], ln.dst[1]))
            for ln in other.links
            if ln.src[0] in rename and ln.dst[0] in rename
        ]
        self.undo_stack.push(
            AddNodesCmd(self.doc, new_nodes, links, f"insert {len(new_nodes)} nodes")
        )
        ids = [n.id for n in new_nodes]
        self.select_many(ids)
        return ids

    # ------------------------------------------------------------------ gestures from the view
    def user_relinked(self, disconnected, connected) -> None:
        removed = [self._link_of(a, b) for a, b in disconnected]
        added = [self._link_of(a, b) for a, b in connected]
        if not self._apply_links([ln for ln in removed if ln in self.doc.links], added):
            self.sync_view()  # put back any pipe the gesture detached

    def user_moved(self, node_data) -> None:
        moves = {}
        for view, prev in node_data.items():
            nid = self.node_id_of_view(view.id)
            if nid is not None:
                new = tuple(float(v) for v in view.xy_pos)
                moves[nid] = (self.doc.nodes[nid].pos or tuple(prev), new)
        if moves:
            self.undo_stack.push(MoveNodesCmd(self.doc, moves))

    def _apply_links(self, removed: list[Link], added: list[Link]) -> bool:
        """Check the re-wiring on a copy of the document, then push it as one command."""
        try:
            change = self.doc.copy().relink(removed, added)
        except LinkError as exc:
            self._warn(str(exc))
            return False
        if change.links_removed or change.links_added:
            text = "connect" if change.links_added else "disconnect"
            cmd = ChangeLinksCmd(self.doc, change.links_removed, change.links_added, text)
            self.undo_stack.push(cmd)
        return True

    def drop(self, mimedata: QMimeData, pos: QPoint | QPointF) -> None:
        """A palette node type or graph files (.json, snippet .png) dropped at scene ``pos``."""
        at = (float(pos.x()), float(pos.y()))
        if mimedata.hasFormat(MIME_TYPE):
            payload = bytes(mimedata.data(MIME_TYPE).data()).decode("utf-8", "replace")
            if payload.startswith(NODE_MIME_PREFIX):
                self.add_node(payload[len(NODE_MIME_PREFIX) :], at)
            return
        urls = mimedata.urls() if mimedata.hasUrls() else []
        if not urls:
            self._warn(
                "Nothing to open in what was dropped: drop graph files (.json, snippet .png), a "
                "Keras model or a PyTorch export, or a node from the palette",
                dialog=True,
            )
        for url in urls:
            path = url.toLocalFile()
            if not path:
                self._warn(
                    f"Only files on this computer can be dropped. Received: {url.toString()}",
                    dialog=True,
                )
                continue
            notes: list[str] = []
            try:
                other = nodes.load(path, notes)  # a graph, or a Keras / PyTorch model
            except Conv3DTStudioError as exc:
                self._warn(str(exc), dialog=True)
                continue
            for note in notes:  # what an import chose itself, e.g. 1 time step
                self._warn(note)
            self.insert_document(other, at)
            at = (at[0] + 60, at[1] + 60)

    # ------------------------------------------------------------------ following the document
    def _on_document_change(self, change: Change) -> None:
        for node in change.nodes if change.kind == REMOVED else ():
            self.run_errors.pop(node.id, None)
        self.sync_view()
        self._changed()

    # ------------------------------------------------------------------ view reconciliation
    def sync_view(self) -> None:
        """Make the NodeGraphQt view show exactly the document."""
        for nid in [i for i in self.views if i not in self.doc.nodes]:
            view = self.views.pop(nid)
            self.labels.pop(nid, None)
            self.thumbnails.pop(nid, None)  # a child of the node's item: removed with it
            self.graph.remove_node(view, push_undo=False)
        for nid, node in self.doc.nodes.items():
            view = self.views.get(nid)
            if view is None:
                view = self.graph.create_node(
                    node_identifier(node.type),
                    name=display_name(node),
                    selected=False,
                    pos=list(node.pos or (0.0, 0.0)),
                    push_undo=False,
                )
                self.views[nid] = view
                label = QGraphicsSimpleTextItem(view.view)
                label.setFont(QFont("DejaVu Sans Mono", 9))
                self.labels[nid] = label
            elif view.name() != display_name(node):
                view.set_name(display_name(node))
            if node.pos is not None and tuple(view.pos()) != tuple(node.pos):
                view.set_pos(*node.pos)
        self._sync_links()

    def _drawable_links(self) -> set[tuple[tuple[str, str], tuple[str, str]]]:
        """The document's links the view can draw, as (src, dst); ``_undrawn`` gets a message for
        each one it cannot. A damaged file can give a one-link port two links, and NodeGraphQt
        would draw the second by undrawing the first: the first is drawn, the others named."""
        wanted = set()
        shown: dict[tuple[str, str, str], Link] = {}  # (node, input/output, port) -> its link
        self._undrawn = []
        for ln in self.doc.links:
            a, b = self.views.get(ln.src[0]), self.views.get(ln.dst[0])
            if a is None or b is None:
                continue
            out, inp = a.outputs().get(ln.src[1]), b.inputs().get(ln.dst[1])
            if out is None or inp is None:
                continue
            ports = (
                ((ln.dst[0], "input", ln.dst[1]), inp),
                ((ln.src[0], "output", ln.src[1]), out),
            )
            single = [key for key, port in ports if not port.multi_connection()]
            taken = [key for key in single if key in shown]
            if taken:
                self._undrawn.append(_undrawn_message(ln, taken[0], shown[taken[0]]))
                continue
            shown.update(dict.fromkeys(single, ln))
            wanted.add((ln.src, ln.dst))
        return wanted

    def _sync_links(self) -> None:
        wanted = self._drawable_links()
        current = set()
        for nid, view in self.views.items():
            for pname, port in view.inputs().items():
                for other in port.connected_ports():
                    src = self.node_id_of_view(other.node().id)
                    current.add(((src, other.name()), (nid, pname)))
        for (s, sp), (d, dp) in current - wanted:
            self.views[d].inputs()[dp].disconnect_from(
                self.views[s].outputs()[sp], push_undo=False, emit_signal=False
            )
        for (s, sp), (d, dp) in wanted - current:
            self.views[s].outputs()[sp].connect_to(
                self.views[d].inputs()[dp], push_undo=False, emit_signal=False
            )
            self._color_pipes(d, dp)

    def _color_pipes(self, node_id: str, port_name: str) -> None:
        """Pipes take their port kind's colour (tensor blue, layer orange)."""
        nt = NODE_TYPES.get(self.doc.nodes[node_id].type)
        port = nt.input_port(port_name) if nt else None
        if port is None:
            return
        for pipe in self.views[node_id].inputs()[port_name].view.connected_pipes:
            pipe.color = (*PORT_COLORS[port.kind], 255)
            pipe.reset()

    def _changed(self) -> None:
        self.refresh()
        self.document_changed.emit()

    def refresh(self) -> None:
        """Validate (the memory a run would need included: an absurd size shows on its
        Prediction 6D at once); show shapes, problems (red + tooltip) and log new problems."""
        self.report = nodes.validate(self.doc)
        self.report.problems.extend(memory_problems(self.doc))
        for nid, view in self.views.items():
            node = self.doc.nodes[nid]
            nt = NODE_TYPES.get(node.type)
            problems = [p.message for p in self.report.problems_of(nid)]
            if nid in self.run_errors:
                problems.append(self.run_errors[nid])
            text = self._shape_text(nid)
            changed = changed_params_text(node)
            text = f"{text}\n{changed}" if changed else text
            label = self.labels[nid]
            label.setText(text if not problems else "⚠ " + _short(problems[0]))
            label.setBrush(QBrush(LABEL_ERROR_COLOR if problems else LABEL_COLOR))
            label.setPos(4, view.view.height + 4)
            self._place_thumbnail(nid)
            frozen = nt is not None and nt.frozen(node.params)
            if frozen and not problems:
                label.setText(text + "  ❄ frozen")
            color = (
                ERROR_COLOR
                if problems
                else FROZEN_COLOR
                if frozen
                else nt.color
                if nt
                else UNKNOWN_COLOR
            )
            if tuple(view.color()[:3]) != color:
                view.set_color(*color)
            tip = f"{display_name(node)} [{nid}]"
            if nt is not None:
                tip += f"\n{nt.help}"
            if text:
                tip += f"\nOutput: {text}"
            if frozen:
                tip += "\nFrozen (update=False): its weights do not change when training"
            if problems:
                tip += "\n\nProblems:\n" + "\n".join(f"• {p}" for p in problems)
            view.view.setToolTip(tip)
            self._tip_ports(nid, view)
        self._label_scaled_links()
        self._log_new_problems()
        self.problems_changed.emit(self.report)

    def _label_scaled_links(self) -> None:
        """Show a layer's lda_coeff on the link whose gradient it scales (into its wrapper's x)."""
        wanted: dict[str, float] = {}
        for td in self.doc.ids_with_role(nodes.WRAPPER):
            src = self.doc.upstream(td, "layer")
            conv = self.doc.nodes.get(src[0]) if src else None
            lda = conv.params.get("lda_coeff", 1.0) if conv is not None else 1.0
            if isinstance(lda, (int, float)) and lda != 1.0 and self.doc.upstream(td, "x"):
                wanted[td] = float(lda)
        for nid in [n for n in self.link_labels if n not in wanted]:
            item = self.link_labels.pop(nid)
            if item.scene() is not None:
                item.scene().removeItem(item)
        for nid, lda in wanted.items():
            view = self.views.get(nid)
            port = view.inputs().get("x") if view is not None else None
            pipes = port.view.connected_pipes if port is not None else []
            if not pipes:
                continue
            pipe = pipes[0]
            item = self.link_labels.get(nid)
            if item is None or item.parentItem() is not pipe:
                if item is not None and item.scene() is not None:
                    item.scene().removeItem(item)
                item = QGraphicsSimpleTextItem(pipe)
                item.setFont(QFont("DejaVu Sans Mono", 9))
                item.setBrush(QBrush(LDA_COLOR))
                self.link_labels[nid] = item
            item.setText(f"∇ × {lda:g}")
            item.setToolTip(
                f"lda_coeff {lda:g}: the gradient sent back along this link is multiplied by it"
            )
            mid = pipe.path().pointAtPercent(0.5)
            item.setPos(mid.x() - item.boundingRect().width() / 2, mid.y() - 18)

    def _tip_ports(self, node_id: str, view: BaseNode) -> None:
        """Each port's tooltip: its kind, and for a tensor the shape it carries with its layout
        ('x: tensor 2×2×[2]×8×8×3 channels_first')."""
        nt = NODE_TYPES.get(self.doc.nodes[node_id].type)
        if nt is None:
            return
        for ports, declared, upstream in (
            (view.inputs(), nt.inputs, True),
            (view.outputs(), nt.outputs, False),
        ):
            for port in declared:
                item = ports.get(port.name)
                if item is None:
                    continue
                tip = f"{port.name}: {port.kind}"
                if port.kind == nodes.TENSOR:
                    src = self.doc.upstream(node_id, port.name) if upstream else (node_id, "")
                    shape = self.report.shapes.get(src[0]) if src else None
                    if shape is not None and len(shape) == 6 and None not in shape:
                        cf = self.channels_first(src[0])
                        tip += " " + layout_text(tuple(shape), cf)
                    else:
                        tip += " (shape unknown until it is wired)"
                item.view.setToolTip(tip)

    def channels_first(self, node_id: str) -> bool:
        """The layout of ``node_id``'s output: its layer's data_format for a TimeDistributed,
        else that of the first layer reading it (channels_first when none does)."""
        if self.doc.role(node_id) == nodes.WRAPPER:
            layer = self.doc.upstream(node_id, "layer")
            params = self.doc.nodes[layer[0]].params if layer else {}
            return params.get("data_format", "channels_first") == "channels_first"
        for link in self.doc.downstream(node_id):
            if self.doc.role(link.dst[0]) == nodes.WRAPPER:
                return self.channels_first(link.dst[0])
        return True

    def port_tip(self, node_id: str, port: str) -> str:
        """The tooltip of ``node_id``'s port ``port`` (input or output)."""
        view = self.views[node_id]
        item = view.inputs().get(port) or view.outputs().get(port)
        return item.view.toolTip() if item is not None else ""

    def link_label(self, node_id: str) -> str:
        """The lda_coeff text on the link into ``node_id``'s x port ('' when none)."""
        item = self.link_labels.get(node_id)
        return item.text() if item is not None else ""

    def _shape_text(self, nid: str) -> str:
        node = self.doc.nodes[nid]
        shape = self.report.shapes.get(nid)
        if shape is not None:
            return fmt_shape(shape)
        nt = NODE_TYPES.get(node.type)
        return nt.caption(node.params) if nt else ""

    def set_thumbnail(self, node_id: str, image: QImage | None) -> None:
        """Show ``image`` (the live preview) under ``node_id``'s caption, scaled to fit
        :data:`THUMBNAIL_SIZE` with its pixels kept sharp; None removes it."""
        item = self.thumbnails.pop(node_id, None)
        if item is not None and item.scene() is not None:
            item.scene().removeItem(item)
        view = self.views.get(node_id)
        if image is None or view is None or image.isNull():
            return
        scale = THUMBNAIL_SIZE / max(image.width(), image.height())
        size = image.size() * scale
        pixmap = QPixmap.fromImage(image).scaled(size)  # nearest neighbour: voxels stay square
        item = QGraphicsPixmapItem(pixmap, view.view)
        item.setToolTip("Live preview: the first sample's first time step (middle slice)")
        self.thumbnails[node_id] = item
        self._place_thumbnail(node_id)

    def thumbnail(self, node_id: str) -> QImage | None:
        """The live preview shown under ``node_id``, if any."""
        item = self.thumbnails.get(node_id)
        return item.pixmap().toImage() if item is not None else None

    def _place_thumbnail(self, node_id: str) -> None:
        """Below the caption, whose height follows its lines."""
        item, label = self.thumbnails.get(node_id), self.labels.get(node_id)
        if item is not None and label is not None:
            item.setPos(4, label.pos().y() + label.boundingRect().height() + 4)

    def shape_text(self, node_id: str) -> str:
        """The text shown under a node (its output shape), for tests and tooltips."""
        return self.labels[node_id].text()

    def _log_new_problems(self) -> None:
        """Log problems as they appear, except those of nodes not wired to anything yet (a
        freshly dropped node is unfinished, not wrong: it shows its problem in red)."""
        wired = {end[0] for ln in self.doc.links for end in (ln.src, ln.dst)}
        problems = [p for p in self.report.problems if p.node is None or p.node in wired]
        now = {str(p) for p in problems} | set(self._undrawn)
        for text in sorted(now - self._logged_problems):
            self.message.emit("warning", text)
        self._logged_problems = now

    # ------------------------------------------------------------------ run errors
    def set_run_errors(self, errors: dict[str, str]) -> None:
        self.run_errors = {k: v for k, v in errors.items() if k in self.doc.nodes}
        self.refresh()

    # ------------------------------------------------------------------ selection and helpers
    def _on_selection(self, *_args) -> None:
        self.selection_changed.emit(self.selected_id())

    def selected_ids(self) -> list[str]:
        ids = (self.node_id_of_view(v.id) for v in self.graph.selected_nodes())
        return [i for i in ids if i is not None]

    def selected_id(self) -> str | None:
        ids = self.selected_ids()
        return ids[0] if ids else None

    def select(self, node_id: str | None) -> None:
        self.select_many([] if node_id is None else [node_id])

    def select_many(self, node_ids: Iterable[str]) -> None:
        self.graph.clear_selection()
        for nid in node_ids:
            if nid in self.views:
                self.views[nid].set_selected(True)
        self._on_selection()

    def item_at(self, at: tuple[float, float]) -> tuple[str | None, Link | None]:
        """The node (its id) or else the link drawn at scene position ``at``."""
        link = None
        for item in self.viewer.scene().items(QPointF(*at)):
            owner = item
            while owner is not None:  # a node's title and ports, a pipe's arrow: children
                view_id = getattr(owner, "id", None)
                node_id = self.node_id_of_view(view_id) if isinstance(view_id, str) else None
                if node_id is not None:
                    return node_id, None
                ends = getattr(owner, "input_port", None), getattr(owner, "output_port", None)
                if link is None and all(e is not None for e in ends):
                    link = self._link_of(*ends)
                owner = owner.parentItem()
        return None, link

    def view_center(self) -> tuple[float, float]:
        c = self.viewer.mapToScene(self.viewer.viewport().rect().center())
        return (c.x(), c.y())

    def fit(self) -> None:
        """Frame every node."""
        if self.views:
            self.viewer.zoom_to_nodes([v.view for v in self.views.values()])

    def node_id_of_view(self, view_id: str) -> str | None:
        """The document id of the node a NodeGraphQt view id shows."""
        return next((nid for nid, v in self.views.items() if v.id == view_id), None)

    def _link_of(self, a, b) -> Link:
        out, inp = (a, b) if a.port_type == "out" else (b, a)
        return Link(
            (self.node_id_of_view(out.node.id), out.name),
            (self.node_id_of_view(inp.node.id), inp.name),
        )

    def _warn(self, text: str, dialog: bool = False) -> None:
        self.message.emit("warning", text)
        if dialog and self._dialog is not None:
            self._dialog("Cannot import", text)


def _link_text(link: Link) -> str:
    return f"{link.src[0]}.{link.src[1]} -> {link.dst[0]}.{link.dst[1]}"


def _undrawn_message(link: Link, port: tuple[str, str, str], drawn: Link) -> str:
    node, end, name = port
    return (
        f"node `{node}`, {end} `{name}`: link {_link_text(link)} not drawn: the port shows only "
        f"one link ({_link_text(drawn)}); both stay in the graph"
    )


def _short(message: str, limit: int = 44) -> str:
    message = message.split(": ", 1)[-1] if message.startswith("node `") else message
    return message if len(message) <= limit else message[: limit - 1] + "…"


def _layout_missing(doc: GraphDocument, ids: list[str]) -> None:
    """Give nodes without a position one, in a row below the placed ones."""
    placed = [n.pos for n in doc.nodes.values() if n.pos is not None]
    y = max((p[1] for p in placed), default=-200.0) + 200.0
    x = 0.0
    for nid in ids:
        node = doc.nodes[nid]
        if node.pos is None:
            node.pos = (x, y)
            x += 260.0
