"""Import of an ONNX file exported by the studio (:mod:`.onnx_export`): the architecture JSON in
its metadata (``conv3dt_studio.architecture``), the kernels and biases from its initializers
(``<layer>/kernel`` in PyTorch's layout (C, F, kd, kh, kw), ``<layer>/bias``). The protobuf is
parsed by the ``onnx`` package (no code runs); its size is checked against the memory limit
before it is read. ONNX files from other tools carry no architecture: they are refused, naming
what imports instead (their PyTorch weights or .keras file)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conv3dt_studio.nodes import memory as node_memory
from conv3dt_studio.nodes.graph_document import GraphDocument

from .common import ARCHITECTURE_KEY, InteropError, load_architecture_json, require

# parsing holds the file's bytes, the protobuf and the arrays taken from it
_PARSE_FACTOR = 4


def import_onnx(path: Path) -> GraphDocument:
    """A graph document from an ONNX file that :func:`.onnx_export.export_onnx` wrote."""
    onnx = require("onnx", "Import from ONNX")
    from onnx import numpy_helper

    try:
        node_memory.check(_PARSE_FACTOR * path.stat().st_size, None, f"reading `{path.name}`")
    except node_memory.MemoryLimitError as exc:
        raise InteropError(f"`{path.name}`: {exc.problems[0].message}") from exc
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf's DecodeError and the like, in one line
        raise InteropError(f"`{path.name}`: not a readable ONNX file ({exc})") from exc
    props = {p.key: p.value for p in model.metadata_props}
    if ARCHITECTURE_KEY not in props:
        raise InteropError(
            f"`{path.name}`: no Conv3DT Studio architecture in its metadata "
            f"(`{ARCHITECTURE_KEY}`): only ONNX files exported by the studio import back; for a "
            "model of another tool, import its PyTorch weights (.pt, .safetensors) or its .keras "
            "file"
        )
    arch = load_architecture_json(props[ARCHITECTURE_KEY], path.name)
    tensors = {t.name: t for t in model.graph.initializer}
    state: dict[str, np.ndarray] = {}
    for i, layer in enumerate(arch["layers"]):
        for part, key in (("kernel", "weight"), ("bias", "bias")):
            tensor = tensors.get(f"{layer['name']}/{part}")
            if tensor is None:
                continue  # a missing one is named by the check of the weights against the layers
            array = numpy_helper.to_array(tensor)
            state[f"layers.{i}.conv.{key}"] = array.reshape(-1) if part == "bias" else array
    from .torch_format import document_from_state

    return document_from_state(arch, state, path.name)
