"""Export to ONNX: the file passes onnx.checker (full check) and onnxruntime reproduces our
prediction for the bundled examples and a seeded sweep, with symbolic batch and time."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from interop_helpers import (
    TOLERANCE,
    all_cases,
    case_doc,
    reference,
    relative_error,
    stride_and_dilation,
    sweep,
)

from conv3dt_studio.nodes import run_document
from conv3dt_studio.nodes.interop import export_document
from conv3dt_studio.nodes.interop.common import model_spec
from conv3dt_studio.nodes.interop.onnx_export import build_model
from conv3dt_studio.nodes.weights import encode_weights

ort.set_default_logger_severity(3)


def _predict(model_or_path, x: np.ndarray) -> np.ndarray:
    """onnxruntime (CPU) on a ModelProto or a file."""
    if hasattr(model_or_path, "graph"):
        source = model_or_path.SerializeToString()
    else:
        source = str(model_or_path)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


@pytest.mark.parametrize("kind,name", all_cases(), ids=[n for _, n in all_cases()])
def test_onnxruntime_reproduces_our_prediction(kind, name, tmp_path):
    x, want = reference(kind, name)
    result = export_document(case_doc(kind, name), "onnx", tmp_path / "model.onnx")
    assert relative_error(_predict(result.path, x), want) <= TOLERANCE


@pytest.mark.parametrize("name", [n for n, d in sweep().items() if stride_and_dilation(d)])
def test_stride_with_dilation_plain_and_decomposed_agree(name):
    """The zero-insertion form (written by default) and the plain ConvTranspose both match ours
    on this onnxruntime (its stride + dilation bug is not reproduced in this version)."""
    x, want = reference("sweep", name)
    spec = model_spec(case_doc("sweep", name))
    for decompose in (True, False):
        assert relative_error(_predict(build_model(spec, decompose), x), want) <= TOLERANCE


def test_the_file_is_a_checked_opset_17_model_with_symbolic_batch_and_time(tmp_path):
    doc = case_doc("sweep", next(iter(sweep())))
    result = export_document(doc, "onnx", tmp_path / "model")
    assert result.path.name == "model.onnx"
    model = onnx.load(result.path)
    onnx.checker.check_model(model, full_check=True)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    (inp,) = model.graph.input
    dims = inp.type.tensor_type.shape.dim
    assert inp.name == "input"
    assert [d.dim_param for d in dims[:2]] == ["batch", "time"]
    assert [d.dim_value for d in dims[2:]] == list(result.input_shape[2:])
    (out,) = model.graph.output
    assert out.name == result.output_name == result.layer_names[-1]
    assert result.input_shape[:2] == (None, None)


def test_other_batch_and_time_sizes_run(tmp_path):
    """The dims are symbolic: 3 samples of 5 time steps run as the graph does."""
    doc = case_doc("sweep", next(iter(sweep())))
    result = export_document(doc, "onnx", tmp_path / "model.onnx")
    shape = (3, 5, *result.input_shape[2:])
    x = np.random.default_rng(1).standard_normal(shape, dtype=np.float32)
    five_steps = doc.copy()
    five_steps.set_param("input", "shape", list(shape[1:]))
    want = run_document(five_steps, data=x, backend="numpy").prediction
    assert relative_error(_predict(result.path, x), want) <= TOLERANCE


def test_weights_file_seed_and_embedded_weights_are_the_runs(tmp_path):
    """Weights as run_document picks them: a .npz path, a seed override, embedded weights."""
    doc = case_doc("sweep", list(sweep())[1]).copy()
    spec = model_spec(doc, seed=7)
    arrays = {k: v * 2 for k, v in spec.weights().items()}
    np.savez(tmp_path / "w.npz", **arrays)
    for i, kwargs in enumerate([{"weights": str(tmp_path / "w.npz")}, {"seed": 7}]):
        result = export_document(doc, "onnx", tmp_path / f"m{i}.onnx", **kwargs)
        run = run_document(doc, backend="numpy", **kwargs)
        assert relative_error(_predict(result.path, run.input), run.prediction) <= TOLERANCE
    doc.extras["weights"] = encode_weights(arrays)
    result = export_document(doc, "onnx", tmp_path / "embedded.onnx")
    run = run_document(doc, backend="numpy")
    assert relative_error(_predict(result.path, run.input), run.prediction) <= TOLERANCE
    seeded = run_document(case_doc("sweep", list(sweep())[1]), backend="numpy").prediction
    assert not np.allclose(run.prediction, seeded)


def test_prediction_picks_the_chain(tmp_path):
    """With two Prediction 6D nodes, `prediction` exports the chain of the one named."""
    doc = case_doc("sweep", list(sweep())[1]).copy()
    doc.add_node("prediction_6d", {}, node_id="first_layer_only")
    doc.connect("td_0", "y", "first_layer_only", "x")
    result = export_document(doc, "onnx", tmp_path / "m.onnx", prediction="first_layer_only")
    assert result.layer_names == ("td_0",)
    run = run_document(doc, backend="numpy", prediction_node="first_layer_only")
    assert relative_error(_predict(result.path, run.input), run.prediction) <= TOLERANCE
