"""Undo and redo of every kind of edit: create, delete, move, connect, disconnect, property."""

from __future__ import annotations

import pytest

from conv3dt_studio import nodes


def _state(canvas):
    return canvas.doc.to_json()


def _view_links(canvas):
    out = set()
    for nid, view in canvas.views.items():
        for pname, port in view.inputs().items():
            for other in port.connected_ports():
                out.add((canvas.node_id_of_view(other.node().id), other.name(), nid, pname))
    return out


EDITS = {
    "create": lambda c: c.add_node("conv3d_transpose", (100.0, 400.0)),
    "delete": lambda c: c.delete_nodes(["time_distributed"]),
    "move": lambda c: c.move_node("data", (-300.0, 120.0)),
    "connect": lambda c: (
        c.disconnect("input", "y", "time_distributed", "x"),
        c.undo_stack.setClean(),
        c.connect("data", "data", "time_distributed", "x"),
    ),
    "disconnect": lambda c: c.disconnect("data", "data", "input", "x"),
    "property": lambda c: c.set_param("conv3d_transpose", "stride", [2, 2, 2]),
}


@pytest.mark.parametrize("kind", list(EDITS))
def test_undo_and_redo(window, kind):
    c = window.canvas
    EDITS[kind](c)
    before_index = c.undo_stack.cleanIndex()
    after = _state(c)
    after_links = _view_links(c)
    c.undo_stack.setIndex(before_index)  # back to the state before the edit
    undone = _state(c)
    assert undone != after
    assert {tuple(ln.src + ln.dst) for ln in c.doc.links} == _view_links(c)
    assert set(c.views) == set(c.doc.nodes)
    c.undo_stack.redo()
    assert _state(c) == after
    assert _view_links(c) == after_links
    assert set(c.views) == set(c.doc.nodes)
    for nid, node in c.doc.nodes.items():
        assert tuple(c.views[nid].pos()) == tuple(node.pos)


def test_undo_actions_drive_the_stack(window):
    c = window.canvas
    original = _state(c)
    c.add_node("data", (0.0, 500.0))
    c.move_node("input", (10.0, 10.0))
    window.action_undo.trigger()
    window.action_undo.trigger()
    assert _state(c) == original
    window.action_redo.trigger()
    assert "data_2" in c.doc.nodes


def test_moving_a_node_on_the_canvas_is_recorded(window):
    c = window.canvas
    view = c.views["prediction_6d"]
    old = tuple(view.pos())
    view.view.xy_pos = [old[0] + 50, old[1] + 30]
    c.viewer.moved_nodes.emit({view.view: list(old)})
    assert c.doc.nodes["prediction_6d"].pos == (old[0] + 50, old[1] + 30)
    c.undo_stack.undo()
    assert c.doc.nodes["prediction_6d"].pos == old
    assert tuple(view.pos()) == old


def test_undo_of_a_deleted_node_restores_its_links_and_params(window):
    c = window.canvas
    c.set_param("conv3d_transpose", "n_filters", 9)
    c.delete_nodes(["conv3d_transpose"])
    c.undo_stack.undo()
    assert c.doc.nodes["conv3d_transpose"].params["n_filters"] == 9
    assert nodes.Link(("conv3d_transpose", "layer"), ("time_distributed", "layer")) in c.doc.links
    assert c.shape_text("prediction_6d") == "2×2×9×10×10×5"
