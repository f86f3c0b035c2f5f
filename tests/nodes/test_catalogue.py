"""The node catalogue: every node type, its ports, version and parameter schema."""

from __future__ import annotations

import pytest

from conv3dt_studio.compute import CONV3D_TRANSPOSE_SCHEMA
from conv3dt_studio.nodes import LAYER, NODE_TYPE_IDS, NODE_TYPES, TENSOR, categories

# type id -> (inputs, outputs) as (name, kind) pairs
PORTS = {
    "data": ((), (("data", TENSOR),)),
    "resample": ((("x", TENSOR),), (("data", TENSOR),)),
    "input": ((("x", TENSOR),), (("y", TENSOR),)),
    "conv3d_transpose": ((), (("layer", LAYER),)),
    "time_distributed": ((("x", TENSOR), ("layer", LAYER)), (("y", TENSOR),)),
    "prediction_6d": ((("x", TENSOR),), (("y", TENSOR),)),
    "target": ((), (("data", TENSOR),)),
    "loss": ((("prediction", TENSOR), ("target", TENSOR)), ()),
}


def test_catalogue_lists_every_node_type():
    assert set(NODE_TYPE_IDS) == set(PORTS)


@pytest.mark.parametrize("type_id", sorted(PORTS))
def test_ports_and_kinds(type_id):
    t = NODE_TYPES[type_id]
    inputs, outputs = PORTS[type_id]
    assert tuple((p.name, p.kind) for p in t.inputs) == inputs
    assert tuple((p.name, p.kind) for p in t.outputs) == outputs


@pytest.mark.parametrize("type_id", sorted(PORTS))
def test_stable_id_version_and_valid_defaults(type_id):
    t = NODE_TYPES[type_id]
    assert t.type_id == type_id
    assert isinstance(t.version, int) and t.version >= 1
    assert t.schema.validate({})  # the defaults are valid
    assert t.title and t.help and t.category


@pytest.mark.parametrize("type_id", sorted(PORTS))
def test_port_lookup(type_id):
    t = NODE_TYPES[type_id]
    for p in t.inputs:
        assert t.input_port(p.name) is p
    for p in t.outputs:
        assert t.output_port(p.name) is p
    assert t.input_port("nope") is None and t.output_port("nope") is None


def test_conv_node_carries_the_layer_cluster_declared_once_in_compute():
    names = NODE_TYPES["conv3d_transpose"].schema.names()
    assert names[: len(CONV3D_TRANSPOSE_SCHEMA.params)] == CONV3D_TRANSPOSE_SCHEMA.names()
    assert names[-1] == "name"


def test_categories_follow_the_toolkit_workflow():
    cats = categories()
    assert list(cats) == sorted(cats)
    assert [t.type_id for t in cats["1 Generate data"]] == ["data", "resample"]
    assert "prediction_6d" in [t.type_id for t in cats["3 Run graph"]]
    assert sum(len(v) for v in cats.values()) == len(NODE_TYPES)
