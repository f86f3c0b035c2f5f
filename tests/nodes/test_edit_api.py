"""The document's Qt-free edit API: every edit is validated, returns what changed, and tells every
subscriber; a refused edit changes nothing and tells no one. Undo is replaying a Change backwards."""

from __future__ import annotations

import pytest

from conv3dt_studio.compute import ParameterError
from conv3dt_studio.nodes import GraphDocument, Link, LinkError
from conv3dt_studio.nodes.graph_document import (
    ADDED,
    MISSING,
    MOVED,
    PARAM,
    RELINKED,
    REMOVED,
    TRAINING,
)


@pytest.fixture
def events(doc):
    seen = []
    doc.subscribe(seen.append)
    return seen


def test_add_node_validates_and_tells_subscribers(doc, events):
    node = doc.add_node("conv3d_transpose", {"n_filters": 4}, pos=(1, 2))
    assert node.id == "conv3d_transpose_2" and doc.nodes[node.id].params["n_filters"] == 4
    (change,) = events
    assert change.kind == ADDED and [n.id for n in change.nodes] == [node.id]


def test_a_refused_edit_changes_nothing_and_tells_no_one(doc, events):
    before = doc.to_json()
    with pytest.raises(ParameterError) as err:
        doc.add_node("conv3d_transpose", {"n_filters": 0})
    assert err.value.param == "n_filters"
    with pytest.raises(ParameterError) as err:
        doc.set_param("conv3d_transpose", "size", [3, 3, 3, 3])
    assert err.value.param == "size"
    with pytest.raises(LinkError):
        doc.relink([], [Link(("data", "data"), ("time_distributed", "layer"))])
    assert doc.to_json() == before and events == []


def test_the_constraint_between_parameters_is_checked_once_with_one_message(doc):
    """output_padding < stride: the API, the document and the schema give the same message."""
    from conv3dt_studio.compute import Conv3DTranspose

    with pytest.raises(ParameterError) as api:
        Conv3DTranspose(stride=2, output_padding=2)
    doc.set_param("conv3d_transpose", "stride", 2)
    with pytest.raises(ParameterError) as edit:
        doc.set_param("conv3d_transpose", "output_padding", 2)
    assert api.value.param == edit.value.param == "output_padding"
    assert str(api.value) == str(edit.value)
    doc.set_param("conv3d_transpose", "output_padding", 1)
    with pytest.raises(ParameterError) as other:  # the constraint also guards the other side
        doc.set_param("conv3d_transpose", "stride", 1)
    assert other.value.param == "output_padding"


def test_set_param_reports_old_and_new_and_store_param_undoes_it(doc, events):
    doc.set_param("conv3d_transpose", "n_filters", 7)
    (change,) = events
    assert (change.kind, change.node, change.name) == (PARAM, "conv3d_transpose", "n_filters")
    assert (change.old, change.new) == (3, 7)
    doc.store_param(change.node, change.name, change.old)
    assert doc.nodes["conv3d_transpose"].params["n_filters"] == 3


def test_store_param_missing_drops_the_value(doc):
    doc.store_param("conv3d_transpose", "output_padding", MISSING)
    assert "output_padding" not in doc.nodes["conv3d_transpose"].params


def test_check_param_changes_nothing(doc, events):
    assert doc.check_param("conv3d_transpose", "size", 5) == [5, 5, 5]
    assert doc.nodes["conv3d_transpose"].params["size"] == [3, 3, 3] and events == []


def test_a_damaged_node_is_repaired_field_by_field(doc):
    doc.nodes["conv3d_transpose"].params["n_filters"] = -1  # as a damaged file holds it
    doc.set_param("conv3d_transpose", "size", 2)  # accepted although n_filters is invalid
    assert doc.nodes["conv3d_transpose"].params["size"] == [2, 2, 2]


def test_remove_nodes_takes_its_links_and_insert_puts_them_back(doc, events):
    before = doc.to_json()
    change = doc.remove_nodes(["time_distributed"])
    assert change.kind == REMOVED and len(change.links_removed) == 3
    assert "time_distributed" not in doc.nodes
    doc.insert_nodes(list(change.nodes), list(change.links_removed))
    assert sorted(map(str, doc.to_json()["links"])) == sorted(map(str, before["links"]))
    assert [e.kind for e in events] == [REMOVED, ADDED]


def test_insert_refuses_a_taken_id(doc, events):
    node = doc.new_node("data")
    assert node.id == "data_2" and "data_2" not in doc.nodes  # new_node adds nothing
    taken = doc.new_node("data", node_id="data_x")
    doc.insert_nodes([taken])
    with pytest.raises(ParameterError):
        doc.insert_nodes([taken])


def test_relink_replaces_what_fed_the_port_and_reports_both(doc, events):
    doc.add_node("input", {"shape": [2, 2, 8, 8, 3]}, node_id="input_2")
    doc.connect("data", "data", "input_2", "x")
    events.clear()
    change = doc.relink([], [Link(("input_2", "y"), ("time_distributed", "x"))])
    assert change.kind == RELINKED
    assert change.links_removed == (Link(("input", "y"), ("time_distributed", "x")),)
    assert change.links_added == (Link(("input_2", "y"), ("time_distributed", "x")),)
    doc.relink(list(change.links_added), list(change.links_removed), check=False)  # undo
    assert doc.upstream("time_distributed", "x") == ("input", "y")
    assert len(events) == 2


def test_a_cycle_is_refused(doc):
    with pytest.raises(LinkError, match="cycle"):
        doc.relink([], [Link(("prediction_6d", "y"), ("input", "x"))])


def test_move_nodes_reports_old_and_new_positions(doc, events):
    old = doc.nodes["data"].pos
    change = doc.move_nodes({"data": (5, 6)})
    assert change.kind == MOVED and change.positions == {"data": (old, (5.0, 6.0))}


def test_training_settings_are_validated(doc, events):
    change = doc.set_training_setting("epochs", 3)
    assert change.kind == TRAINING and doc.extras["training"]["epochs"] == 3
    with pytest.raises(ParameterError) as err:
        doc.set_training_setting("epochs", 0)
    assert err.value.param == "epochs"
    with pytest.raises(ParameterError):
        doc.set_training_setting("learning_rate", 0.1)
    assert len(events) == 1


def test_the_seed_setting(doc, events):
    doc.set_setting("seed", 5)
    assert doc.settings["seed"] == 5 and events[-1].new == 5
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ParameterError):
            doc.set_setting("seed", bad)


def test_unsubscribe_and_copies_have_no_listeners(doc):
    seen = []
    stop = doc.subscribe(seen.append)
    doc.copy().set_param("conv3d_transpose", "n_filters", 2)  # a copy tells no one
    stop()
    doc.set_param("conv3d_transpose", "n_filters", 2)
    assert seen == []


def test_documents_still_compare_by_content():
    a, b = GraphDocument(), GraphDocument()
    a.subscribe(lambda change: None)
    assert a == b
