"""PyTorch: the exported folder's model.py (imported by its path, no Conv3DT Studio inside)
predicts as we do, trains, runs under torch.compile; its weights come back bit for bit from the
folder, a bare .safetensors file or a .pt state dict."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import safetensors.numpy
import torch
from interop_helpers import (
    TOLERANCE,
    all_cases,
    case_doc,
    load_module,
    reference,
    relative_error,
    sweep,
)

from conv3dt_studio.nodes import plan, run_document
from conv3dt_studio.nodes.interop import InteropError, export_document, import_model, importable
from conv3dt_studio.nodes.interop.common import ARCH_PARAMS, model_spec
from conv3dt_studio.nodes.weights import decode_weights

SMALL = list(sweep())[1]  # two layers
# torch's own modules (torch.jit) on import (not ours)
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``exported(kind, name)`` -> (folder, model.py module), exported once per module."""
    root = tmp_path_factory.mktemp("torch")
    cache = {}

    def get(kind: str, name: str):
        if name not in cache:
            result = export_document(case_doc(kind, name), "pytorch", root / name)
            cache[name] = result.path, load_module(result.path / "model.py", f"model_{name}")
        return cache[name]

    return get


def _weights_equal(doc, back) -> bool:
    want = model_spec(doc).weights()
    got = decode_weights(back.extras["weights"])
    return sorted(got) == sorted(want) and all(np.array_equal(got[k], want[k]) for k in want)


@pytest.mark.parametrize("kind,name", all_cases(), ids=[n for _, n in all_cases()])
def test_model_py_reproduces_our_prediction(kind, name, exported):
    x, want = reference(kind, name)
    _, module = exported(kind, name)
    model = module.load_model()
    assert not model.training
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    assert relative_error(got, want) <= TOLERANCE


@pytest.mark.parametrize("kind,name", all_cases(), ids=[n for _, n in all_cases()])
def test_round_trip_keeps_weights_layers_and_data(kind, name, exported):
    doc = case_doc(kind, name)
    folder, _ = exported(kind, name)
    back = import_model(folder)
    assert _weights_equal(doc, back)
    x, want = reference(kind, name)
    # an exported model starts at the Input: a Resample before it stays behind, so its samples
    # are given; otherwise the Data node's generator comes back with the model
    data = x if plan(doc).transforms else None
    assert np.array_equal(run_document(back, backend="numpy", data=data).prediction, want)


def test_model_py_needs_no_conv3dt_studio(exported):
    folder, _ = exported("sweep", SMALL)
    source = (folder / "model.py").read_text() + (folder / "train_ddp.py").read_text()
    assert "conv3dt_studio" not in source.replace("conv3dt_studio.architecture", "")
    assert sorted(p.name for p in folder.iterdir()) == [
        "architecture.json",
        "model.py",
        "train_ddp.py",
        "weights.safetensors",
    ]


def test_the_model_trains(exported):
    x, want = reference("sweep", SMALL)
    _, module = exported("sweep", SMALL)
    model = module.load_model().train()
    loss = torch.nn.functional.mse_loss(model(torch.from_numpy(x)), torch.zeros(want.shape))
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert all(g.abs().sum() > 0 for g in grads)


def test_the_model_runs_under_torch_compile(exported):
    """Inductor compiles C++ with the system's compiler (gcc here)."""
    x, want = reference("sweep", SMALL)
    _, module = exported("sweep", SMALL)
    compiled = torch.compile(module.load_model())
    with torch.no_grad():
        got = compiled(torch.from_numpy(x)).numpy()
    assert relative_error(got, want) <= TOLERANCE


def test_bare_safetensors_with_and_without_header_metadata(exported, tmp_path):
    doc = case_doc("sweep", SMALL)
    folder, _ = exported("sweep", SMALL)
    assert _weights_equal(doc, import_model(folder / "weights.safetensors"))
    bare = tmp_path / "trained.safetensors"  # saved elsewhere without our metadata
    safetensors.numpy.save_file(safetensors.numpy.load_file(folder / "weights.safetensors"), bare)
    with pytest.raises(InteropError, match="the architecture is unknown"):
        import_model(bare)
    shutil.copy(folder / "architecture.json", tmp_path)
    assert _weights_equal(doc, import_model(bare))


def test_a_pt_state_dict_from_ddp_imports_without_unpickling(exported, tmp_path):
    doc = case_doc("sweep", SMALL)
    folder, module = exported("sweep", SMALL)
    state = {f"module.{k}": v for k, v in module.load_model().state_dict().items()}
    torch.save(state, tmp_path / "ddp.pt")
    shutil.copy(folder / "architecture.json", tmp_path)
    assert importable(tmp_path / "ddp.pt")
    assert _weights_equal(doc, import_model(tmp_path / "ddp.pt"))
    torch.save({"state_dict": module.load_model().state_dict(), "epoch": 3}, tmp_path / "c.pth")
    assert _weights_equal(doc, import_model(tmp_path / "c.pth"))


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo unpickled",))


@pytest.mark.parametrize("obj", [object(), _Evil()], ids=["object", "reduce"])
def test_a_pickled_object_is_refused_without_advice_to_unpickle(
    obj, tmp_path, exported, monkeypatch
):
    folder, _ = exported("sweep", SMALL)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    shutil.copy(folder / "architecture.json", tmp_path / "in")
    torch.save({"weights": obj}, tmp_path / "in" / "evil.pt")  # needs unpickling objects
    with pytest.raises(InteropError) as info:
        import_model("in/evil.pt")
    assert str(info.value) == (
        "`in/evil.pt`: refused: it holds Python objects that only unpickling could read "
        "(weights are read with torch.load(weights_only=True)); save a plain state dict or "
        "export weights.safetensors"
    )


def test_a_file_torch_cannot_read_is_one_line_without_advice(tmp_path):
    (tmp_path / "architecture.json").write_text("{}")
    (tmp_path / "garbage.pt").write_bytes(b"garbage")
    with pytest.raises(InteropError) as info:
        import_model(tmp_path / "garbage.pt")
    message = str(info.value)
    assert message.startswith(f"`{tmp_path / 'garbage.pt'}`: not a PyTorch state dict file")
    assert "False" not in message and "\n" not in message


def test_weights_that_do_not_fit_are_named(tmp_path, exported):
    folder, _ = exported("sweep", SMALL)
    arrays = safetensors.numpy.load_file(folder / "weights.safetensors")
    arch = json.loads((folder / "architecture.json").read_text())
    key = "layers.0.conv.weight"
    arrays[key] = arrays[key][:, :, :1]
    arrays["extra"] = np.zeros(1, np.float32)
    meta = {"conv3dt_studio.architecture": json.dumps(arch)}
    safetensors.numpy.save_file(arrays, tmp_path / "w.safetensors", metadata=meta)
    with pytest.raises(InteropError) as info:
        import_model(tmp_path / "w.safetensors")
    assert "`layers.0.conv.weight` must have shape" in str(info.value)
    assert "unexpected entries extra" in str(info.value)
    # a layer with a bias: the fitting bias beside its bad weight is not blamed as unexpected
    arrays["layers.1.conv.weight"] = arrays["layers.1.conv.weight"][:1]
    safetensors.numpy.save_file(arrays, tmp_path / "w.safetensors", metadata=meta)
    with pytest.raises(InteropError) as info:
        import_model(tmp_path / "w.safetensors")
    assert "`layers.1.conv.weight` must have shape" in str(info.value)
    assert "unexpected entries extra" in str(info.value) and "conv.bias" not in str(info.value)


def test_architecture_keeps_every_layer_parameter(exported):
    doc = case_doc("sweep", SMALL)
    folder, _ = exported("sweep", SMALL)
    arch = json.loads((folder / "architecture.json").read_text())
    spec = model_spec(doc)
    assert [{k: layer[k] for k in ARCH_PARAMS} for layer in arch["layers"]] == [
        layer.params for layer in spec.layers
    ]
    assert arch["input"]["shape"] == list(spec.input_shape)
