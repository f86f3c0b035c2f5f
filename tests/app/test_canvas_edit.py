"""Building graphs on the canvas: nodes, typed connections, drops from the palette."""

from __future__ import annotations

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt
from PySide6.QtGui import QDropEvent

from conv3dt_studio import nodes
from conv3dt_studio.app.editor.canvas import NODE_MIME_PREFIX
from conv3dt_studio.nodes import GraphDocument

EXAMPLE_LINKS = [
    ("data", "data", "input", "x"),
    ("input", "y", "time_distributed", "x"),
    ("conv3d_transpose", "layer", "time_distributed", "layer"),
    ("time_distributed", "y", "prediction_6d", "x"),
]


def _structure(doc: GraphDocument):
    return (
        sorted((n.id, n.type, sorted(doc.params(n.id).items())) for n in doc.nodes.values()),
        sorted(doc.links, key=str),
    )


def test_build_the_example_by_creating_and_connecting_nodes(make_window):
    w = make_window(GraphDocument())
    c = w.canvas
    for i, type_id in enumerate(
        ["data", "input", "conv3d_transpose", "time_distributed", "prediction_6d"]
    ):
        assert c.add_node(type_id, (i * 250.0, 0.0)) == type_id
    for link in EXAMPLE_LINKS:
        assert c.connect(*link)
    assert _structure(c.doc) == _structure(nodes.default_document())
    assert c.report.ok
    assert c.shape_text("prediction_6d") == "10×6×3×66×66×5"
    assert len(c.views["time_distributed"].inputs()["layer"].connected_ports()) == 1


def test_shapes_follow_links(window):
    c = window.canvas
    assert c.shape_text("time_distributed") == "2×2×3×10×10×5"
    c.disconnect("input", "y", "time_distributed", "x")
    assert "missing link" in c.shape_text("time_distributed")
    assert c.views["time_distributed"].color()[:3] == (150, 36, 40)  # red
    assert "missing link" in c.views["time_distributed"].view.toolTip()
    assert "missing link" in window.log.text()


def test_wrong_kind_connection_is_refused(window):
    c = window.canvas
    before = list(c.doc.links)
    c.disconnect("conv3d_transpose", "layer", "time_distributed", "layer")
    assert not c.connect("data", "data", "time_distributed", "layer")
    assert c.doc.links == [ln for ln in before if ln.src[0] != "conv3d_transpose"]
    assert "a layer port accepts only a layer" in window.log.text()
    assert c.views["time_distributed"].inputs()["layer"].connected_ports() == []


def test_wrong_kind_drag_on_the_canvas_is_refused(window):
    """The viewer's connection gesture goes through the port rules, not NodeGraphQt's model."""
    c = window.canvas
    out = c.views["data"].outputs()["data"].view
    inp = c.views["time_distributed"].inputs()["layer"].view
    c.viewer.connection_changed.emit([], [(out, inp)])
    assert c.views["data"].outputs()["data"].connected_ports() == [c.views["input"].inputs()["x"]]
    assert nodes.Link(("data", "data"), ("time_distributed", "layer")) not in c.doc.links


def test_drag_connection_on_the_canvas_updates_the_document(window):
    c = window.canvas
    c.disconnect("input", "y", "time_distributed", "x")
    out = c.views["input"].outputs()["y"].view
    inp = c.views["time_distributed"].inputs()["x"].view
    c.viewer.connection_changed.emit([], [(inp, out)])
    assert nodes.Link(("input", "y"), ("time_distributed", "x")) in c.doc.links
    assert c.report.ok


def test_cycle_is_refused(window):
    c = window.canvas
    assert not c.connect("prediction_6d", "y", "input", "x")
    assert "cycle" in window.log.text()


def centre(canvas, node_id):
    rect = canvas.views[node_id].view.sceneBoundingRect()
    return rect.center().x(), rect.center().y()


def test_palette_drop_centres_the_node_on_the_drop_point_selected(window):
    c = window.canvas
    mime = QMimeData()
    from NodeGraphQt.constants import MIME_TYPE

    mime.setData(MIME_TYPE, f"{NODE_MIME_PREFIX}conv3d_transpose".encode())
    drop = QDropEvent(
        QPointF(c.viewer.mapFromScene(QPointF(300, 500))),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    c.viewer.dropEvent(drop)
    x, y = centre(c, "conv3d_transpose_2")
    assert abs(x - 300) <= 2 and abs(y - 500) <= 2
    assert c.selected_ids() == ["conv3d_transpose_2"]
    assert c.views["conv3d_transpose_2"].name() == "Conv3DTranspose 2"


def test_palette_double_click_adds_at_the_view_centre(window):
    palette = window.palette
    item = palette.items["prediction_6d"]
    palette.tree.itemDoubleClicked.emit(item, 0)
    x, y = centre(window.canvas, "prediction_6d_2")
    cx, cy = window.canvas.view_center()
    assert abs(x - cx) < 1 and abs(y - cy) < 1


def test_palette_lists_every_node_type_by_category(window):
    assert set(window.palette.items) == set(nodes.NODE_TYPES)
    mime = window.palette.tree.mimeData([window.palette.items["loss"]])
    assert mime.formats()


def test_delete_action_removes_the_selection(window):
    c = window.canvas
    c.select("conv3d_transpose")
    window.action_delete.trigger()
    assert "conv3d_transpose" not in c.doc.nodes
    assert "conv3d_transpose" not in c.views
    assert all("conv3d_transpose" not in (ln.src[0], ln.dst[0]) for ln in c.doc.links)


def test_drop_point_of_a_real_drop_event_is_in_scene_coordinates(window):
    assert isinstance(window.canvas.viewer.mapToScene(QPoint(0, 0)).x(), float)


def test_tab_search_choice_creates_the_node_through_the_document(window):
    """The Tab search menu (modal, so not opened offscreen) reports its choice this way."""
    from conv3dt_studio.app.editor.canvas import node_identifier

    window.canvas.graph._on_search_triggered(node_identifier("loss"), (40.0, 600.0))
    x, y = centre(window.canvas, "loss")
    assert abs(x - 40.0) < 1 and abs(y - 600.0) < 1
    assert window.canvas.undo_stack.canUndo()


def test_renaming_on_the_canvas_keeps_the_id_derived_name(window):
    view = window.canvas.views["input"]
    view.set_name("something else")
    window.canvas.viewer.node_name_changed.emit(view.id, "something else")
    assert window.canvas.views["input"].name() == "Input"


def _drag(viewer, start, end, steps: int = 10) -> None:
    from PySide6.QtTest import QTest

    port = viewer.viewport()
    QTest.mousePress(port, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for i in range(1, steps + 1):
        QTest.mouseMove(port, start + (end - start) * (i / steps))
    QTest.mouseRelease(port, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)


def _port_point(canvas, port):
    return canvas.viewer.mapFromScene(port.view.sceneBoundingRect().center())


def test_real_mouse_gestures_connect_refuse_and_move(make_window, qtbot):
    from PySide6.QtTest import QTest

    w = make_window(nodes.default_document())
    w.resize(1400, 900)
    QTest.qWaitForWindowExposed(w)
    c = w.canvas
    c.disconnect("input", "y", "time_distributed", "x")
    c.disconnect("conv3d_transpose", "layer", "time_distributed", "layer")
    td = c.views["time_distributed"]
    _drag(
        c.viewer, _port_point(c, c.views["input"].outputs()["y"]), _port_point(c, td.inputs()["x"])
    )
    assert nodes.Link(("input", "y"), ("time_distributed", "x")) in c.doc.links
    _drag(
        c.viewer,
        _port_point(c, c.views["data"].outputs()["data"]),
        _port_point(c, td.inputs()["layer"]),
    )
    assert c.doc.upstream("time_distributed", "layer") is None  # tensor -> layer refused
    assert td.inputs()["layer"].connected_ports() == []
    old = c.doc.nodes["prediction_6d"].pos
    centre = c.viewer.mapFromScene(c.views["prediction_6d"].view.sceneBoundingRect().center())
    _drag(c.viewer, centre, centre + QPoint(50, 25), steps=5)
    assert c.doc.nodes["prediction_6d"].pos[0] > old[0]
    assert w.properties.node_id == "prediction_6d"  # the click selected it
    c.undo_stack.undo()
    assert c.doc.nodes["prediction_6d"].pos == old


def test_tab_search_lists_only_catalogue_types(window, monkeypatch):
    """The search menu itself is modal, so it is replaced here by a recorder."""
    viewer = window.canvas.viewer
    seen = {}
    monkeypatch.setattr(viewer, "underMouse", lambda: True)
    monkeypatch.setattr(viewer, "tab_search_set_nodes", lambda names: seen.update(names))
    monkeypatch.setattr(viewer, "tab_search_toggle", lambda: seen.setdefault("shown", True))
    window.action_node_search.trigger()
    assert seen.pop("shown") is True
    assert sorted(seen) == sorted(t.title for t in nodes.NODE_TYPES.values())


def test_set_param_on_an_unknown_parameter_or_node_is_a_message(window):
    c = window.canvas
    assert "Unknown parameter `bogus`" in c.set_param("conv3d_transpose", "bogus", 1)
    assert c.set_param("nope", "size", 1) == "No node `nope` in the graph"


def test_moving_a_node_to_where_it_is_records_nothing(window):
    c = window.canvas
    pos = c.doc.nodes["data"].pos
    c.move_node("data", pos)
    assert c.undo_stack.count() == 0 and not window.isWindowModified()
