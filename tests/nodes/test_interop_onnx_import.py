"""ONNX files the studio exported import back: the architecture from their metadata, the kernels
and biases from their initializers; the imported graph predicts what the original predicts, bit
for bit (the same weights, the same kernels). ONNX files of other tools, and damaged ones, are
refused in one line naming what imports instead."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from interop_helpers import chain_doc

from conv3dt_studio.nodes import load, run_document
from conv3dt_studio.nodes.interop import InteropError, export_document, import_model, importable

SAMPLE = (2, 3, 4, 3, 2)
CHAINS = {
    "plain": [{"n_filters": 4, "size": [2, 2, 2]}],
    "same-stride-bias-padded": [
        {"n_filters": 3, "size": [3, 3, 3], "stride": [2, 2, 2], "padding": True},
        {"n_filters": 2, "size": [2, 3, 2], "activation": "tanh", "use_bias": False},
    ],
    "stride-and-dilation": [{"n_filters": 2, "size": [2, 2, 2], "stride": [2, 1, 2],
                             "dilation_rate": [2, 1, 2], "activation": "gelu"}],
    "channels-last-output-padding": [
        {"n_filters": 3, "size": [3, 3, 3], "stride": [2, 2, 2], "output_padding": [1, 0, 1],
         "data_format": "channels_last", "activation": "relu"},
    ],
}  # fmt: skip


def _doc(convs):
    first = convs[0].get("data_format", "channels_first")
    shape = SAMPLE if first == "channels_first" else (SAMPLE[0], *SAMPLE[2:], SAMPLE[1])
    doc = chain_doc(shape, convs, batch=2, seed=5)
    doc.set_param("data", "distribution", "uniform")
    return doc


@pytest.mark.parametrize("chain", list(CHAINS))
def test_an_onnx_export_imports_back_and_predicts_the_same(chain, tmp_path):
    doc = _doc(CHAINS[chain])
    path = export_document(doc, "onnx", tmp_path / "m.onnx").path
    assert importable(path)
    back = import_model(path)
    assert [n.type for n in back.nodes.values()].count("conv3d_transpose") == len(CHAINS[chain])
    want = run_document(doc, backend="numpy").prediction
    np.testing.assert_array_equal(run_document(back, backend="numpy").prediction, want)
    np.testing.assert_array_equal(run_document(load(path), backend="numpy").prediction, want)


def test_an_onnx_file_of_another_tool_is_refused_naming_what_imports(tmp_path):
    h = onnx.helper
    w = onnx.numpy_helper.from_array(np.ones((1, 1, 2, 2, 2), np.float32), "w")
    graph = h.make_graph(
        [h.make_node("ConvTranspose", ["x", "w"], ["y"])],
        "theirs",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, 2, 2, 2])],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 1, 3, 3, 3])],
        [w],
    )
    path = tmp_path / "theirs.onnx"
    onnx.save(h.make_model(graph), str(path))
    with pytest.raises(InteropError) as caught:
        import_model(path)
    message = str(caught.value)
    assert message.startswith("`theirs.onnx`: no Conv3DT Studio architecture in its metadata")
    assert ".keras" in message and "\n" not in message


def test_a_damaged_onnx_file_is_one_line(tmp_path):
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(InteropError, match=r"^`bad\.onnx`: not a readable ONNX file"):
        import_model(path)


def test_an_onnx_export_without_its_kernel_is_refused_naming_it(tmp_path):
    doc = _doc(CHAINS["plain"])
    path = export_document(doc, "onnx", tmp_path / "m.onnx").path
    model = onnx.load(str(path))
    kept = [t for t in model.graph.initializer if not t.name.endswith("/kernel")]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    onnx.save(model, str(path))
    with pytest.raises(InteropError, match=r"the weights do not fit the architecture.*missing"):
        import_model(path)


def test_the_command_line_imports_an_onnx_export(tmp_path, capsys):
    from conv3dt_studio.app import cli

    doc = _doc(CHAINS["plain"])
    export_document(doc, "onnx", tmp_path / "m.onnx")
    assert cli.main(["import", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "g.json")]) == 0
    assert "imported 1 layer" in capsys.readouterr().out
    want = run_document(doc, backend="numpy").prediction
    np.testing.assert_array_equal(
        run_document(load(tmp_path / "g.json"), backend="numpy").prediction, want
    )
