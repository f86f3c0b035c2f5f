"""Files: export JSON and open it elsewhere, save (atomic), recent files, closing with changes."""

from __future__ import annotations

import json

import pytest

from conv3dt_studio import nodes


def test_export_json_then_open_in_a_new_window_gives_the_same_document(
    window, make_window, tmp_path
):
    window.canvas.set_param("conv3d_transpose", "n_filters", 4)
    window.canvas.move_node("data", (-77.0, 33.0))
    window.dialogs.save_paths.append(str(tmp_path / "exported.json"))
    window.action_export_json.trigger()
    other = make_window(nodes.GraphDocument())
    other.dialogs.open_paths.append(str(tmp_path / "exported.json"))
    other.action_open.trigger()
    assert other.canvas.doc.to_json() == window.canvas.doc.to_json()
    assert other.canvas.shape_text("prediction_6d") == window.canvas.shape_text("prediction_6d")
    assert window.isWindowModified()  # exporting a copy does not save the document


def test_import_adds_the_nodes_to_the_current_graph(window, tmp_path):
    path = tmp_path / "g.json"
    window.canvas.doc.save(path)
    window.dialogs.open_paths.append(str(path))
    window.action_import.trigger()
    assert len(window.canvas.doc.nodes) == 10
    assert "conv3d_transpose_2" in window.canvas.doc.nodes
    window.action_undo.trigger()
    assert len(window.canvas.doc.nodes) == 5


def test_save_writes_json_and_clears_the_modified_mark(window, tmp_path):
    path = tmp_path / "saved.json"
    window.canvas.set_param("conv3d_transpose", "n_filters", 6)
    window.dialogs.save_paths.append(str(path))
    window.action_save.trigger()
    assert nodes.load(path).to_json() == window.canvas.doc.to_json()
    assert not window.isWindowModified()
    assert window.windowTitle().startswith("saved.json")
    window.canvas.set_param("conv3d_transpose", "n_filters", 7)
    window.action_save.trigger()  # no dialog now: same file
    assert json.loads(path.read_text())["nodes"][2]["params"]["n_filters"] == 7
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_save_into_a_missing_folder_shows_a_message(window, tmp_path):
    window.dialogs.save_paths.append(str(tmp_path / "no" / "such" / "g.json"))
    assert not window.save_as()
    assert window.dialogs.messages and "does not exist" in window.dialogs.messages[0][1]


def test_recent_files_are_remembered(window, make_window, tmp_path):
    path = tmp_path / "r.json"
    window.canvas.doc.save(path)
    window.open_path(path)
    other = make_window()
    assert str(path.resolve()) in other.recent_menu.paths()
    assert [a.text() for a in other.recent_menu.actions()][0] == str(path.resolve())


def test_open_a_bad_file_shows_a_message_and_keeps_the_graph(window, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    before = window.canvas.doc.to_json()
    assert not window.open_path(bad)
    assert "not valid JSON" in window.dialogs.messages[-1][1]
    assert window.canvas.doc.to_json() == before


def test_closing_with_unsaved_changes_asks(window):
    window.canvas.move_node("data", (1.0, 2.0))
    window.dialogs.save_changes_answer = "cancel"
    assert not window.close()
    assert window.dialogs.save_changes_asked == 1
    window.dialogs.save_changes_answer = "discard"
    assert window.close()


def test_new_asks_before_dropping_changes(window):
    window.canvas.move_node("data", (1.0, 2.0))
    window.dialogs.save_changes_answer = "cancel"
    window.action_new.trigger()
    assert len(window.canvas.doc.nodes) == 5
    window.dialogs.save_changes_answer = "discard"
    window.action_new.trigger()
    assert window.canvas.doc.nodes == {}


def _two_links_into_one_port(make_doc, tmp_path, port: str):
    """A hand-damaged file: a second link into the Time Distributed's one-link `x` input, or out
    of the Conv3DTranspose's one-link `layer` output."""
    doc = make_doc()
    if port == "input":
        extra = nodes.Link(("data", "data"), ("time_distributed", "x"))
    else:
        doc.add_node("time_distributed", node_id="time_distributed_2", pos=(600.0, 300.0))
        extra = nodes.Link(("conv3d_transpose", "layer"), ("time_distributed_2", "layer"))
    doc.links.append(extra)
    path = tmp_path / "damaged.json"
    doc.save(path)
    return path, extra


def _drawn_into(window, node_id: str, port: str) -> list[tuple[str, str]]:
    """The (node, output port) pairs the canvas shows connected to ``node_id``'s input."""
    ports = window.canvas.views[node_id].inputs()[port].connected_ports()
    return [(window.canvas.node_id_of_view(p.node().id), p.name()) for p in ports]


@pytest.mark.parametrize(
    ("port", "line", "node", "problem"),
    [
        (
            "input",
            "node `time_distributed`, input `x`: link data.data -> time_distributed.x not drawn: "
            "the port shows only one link (input.y -> time_distributed.x); both stay in the graph",
            "time_distributed",
            "input port fed by more than one link",
        ),
        (
            "output",
            "node `conv3d_transpose`, output `layer`: link conv3d_transpose.layer -> "
            "time_distributed_2.layer not drawn: the port shows only one link "
            "(conv3d_transpose.layer -> time_distributed.layer); both stay in the graph",
            "conv3d_transpose",
            "one layer can feed only one TimeDistributed",
        ),
    ],
)
def test_a_link_the_canvas_cannot_draw_is_named_in_the_log(
    window, make_doc, tmp_path, port, line, node, problem
):
    path, extra = _two_links_into_one_port(make_doc, tmp_path, port)
    assert window.open_path(path)
    (logged,) = [text for text in window.log.lines if "not drawn" in text]
    assert logged.endswith(f"[warning] {line}")
    assert problem in window.canvas.views[node].view.toolTip()
    assert extra in window.canvas.doc.links


def test_the_first_of_two_links_stays_drawn_and_the_file_keeps_both(window, make_doc, tmp_path):
    path, extra = _two_links_into_one_port(make_doc, tmp_path, "input")
    window.open_path(path)
    for x in (1.0, 2.0):  # every edit re-draws the links: the same one must stay
        window.canvas.move_node("data", (x, 0.0))
        assert _drawn_into(window, "time_distributed", "x") == [("input", "y")]
    assert sum("not drawn" in text for text in window.log.lines) == 1
    window.save()
    assert extra in nodes.load(path).links
