"""Export to a Python script that rebuilds the graph with the studio's own API.

``PATH.py`` builds ``Graph([Input(...), TimeDistributed(Conv3DTranspose(...)), ...])`` with the
document's layer names and parameters, sets the weights from ``PATH.npz`` beside it (Keras kernel
layout, read with ``allow_pickle=False``), makes the same input data as the Data node (the seeded
generator's NumPy call, or the data file through ``conv3dt_studio.nodes.data_sources``) and runs
``predict`` with the Prediction 6D's batch size on NumPy: the output equals ``run_document``'s
(NumPy backend) bit for bit. ``python PATH.py --out prediction.npy`` saves it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conv3dt_studio.compute import CONV3D_TRANSPOSE_SCHEMA
from conv3dt_studio.nodes.files import atomic_write_text, save_npz
from conv3dt_studio.nodes.graph_document import GraphDocument
from conv3dt_studio.nodes.runner import Plan

from .common import ARCH_PARAMS, InteropError, ModelSpec

HEADER = '''"""Graph `{output}` exported by Conv3DT Studio {version}: rebuilds it with the Python API,
sets the weights from `{weights}` beside this file and runs its Prediction 6D.

    python {script} [--out prediction.npy]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from conv3dt_studio.compute import Conv3DTranspose, Graph, Input, TimeDistributed

WEIGHTS = Path(__file__).with_name({weights!r})
'''

BUILD = '''

def build_graph() -> Graph:
    """The layers, with the weights of WEIGHTS (Keras layout, no pickle)."""
    graph = Graph(
        [
{layers}
        ],
        backend="numpy",
        seed={seed},
    )
    with np.load(WEIGHTS, allow_pickle=False) as arrays:
        for layer in graph.layers[1:]:
            conv = layer.layer
            names = ["kernel", "bias"] if conv.config["use_bias"] else ["kernel"]
            layer.set_weights([arrays[f"{{conv.name}}/{{n}}"] for n in names])
    return graph
'''

MAIN = """

def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Run the exported graph's Prediction 6D.")
    parser.add_argument("--out", help="save the prediction here (.npy)")
    args = parser.parse_args(argv)
    info, y = build_graph().predict(input_data(), batch_size={batch_size})
    print(info.name, info.index, info.shape)
    if args.out:
        np.save(args.out, y, allow_pickle=False)


if __name__ == "__main__":
    main()
"""


def _conv_args(params: dict[str, Any]) -> str:
    """The Conv3DTranspose arguments: the architecture always, other parameters when they differ
    from their defaults (they matter for training only)."""
    defaults = CONV3D_TRANSPOSE_SCHEMA.defaults()
    out = []
    for p in CONV3D_TRANSPOSE_SCHEMA:
        value = params[p.name]
        if p.name in ARCH_PARAMS or p.to_json(value) != p.to_json(defaults[p.name]):
            out.append(f"{p.name}={value!r}")
    return ", ".join(out)


def _source(spec: ModelSpec) -> tuple[GraphDocument, Plan]:
    """The document and plan an export was made from (a script needs its Data node)."""
    if spec.doc is None or spec.plan is None:
        raise InteropError("A Python script is exported from a graph document only")
    return spec.doc, spec.plan


def _layers_source(spec: ModelSpec) -> str:
    doc, _ = _source(spec)
    lines = [f"            Input({tuple(spec.input_shape)!r}, name={spec.input_name!r}),"]
    for layer in spec.layers:
        params = {k: v for k, v in doc.params(layer.node).items() if k != "name"}
        lines.append(
            "            TimeDistributed(\n"
            f"                Conv3DTranspose({_conv_args(params)}, name={layer.conv_name!r}),\n"
            f"                name={layer.name!r},\n"
            "            ),"
        )
    return "\n".join(lines)


def _data_source(spec: ModelSpec) -> str:
    doc, p = _source(spec)
    params = doc.params(p.data_node)
    if p.transforms or params["distribution"] == "blobs":
        return _data_path_source(spec)
    head = '\n\ndef input_data() -> np.ndarray:\n    """The Data node\'s samples."""\n'
    if params["source"] != "generator":
        path = doc.resolve_path(params["path"])
        return (
            head + "    from conv3dt_studio.nodes.data_sources import load_file\n\n"
            f"    return load_file({str(Path(path).resolve())!r}, {params['array_name']!r})\n"
        )
    shape = (params["batch_size"], *params["sample_shape"])
    dist = params["distribution"]
    if dist in ("zeros", "ones"):
        return head + f"    return np.{dist}({shape!r}, np.float32)\n"
    seed = params["seed"] if spec.seed is None else spec.seed
    call = "standard_normal" if dist == "normal" else "random"
    return (
        head + f"    rng = np.random.default_rng({seed})\n"
        f"    return rng.{call}({shape!r}, dtype=np.float32)\n"
    )


def _data_path_source(spec: ModelSpec) -> str:
    """``input_data()`` through the studio's own data path: the Data node's samples (generated
    or read) and each transform (a Resample) on their way to the Input."""
    doc, p = _source(spec)
    params = dict(doc.params(p.data_node))
    if spec.seed is not None:
        params["seed"] = spec.seed
    if params["source"] != "generator":
        params["path"] = str(Path(doc.resolve_path(params["path"])).resolve())
    lines = [
        "",
        "",
        "def input_data() -> np.ndarray:",
        '    """The Data node\'s samples, through the transforms on their way to the Input."""',
        "    from conv3dt_studio.nodes.catalogue import NODE_TYPES",
        "    from conv3dt_studio.nodes.data_sources import generate, load_file",
        "",
        f"    params = {_plain(params)!r}",
        '    if params["source"] == "generator":',
        "        x = generate(params)",
        "    else:",
        '        x = load_file(params["path"], params["array_name"], axes=params["axes"])',
    ]
    for node in p.transforms:
        kind = doc.nodes[node].type
        lines.append(f"    x = NODE_TYPES[{kind!r}].transform({_plain(doc.params(node))!r}, x)")
    return "\n".join(lines) + "\n    return x\n"


def _plain(value: Any) -> Any:
    """Parameters as plain Python literals (tuples as lists)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def script_source(spec: ModelSpec, script: Path, weights: Path) -> str:
    from conv3dt_studio import __version__

    doc, p = _source(spec)
    seed = p.seed if spec.seed is None else spec.seed
    batch = doc.params(p.prediction_node)["batch_size"] or None
    return (
        HEADER.format(
            output=spec.output_name, version=__version__, weights=weights.name, script=script.name
        )
        + BUILD.format(layers=_layers_source(spec), seed=seed)
        + _data_source(spec)
        + MAIN.format(batch_size=batch)
    )


def python_paths(path: Path) -> tuple[Path, Path]:
    """(script, weights): ``PATH.py`` and ``PATH.npz``."""
    return path, path.with_suffix(".npz")


def export_python(spec: ModelSpec, path: Path) -> None:
    """Write the script and its weights (each atomically; the weights first)."""
    script, weights = python_paths(path)
    save_npz(weights, spec.weights())
    atomic_write_text(script, script_source(spec, script, weights))
