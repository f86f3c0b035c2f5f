"""The graph document: nodes, parameters, port rules, JSON, schema, migration, atomic save."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conv3dt_studio import nodes
from conv3dt_studio.compute import ParameterError
from conv3dt_studio.nodes import graph_document as gd
from conv3dt_studio.nodes.examples import bundled
from conv3dt_studio.resources import EXAMPLES, SCHEMA_PATH

# ---------------------------------------------------------------------- nodes and parameters


def test_add_node_fills_defaults_and_stores_json_values():
    doc = nodes.GraphDocument()
    node = doc.add_node("conv3d_transpose", {"size": 5}, pos=(1, 2))
    assert node.id == "conv3d_transpose"
    assert node.params["size"] == [5, 5, 5]
    assert node.params["stride"] == [1, 1, 1]
    assert node.pos == (1.0, 2.0)


def test_new_ids_are_stable_strings():
    doc = nodes.GraphDocument()
    ids = [doc.add_node("input").id for _ in range(3)]
    assert ids == ["input", "input_2", "input_3"]


@pytest.mark.parametrize(
    ("type_id", "params", "needle"),
    [
        ("bogus", None, "Unknown node type 'bogus'"),
        ("conv3d_transpose", {"size": [1, 2, 3, 4]}, "`size`"),
        ("conv3d_transpose", {"n_filters": 0}, "`n_filters`"),
        ("conv3d_transpose", {"output_padding": 1}, "`output_padding`"),
        ("data", {"distribution": "cauchy"}, "`distribution`"),
        ("input", {"shape": []}, "`shape`"),
        ("prediction_6d", {"colour": "red"}, "Unknown parameter `colour`"),
    ],
)
def test_add_node_refuses_bad_values(type_id, params, needle):
    doc = nodes.GraphDocument()
    with pytest.raises(ParameterError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        doc.add_node(type_id, params)
    assert not doc.nodes


@pytest.mark.parametrize("node_id", ["1abc", "a b", "x/y", "-x"])
def test_add_node_refuses_bad_ids(node_id):
    doc = nodes.GraphDocument()
    with pytest.raises(ParameterError, match="Invalid node id"):
        doc.add_node("input", node_id=node_id)


def test_add_node_refuses_a_taken_id():
    doc = nodes.GraphDocument()
    doc.add_node("input", node_id="a")
    with pytest.raises(ParameterError, match="already used"):
        doc.add_node("data", node_id="a")


def test_set_param_validates_and_leaves_the_document_unchanged_on_error(doc):
    assert doc.set_param("conv3d_transpose", "size", 2) == [2, 2, 2]
    before = doc.dumps()
    for name, value in [("size", [1, 2, 3, 4]), ("stride", 0), ("output_padding", 1)]:
        with pytest.raises(ParameterError, match=f"`{name}`"):
            doc.set_param("conv3d_transpose", name, value)
    with pytest.raises(ParameterError, match="Unknown parameter `nope`"):
        doc.set_param("conv3d_transpose", "nope", 1)
    assert doc.dumps() == before


def test_params_returns_python_values(doc):
    assert doc.params("conv3d_transpose")["size"] == (3, 3, 3)


def test_remove_node_drops_its_links(doc):
    doc.remove_node("time_distributed")
    assert "time_distributed" not in doc.nodes
    assert all("time_distributed" not in (ln.src[0], ln.dst[0]) for ln in doc.links)


# ---------------------------------------------------------------------- port rules


def _parts():
    doc = nodes.GraphDocument()
    for t in ("data", "input", "conv3d_transpose", "time_distributed", "prediction_6d"):
        doc.add_node(t)
    doc.add_node("conv3d_transpose")
    doc.add_node("time_distributed")
    return doc


def test_allowed_connections():
    doc = _parts()
    doc.connect("data", "data", "input", "x")
    doc.connect("input", "y", "time_distributed", "x")
    doc.connect("conv3d_transpose", "layer", "time_distributed", "layer")
    doc.connect("time_distributed", "y", "time_distributed_2", "x")
    doc.connect("conv3d_transpose_2", "layer", "time_distributed_2", "layer")
    doc.connect("time_distributed_2", "y", "prediction_6d", "x")
    assert len(doc.links) == 6
    assert nodes.validate(doc).ok


@pytest.mark.parametrize(
    ("setup", "attempt", "needle"),
    [
        ([], ("conv3d_transpose", "layer", "input", "x"), "a tensor port accepts only a tensor"),
        ([], ("data", "data", "time_distributed", "layer"), "a layer port accepts only a layer"),
        ([("data", "data", "input", "x")], ("data", "data", "input", "x"), "already fed by"),
        (
            [("conv3d_transpose", "layer", "time_distributed", "layer")],
            ("conv3d_transpose", "layer", "time_distributed_2", "layer"),
            "one layer, one wrapper",
        ),
        (
            [("input", "y", "time_distributed", "x")],
            ("time_distributed", "y", "input", "x"),
            "cycle",
        ),
        ([], ("input", "y", "input", "x"), "cycle"),
        ([], ("ghost", "y", "input", "x"), "no node `ghost`"),
        ([], ("input", "out", "prediction_6d", "x"), "no output port `out`"),
        ([], ("input", "y", "prediction_6d", "z"), "no input port `z`"),
    ],
)
def test_refused_connections(setup, attempt, needle):
    doc = _parts()
    for link in setup:
        doc.connect(*link)
    links = list(doc.links)
    assert needle in doc.link_problem(*attempt)
    with pytest.raises(nodes.LinkError, match=needle.replace("(", r"\(")):
        doc.connect(*attempt)
    assert doc.links == links


def test_replace_swaps_the_feeding_link():
    doc = _parts()
    doc.add_node("data")
    doc.connect("data", "data", "input", "x")
    doc.connect("data_2", "data", "input", "x", replace=True)
    assert doc.upstream("input", "x") == ("data_2", "data")
    assert len(doc.links) == 1


def test_disconnect(doc):
    doc.disconnect("data", "data", "input", "x")
    assert doc.upstream("input", "x") is None


# ---------------------------------------------------------------------- JSON


def test_json_round_trip(doc, tmp_path):
    doc.settings["seed"] = 7
    path = tmp_path / "g.json"
    doc.save(path)
    again = nodes.load(path)
    assert again.to_json() == doc.to_json()
    assert again.dumps() == path.read_text(encoding="utf-8")


def test_json_form(doc):
    data = json.loads(doc.dumps())
    assert data["format"] == "conv3dt-studio/graph" and data["version"] == 1
    assert {"from": ["conv3d_transpose", "layer"], "to": ["time_distributed", "layer"]} in data[
        "links"
    ]
    node = data["nodes"][0]
    assert set(node) == {"id", "type", "params", "ui"}


def test_ui_is_optional_and_extras_survive(doc):
    data = doc.to_json()
    for node in data["nodes"]:
        node.pop("ui")
    data["training"] = {"epochs": 3}
    again = nodes.from_json(data)
    assert all(n.pos is None for n in again.nodes.values())
    assert again.to_json()["training"] == {"epochs": 3}


def test_copy_is_independent(doc):
    other = doc.copy()
    other.set_param("conv3d_transpose", "n_filters", 9)
    assert doc.nodes["conv3d_transpose"].params["n_filters"] == 3


def test_bad_params_are_kept_for_validation_not_dropped(doc):
    data = doc.to_json()
    data["nodes"][2]["params"]["size"] = [1, 2, 3, 4]
    again = nodes.from_json(data)
    assert again.nodes["conv3d_transpose"].params["size"] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d.pop("format"), "not a Conv3DT Studio graph"),
        (lambda d: d.update(format="other"), "not a Conv3DT Studio graph"),
        (lambda d: d.update(version="1"), "`version` must be a positive integer"),
        (lambda d: d.update(version=0), "`version` must be a positive integer"),
        (lambda d: d.update(version=99), "newer Conv3DT Studio"),
        (lambda d: d.pop("nodes"), "'nodes' is a required property"),
        (lambda d: d["nodes"][0].update(id="1bad"), "at `nodes/0/id`"),
        (lambda d: d["links"][0].update(to=["x"]), "at `links/0/to`"),
        (lambda d: d.update(colour="red"), "Additional properties"),
        (lambda d: d["nodes"].append(dict(d["nodes"][0])), "node id `data` appears twice"),
    ],
)
def test_structural_errors(doc, mutate, needle):
    data = doc.to_json()
    mutate(data)
    with pytest.raises(nodes.DocumentError, match=needle.replace("(", r"\(")):
        nodes.from_json(data, source="g.json")


def test_truncated_json_is_a_document_error(doc):
    text = doc.dumps()[:50]
    with pytest.raises(nodes.DocumentError, match="g.json: not valid JSON"):
        nodes.loads(text, source="g.json")


def test_top_level_must_be_an_object():
    with pytest.raises(nodes.DocumentError, match="expected a JSON object"):
        nodes.loads("[1, 2]")


def test_load_missing_file(tmp_path):
    with pytest.raises(nodes.FileError, match="does not exist"):
        nodes.load(tmp_path / "nope.json")


# ---------------------------------------------------------------------- schema


def test_schema_file_equals_the_generated_schema():
    on_disk = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert on_disk == gd.document_json_schema(), (
        "run `python scripts/regenerate_resources.py` to refresh it"
    )


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_bundled_examples_pass_the_schema(path):
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    data = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(data)
    for node in data["nodes"]:
        node_schema = schema["$defs"][f"{node['type']}_params"]
        jsonschema.Draft202012Validator(node_schema).validate(node["params"])


@pytest.mark.parametrize("name", sorted(bundled()))
def test_bundled_example_files_match_their_builders(name):
    on_disk = nodes.load(EXAMPLES / f"{name}.json")
    assert on_disk.to_json() == bundled()[name].to_json()


def test_default_document_is_the_toolkit_example():
    assert nodes.default_document().to_json() == nodes.load(nodes.DEFAULT_EXAMPLE).to_json()


# ---------------------------------------------------------------------- migration


def test_migration_hook_runs_from_version_n_to_n_plus_1(doc, monkeypatch):
    def v1_to_v2(data):
        for node in data["nodes"]:
            if node["type"] == "conv3d_transpose":
                node["params"]["n_filters"] = 4
        return data

    monkeypatch.setattr(gd, "VERSION", 2)
    monkeypatch.setitem(gd.MIGRATIONS, 1, v1_to_v2)
    data = doc.to_json()
    data["version"] = 1
    migrated = gd.migrate(data)
    assert migrated["version"] == 2
    assert data["nodes"][2]["params"]["n_filters"] == 3  # the input is not modified
    again = nodes.from_json(doc.to_json() | {"version": 1})
    assert again.nodes["conv3d_transpose"].params["n_filters"] == 4


def test_missing_migration_is_a_document_error(doc, monkeypatch):
    monkeypatch.setattr(gd, "VERSION", 3)
    monkeypatch.setitem(gd.MIGRATIONS, 1, lambda d: d)
    with pytest.raises(nodes.DocumentError, match="no migration from format version 2"):
        gd.migrate(doc.to_json() | {"version": 1})


# ---------------------------------------------------------------------- atomic save


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_atomic_save_keeps_the_old_file_on_failure(doc, tmp_path, monkeypatch, failing):
    path = tmp_path / "g.json"
    doc.save(path)
    before = path.read_bytes()
    doc.set_param("conv3d_transpose", "n_filters", 8)

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, boom)
    with pytest.raises(nodes.FileError, match="Cannot save .*No space left on device"):
        doc.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["g.json"]  # no temporary file left


def test_atomic_save_keeps_the_old_file_on_interrupt(doc, tmp_path, monkeypatch):
    path = tmp_path / "g.json"
    doc.save(path)
    before = path.read_bytes()

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        doc.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert len(list(tmp_path.iterdir())) == 1


def test_save_into_a_missing_folder(doc, tmp_path):
    with pytest.raises(nodes.FileError, match="does not exist"):
        doc.save(tmp_path / "nope" / "g.json")


def test_the_documented_example_is_a_valid_graph():
    import re

    doc_md = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
    assert doc_md.is_file(), "docs/cli.md documents the format"
    block = re.search(r"```json\n(.*?)```", doc_md.read_text(encoding="utf-8"), re.S).group(1)
    report = nodes.validate(nodes.loads(block, source="docs/cli.md"))
    assert report.ok and report.shapes["prediction_6d"] == (10, 6, 3, 66, 66, 5)


def test_an_unexpected_failure_while_loading_is_one_document_error(tmp_path, monkeypatch):
    path = tmp_path / "g.json"
    nodes.default_document().save(path)

    def broken(*_args, **_kwargs):
        raise KeyError("a library's own failure")

    monkeypatch.setattr(gd, "from_json", broken)
    with pytest.raises(nodes.DocumentError) as err:
        nodes.load(path)
    assert str(err.value) == (
        f'{path}: cannot be read as a graph: KeyError: "a library\'s own failure"'
    )
