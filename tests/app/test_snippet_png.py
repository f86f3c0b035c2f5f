"""Snippet PNGs: export (picture + embedded JSON), drop onto a canvas, offscreen rendering."""

from __future__ import annotations

import json
import types

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QImage

from conv3dt_studio import nodes
from conv3dt_studio.app.editor import snippet_export
from conv3dt_studio.nodes.snippet import read_graph_text


def _drop_files(window, paths, at=(100.0, 100.0), mime=None):
    viewer = window.canvas.viewer
    if mime is None:
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(
        QPointF(viewer.mapFromScene(QPointF(*at))),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    viewer.dropEvent(event)


def _nodes_and_links(doc):
    return (
        sorted((n.id, n.type, sorted(n.params.items())) for n in doc.nodes.values()),
        sorted(doc.links, key=str),
    )


def test_snippet_export_then_drop_recreates_identical_nodes(window, make_window, tmp_path):
    path = tmp_path / "snippet.png"
    window.canvas.set_param("conv3d_transpose", "stride", [2, 2, 2])
    window.canvas.select(None)
    window.dialogs.save_paths.append(str(path))
    window.action_export_snippet.trigger()
    image = QImage(str(path))
    assert not image.isNull() and image.width() > 300 and image.height() > 150
    other = make_window(nodes.GraphDocument())
    _drop_files(other, [path], at=(400.0, 300.0))
    assert _nodes_and_links(other.canvas.doc) == _nodes_and_links(window.canvas.doc)
    xs = [n.pos[0] for n in other.canvas.doc.nodes.values()]
    ys = [n.pos[1] for n in other.canvas.doc.nodes.values()]
    assert abs(min(xs) - 400) <= 2 and abs(min(ys) - 300) <= 2  # placed at the drop point
    assert other.canvas.shape_text("prediction_6d") == window.canvas.shape_text("prediction_6d")


def test_snippet_of_the_selection_holds_only_those_nodes(window, tmp_path):
    path = tmp_path / "sel.png"
    window.canvas.select("conv3d_transpose")
    window.canvas.views["time_distributed"].set_selected(True)
    assert window.export_snippet(str(path))
    doc = nodes.loads(read_graph_text(path.read_bytes()))
    assert sorted(doc.nodes) == ["conv3d_transpose", "time_distributed"]
    assert len(doc.links) == 1
    assert window.canvas.views["data"].view.isVisible()  # hidden only while rendering


def test_dropping_a_json_file_adds_its_nodes_with_fresh_ids(window, tmp_path):
    path = tmp_path / "g.json"
    window.canvas.doc.save(path)
    _drop_files(window, [path])
    assert "time_distributed_2" in window.canvas.doc.nodes
    assert nodes.Link(("input_2", "y"), ("time_distributed_2", "x")) in window.canvas.doc.links


def test_a_png_without_a_graph_gets_a_clear_message(window, tmp_path):
    path = tmp_path / "plain.png"
    img = QImage(8, 8, QImage.Format.Format_RGB32)
    img.fill(0)
    img.save(str(path))
    before = window.canvas.doc.to_json()
    _drop_files(window, [path])
    assert window.canvas.doc.to_json() == before
    assert "without an embedded Conv3DT Studio graph" in window.dialogs.messages[-1][1]


def test_a_drop_with_nothing_to_open_says_so(window):
    before = window.canvas.doc.to_json()
    web = QMimeData()
    web.setUrls([QUrl("http://example.com/graph.json")])
    _drop_files(window, [], mime=web)
    assert "Only files on this computer" in window.dialogs.messages[-1][1]
    assert "http://example.com/graph.json" in window.dialogs.messages[-1][1]
    text = QMimeData()
    text.setText(json.dumps(before))  # a graph's JSON as text, not a file
    _drop_files(window, [], mime=text)
    assert "Nothing to open in what was dropped" in window.dialogs.messages[-1][1]
    assert window.canvas.doc.to_json() == before and len(window.dialogs.messages) == 2


def test_snippet_command_renders_offscreen(tmp_path, qapp):
    graph = tmp_path / "g.json"
    nodes.default_document().save(graph)
    out = tmp_path / "g.png"
    args = types.SimpleNamespace(graph=str(graph), output=str(out), force=False)
    assert snippet_export.main(args) == 0
    doc = nodes.load(out)
    assert doc.to_json()["nodes"] == nodes.default_document().to_json()["nodes"]
    assert snippet_export.main(args) == 2  # exists, no --force: bad input, as every command
    args.force = True
    assert snippet_export.main(args) == 0


def test_snippet_command_reports_a_bad_graph(tmp_path, qapp, capsys):
    args = types.SimpleNamespace(
        graph=str(tmp_path / "missing.json"), output=str(tmp_path / "o.png")
    )
    assert snippet_export.main(args) == 2
    assert "does not exist" in capsys.readouterr().err


def test_snippet_command_into_a_missing_folder_is_bad_input(tmp_path, qapp, capsys):
    from conv3dt_studio.app import cli

    graph = tmp_path / "g.json"
    nodes.default_document().save(graph)
    out = tmp_path / "nodir" / "x.png"
    assert cli.main(["snippet", str(graph), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert (
        err == f"conv3dt-studio: error: cannot save `{out}`: folder `{out.parent}` does not exist\n"
    )


def test_snippet_command_adds_png_to_a_name_without_extension(tmp_path, qapp, capsys):
    from conv3dt_studio.app import cli

    graph = tmp_path / "g.json"
    nodes.default_document().save(graph)
    assert cli.main(["snippet", str(graph), "-o", str(tmp_path / "out_noext")]) == 0
    assert not (tmp_path / "out_noext").exists()
    assert (
        nodes.load(tmp_path / "out_noext.png").to_json()["nodes"]
        == (nodes.default_document().to_json()["nodes"])
    )
    assert f"wrote {tmp_path / 'out_noext.png'}" in capsys.readouterr().out
