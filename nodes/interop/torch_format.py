"""Export to and import from PyTorch.

Export writes a folder:

    model.py              plain torch.nn (no Conv3DT Studio import): ``load_model(weights_path=None)``
    weights.safetensors   ``layers.<i>.conv.weight`` (in_channels, n_filters, kd, kh, kw) and
                          ``layers.<i>.conv.bias``; the header's metadata holds the architecture
                          JSON under ``conv3dt_studio.architecture``
    architecture.json     the same architecture JSON
    train_ddp.py          DistributedDataParallel training on memory-mapped .npy data (torchrun)

model.py and train_ddp.py are copies of this package's ``torch_model.py`` (with the architecture
filled in) and ``train_ddp.py``. Writing needs only ``safetensors`` (its NumPy API), not torch.

Import takes such a folder, a ``.safetensors`` file, or a ``.pt``/``.pth`` state dict (read with
``torch.load(weights_only=True)``: never unpickling objects). The architecture comes from the
safetensors header, else from ``architecture.json`` in the same folder; model.py is never run.
Keys saved from a DistributedDataParallel wrapper (``module.``) are accepted.
"""

from __future__ import annotations

import json
import pprint
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from conv3dt_studio.nodes.files import FileError, read_safetensors
from conv3dt_studio.nodes.graph_document import GraphDocument

from .common import (
    ARCHITECTURE_FILE,
    ARCHITECTURE_KEY,
    ImportedLayer,
    InteropError,
    ModelSpec,
    architecture,
    document_from_layers,
    finite_float32,
    generator_params,
    load_architecture_json,
    read_architecture,
    require,
    write_folder,
)

WEIGHTS_FILE = "weights.safetensors"
MODEL_FILE = "model.py"
TRAIN_FILE = "train_ddp.py"
# what the export writes in its folder (``--force`` replaces these and keeps any other file)
EXPORT_FILES = (MODEL_FILE, WEIGHTS_FILE, ARCHITECTURE_FILE, TRAIN_FILE)
HERE = Path(__file__).resolve().parent
PLACEHOLDER = "ARCHITECTURE: dict = {}  # the graph's chain: written by the export\n"


# ---------------------------------------------------------------------------- export
def model_source(arch: dict[str, Any]) -> str:
    """model.py: the template with the architecture as a Python literal."""
    template = (HERE / "torch_model.py").read_text(encoding="utf-8")
    literal = pprint.pformat(arch, width=96, sort_dicts=False)
    return template.replace(PLACEHOLDER, f"ARCHITECTURE: dict = {literal}\n", 1)


def state_arrays(spec: ModelSpec) -> dict[str, np.ndarray]:
    """The state dict of model.py's Model, as NumPy arrays."""
    out = {}
    for i, layer in enumerate(spec.layers):
        out[f"layers.{i}.conv.weight"] = np.ascontiguousarray(layer.kernel.transpose(4, 3, 0, 1, 2))
        if layer.bias is not None:
            out[f"layers.{i}.conv.bias"] = np.ascontiguousarray(layer.bias)
    return out


def export_pytorch(spec: ModelSpec, path: Path) -> None:
    """Write :data:`EXPORT_FILES` in the folder ``path`` (a new folder is built beside it, then
    renamed; in an existing one only these files are replaced)."""
    st = require("safetensors", "Export to PyTorch")
    import safetensors.numpy  # noqa: F401  (the submodule, once the package is known present)

    arch = architecture(spec)
    text = json.dumps(arch, indent=2) + "\n"

    def fill(folder: Path) -> None:
        (folder / MODEL_FILE).write_text(model_source(arch), encoding="utf-8")
        (folder / TRAIN_FILE).write_text(
            (HERE / "train_ddp.py").read_text(encoding="utf-8"), encoding="utf-8"
        )
        (folder / ARCHITECTURE_FILE).write_text(text, encoding="utf-8")
        st.numpy.save_file(
            state_arrays(spec), str(folder / WEIGHTS_FILE), metadata={ARCHITECTURE_KEY: text}
        )

    write_folder(path, fill)


# ---------------------------------------------------------------------------- import
def import_pytorch(path: Path) -> GraphDocument:
    """A graph document from an export folder, a .safetensors file or a .pt/.pth state dict."""
    weights_file = path / WEIGHTS_FILE if path.is_dir() else path
    if not weights_file.is_file():
        raise InteropError(
            f"`{path}`: no `{WEIGHTS_FILE}` in this folder (an exported PyTorch folder holds "
            f"{MODEL_FILE}, {WEIGHTS_FILE} and {ARCHITECTURE_FILE})"
        )
    if weights_file.suffix.lower() == ".safetensors":
        state, meta = _read_safetensors(weights_file)
    else:
        state, meta = _read_pt(weights_file), None
    return document_from_state(_architecture(weights_file, meta), state, weights_file.name)


def document_from_state(
    arch: dict[str, Any], state: dict[str, np.ndarray], source: str
) -> GraphDocument:
    """The graph of an architecture JSON with its weights from a PyTorch-style ``state`` dict
    (:func:`layers_from_state`), its Data generator and seed as recorded."""
    return document_from_layers(
        arch["input"].get("name") or "input",
        tuple(int(s) for s in arch["input"]["shape"]),
        layers_from_state(arch, state, source),
        source,
        data=generator_params(arch.get("data")),
        seed=int(arch.get("seed", 0) or 0),
    )


def _read_safetensors(path: Path) -> tuple[dict[str, np.ndarray], dict | None]:
    """The tensors and metadata of a .safetensors file, read without torch or the safetensors
    package (:func:`nodes.files.read_safetensors`): bfloat16 and float16 widened to float32."""
    try:
        return read_safetensors(path)
    except FileError as exc:
        raise InteropError(str(exc)) from exc


def _read_pt(path: Path) -> dict[str, np.ndarray]:
    torch = require("torch", "Import from PyTorch")
    try:
        with warnings.catch_warnings():
            # torch's notes on the pickle protocol or storage classes of the file (two lines on
            # stderr): the file is read, or refused in one line, whatever they say
            warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InteropError(_unreadable(path, exc)) from exc
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise InteropError(
            f"`{path.name}`: expected a state dict (names to tensors). "
            f"Received: {type(state).__name__}"
        )
    out = {}
    for k, v in state.items():
        if not hasattr(v, "detach"):
            raise InteropError(f"`{path.name}`: entry `{k}` is not a tensor")
        out[k] = v.detach().cpu().float().numpy()
    return out


def _unreadable(path: Path, exc: Exception) -> str:
    """Why torch.load(weights_only=True) failed, without torch's advice to retry with
    weights_only=False: nothing is ever unpickled here."""
    text = str(exc)
    if "weights only load failed" in text.lower():
        if "global" in text.lower():  # a class or function that only unpickling could rebuild
            return (
                f"`{path}`: refused: it holds Python objects that only unpickling could read "
                "(weights are read with torch.load(weights_only=True)); save a plain state dict "
                f"or export {WEIGHTS_FILE}"
            )
        return (
            f"`{path}`: not a PyTorch state dict file (torch.load(weights_only=True) cannot "
            "read it: not a file torch.save wrote, or a damaged one)"
        )
    first = text.strip().splitlines()[0].split(". ")[0] if text.strip() else type(exc).__name__
    return f"`{path}`: not a state dict readable with torch.load(weights_only=True): {first}"


def _architecture(weights_file: Path, meta: dict | None) -> dict[str, Any]:
    if meta and ARCHITECTURE_KEY in meta:
        return load_architecture_json(meta[ARCHITECTURE_KEY], weights_file.name)
    beside = weights_file.parent / ARCHITECTURE_FILE
    if beside.is_file():
        return load_architecture_json(beside.read_text(encoding="utf-8"), str(beside))
    raise InteropError(
        f"`{weights_file.name}`: the architecture is unknown: neither the file's metadata "
        f"(`{ARCHITECTURE_KEY}`) nor `{ARCHITECTURE_FILE}` beside it describes the layers"
    )


def layers_from_state(
    arch: dict[str, Any], state: dict[str, np.ndarray], source: str
) -> list[ImportedLayer]:
    """The layers of ``arch`` with their weights from a PyTorch-style ``state`` dict
    (``layers.<i>.conv.weight`` (C, F, kd, kh, kw) and ``.bias``), checked against it."""
    read_architecture(arch, source)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    expected: set[str] = set()
    layers: list[ImportedLayer] = []
    problems: list[str] = []
    for i, spec in enumerate(arch["layers"]):
        wkey, bkey = f"layers.{i}.conv.weight", f"layers.{i}.conv.bias"
        want = (spec["in_channels"], spec["n_filters"], *spec["size"])
        expected.add(wkey)
        if spec["use_bias"]:
            expected.add(bkey)  # a bias beside a bad weight is not also "unexpected"
        w = state.get(wkey)
        if w is None or tuple(w.shape) != tuple(want):
            got = "missing" if w is None else f"shape {tuple(w.shape)}"
            problems.append(f"`{wkey}` must have shape {tuple(want)} ({got})")
            continue
        w = finite_float32(w, source, wkey)
        bias = None
        if spec["use_bias"]:
            bias = state.get(bkey)
            if bias is None or tuple(bias.shape) != (spec["n_filters"],):
                problems.append(f"`{bkey}` must have shape ({spec['n_filters']},)")
                continue
            bias = finite_float32(bias, source, bkey).copy()
        kernel = np.ascontiguousarray(w.transpose(2, 3, 4, 1, 0))
        params = {k: spec[k] for k in ("n_filters", "size", "stride", "dilation_rate")}
        for k in ("activation", "use_bias", "padding", "data_format", "output_padding"):
            params[k] = spec[k]
        layers.append(ImportedLayer(spec["name"], spec["conv_name"], params, kernel, bias))
    extra = sorted(set(state) - expected)
    if extra:
        problems.append(f"unexpected entries {', '.join(extra)}")
    if problems:
        raise InteropError(
            f"`{source}`: the weights do not fit the architecture: {'; '.join(problems)}"
        )
    return layers
