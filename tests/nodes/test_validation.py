"""Validation reports every problem at once, per node and parameter; shapes are inferred."""

from __future__ import annotations

import numpy as np
import pytest

from conv3dt_studio import nodes
from conv3dt_studio.nodes.graph_document import Link, Node


def _problems(doc) -> set[tuple]:
    return {(p.node, p.param) for p in nodes.validate(doc).problems}


def _messages(doc) -> str:
    return "\n".join(str(p) for p in nodes.validate(doc).problems)


def test_a_valid_graph_has_no_problems(doc):
    report = nodes.validate(doc)
    assert report.ok and report.problems == []
    assert report.order.index("data") < report.order.index("input")
    assert report.order.index("time_distributed") < report.order.index("prediction_6d")


def test_every_problem_is_reported_at_once(doc):
    doc.nodes["conv3d_transpose"].params.update(size=[1, 2, 3, 4], n_filters=0)
    doc.nodes["prediction_6d"].params["colour"] = "red"
    doc.nodes["mystery"] = Node("mystery", "blah", {})
    doc.add_node("prediction_6d")
    report = nodes.validate(doc)
    assert {(p.node, p.param) for p in report.problems} == {
        ("conv3d_transpose", "size"),
        ("conv3d_transpose", "n_filters"),
        ("prediction_6d", "colour"),
        ("mystery", None),
        ("prediction_6d_2", "x"),
    }
    text = _messages(doc)
    assert "node `conv3d_transpose`, `size`: Invalid value for `size`" in text
    assert "Received: size=[1, 2, 3, 4]" in text
    assert "node `mystery`: unknown node type 'blah'" in text
    assert "node `prediction_6d_2`, `x`: missing link" in text
    assert [str(p) for p in report.problems_of("mystery")] == [
        str(p) for p in report.problems if p.node == "mystery"
    ]


def test_cross_constraint_is_reported_on_output_padding(doc):
    doc.nodes["conv3d_transpose"].params["output_padding"] = [1, 0, 0]
    assert _problems(doc) == {("conv3d_transpose", "output_padding")}


def test_wrong_port_kind_in_a_file(doc):
    doc.links = [ln for ln in doc.links if ln.dst != ("input", "x")]
    doc.links.append(Link(("conv3d_transpose", "layer"), ("input", "x")))
    assert ("input", "x") in _problems(doc)
    assert "wrong port kind: `conv3d_transpose.layer` gives a layer" in _messages(doc)


def test_cycle_in_a_file(doc):
    doc.links = [ln for ln in doc.links if ln.dst != ("input", "x")]
    doc.links.append(Link(("time_distributed", "y"), ("input", "x")))
    text = _messages(doc)
    assert "cycle through nodes input, time_distributed" in text


def test_links_to_missing_nodes_and_ports(doc):
    doc.links.append(Link(("ghost", "y"), ("prediction_6d", "x")))
    doc.links.append(Link(("input", "out"), ("prediction_6d", "x")))
    doc.links.append(Link(("input", "y"), ("prediction_6d", "nope")))
    text = _messages(doc)
    assert "names a node `ghost` that does not exist" in text
    assert "node `input`, `out`: no output port `out` (has: y)" in text
    assert "node `prediction_6d`, `nope`: no input port `nope` (has: x)" in text


def test_input_fed_twice_and_layer_feeding_two_wrappers(doc):
    doc.add_node("time_distributed")
    doc.links.append(Link(("input", "y"), ("time_distributed", "x")))
    doc.links.append(Link(("conv3d_transpose", "layer"), ("time_distributed_2", "layer")))
    text = _messages(doc)
    assert "node `time_distributed`, `x`: input port fed by more than one link" in text
    assert "node `conv3d_transpose`, `layer`: one layer can feed only one TimeDistributed" in text


def test_a_graph_needs_a_prediction_node(doc):
    doc.remove_node("prediction_6d")
    assert (None, None) in _problems(doc)
    assert "no Prediction 6D node" in _messages(doc)


def test_shape_mismatch_between_data_and_input(doc):
    doc.set_param("input", "shape", [2, 2, 8, 8, 4])
    assert _problems(doc) == {("input", "shape")}
    assert "Input expects (None, 2, 2, 8, 8, 4), its data has (2, 2, 2, 8, 8, 3)" in _messages(doc)


def test_time_distributed_needs_6d_data(make_doc):
    doc = make_doc(sample_shape=[2, 8, 8, 3])
    doc.set_param("input", "shape", [2, 8, 8, 3])
    assert _problems(doc) == {("time_distributed", "x")}
    assert "needs 6-D data" in _messages(doc)


def test_data_file_problems_name_the_path_parameter(doc, tmp_path):
    doc.set_param("data", "source", "file")
    assert _problems(doc) == {("data", "path")}
    doc.set_param("data", "path", str(tmp_path / "missing.npy"))
    assert "missing.npy` does not exist" in _messages(doc)


def test_data_file_shape_is_read_from_the_header(doc, tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((3, 2, 2, 8, 8, 3), np.float32))
    doc.set_param("data", "source", "file")
    doc.set_param("data", "path", str(path))
    shapes = nodes.infer_shapes(doc)
    assert shapes["data"] == (3, 2, 2, 8, 8, 3)
    assert shapes["prediction_6d"] == (3, 2, 3, 10, 10, 5)


def test_data_npz_needs_an_array_name_when_it_holds_several(doc, tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, a=np.zeros((1, 2, 2, 8, 8, 3)), b=np.zeros(1))
    doc.set_param("data", "source", "file")
    doc.set_param("data", "path", str(path))
    assert "set `array_name`" in _messages(doc)
    doc.set_param("data", "array_name", "a")
    assert nodes.infer_shapes(doc)["prediction_6d"] == (1, 2, 3, 10, 10, 5)


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("toolkit_example", (10, 6, 3, 66, 66, 5)),
        ("channels_last", (10, 6, 66, 66, 5, 3)),
        ("stride2_same", (10, 6, 3, 128, 128, 6)),
    ],
)
def test_shape_inference_of_the_bundled_examples(name, shape):
    report = nodes.validate(nodes.load(nodes.EXAMPLES / f"{name}.json"))
    assert report.ok
    assert report.shapes["prediction_6d"] == shape
    assert report.shapes["time_distributed"] == shape
    assert report.shapes["conv3d_transpose"] is None  # a layer, not a tensor


@pytest.mark.parametrize(
    ("conv", "spatial"),
    [
        ({}, (10, 10, 5)),
        ({"size": [1, 2, 3]}, (8, 9, 5)),
        ({"stride": 2}, (17, 17, 7)),
        ({"stride": 2, "padding": True}, (16, 16, 6)),
        ({"stride": 2, "output_padding": 1}, (18, 18, 8)),
        ({"dilation_rate": 2}, (12, 12, 7)),
    ],
)
def test_shape_inference_follows_the_layer_parameters(make_doc, conv, spatial):
    shapes = nodes.infer_shapes(make_doc({**conv, "n_filters": 4}))
    assert shapes["prediction_6d"] == (2, 2, 4, *spatial)


def test_bad_training_settings_and_damaged_embedded_weights_are_reported():
    from conv3dt_studio.nodes.examples import teacher_student

    doc = teacher_student()
    doc.extras["training"]["epochs"] = 0
    doc.extras["weights"] = {"conv3d_transpose/kernel": "not an array"}
    text = [str(p) for p in nodes.validate(doc).problems]
    assert any(t.startswith("`training`: Invalid value for `epochs`") for t in text)
    assert any(t.startswith("`weights`: embedded weights: array") for t in text)
