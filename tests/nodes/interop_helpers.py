"""Shared by the interop tests: the bundled examples made small, a seeded sweep of chains covering
the layer's options, and our own prediction of each (computed once per process)."""

from __future__ import annotations

import functools
import importlib.util
import itertools
import math
import sys
from pathlib import Path

import numpy as np

from conv3dt_studio.compute import ACTIVATION_NAMES
from conv3dt_studio.nodes import GraphDocument, load, run_document, validate
from conv3dt_studio.resources import example_paths

TOLERANCE = 1e-5  # max abs error / max abs value
SWEEP_SIZE = 40
SWEEP_SEED = 20261129


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    assert got.shape == want.shape, (got.shape, want.shape)
    scale = float(np.abs(want).max())
    return float(np.abs(got.astype(np.float64) - want).max()) / (scale if scale else 1.0)


def chain_doc(
    input_shape: tuple[int, ...], convs: list[dict], batch: int = 2, seed: int = 0
) -> GraphDocument:
    """Data -> Input -> TimeDistributed(Conv3DTranspose) x len(convs) -> Prediction 6D."""
    doc = GraphDocument(settings={"seed": seed})
    doc.add_node("data", {"batch_size": batch, "sample_shape": list(input_shape), "seed": seed})
    doc.add_node("input", {"shape": list(input_shape)})
    doc.connect("data", "data", "input", "x")
    prev = "input"
    for i, conv in enumerate(convs):
        c = doc.add_node("conv3d_transpose", conv, node_id=f"conv_{i}").id
        td = doc.add_node("time_distributed", {}, node_id=f"td_{i}").id
        doc.connect(prev, "y", td, "x")
        doc.connect(c, "layer", td, "layer")
        prev = td
    doc.add_node("prediction_6d", {})
    doc.connect(prev, "y", "prediction_6d", "x")
    return doc


def stride_and_dilation(doc: GraphDocument) -> bool:
    """Whether a layer has stride > 1 with dilation > 1 (Keras refuses it)."""
    for node in doc.nodes.values():
        p = node.params
        if "dilation_rate" in p and max(p["stride"]) > 1 and max(p["dilation_rate"]) > 1:
            return True
    return False


def _conv(rng: np.random.Generator, activation: str, both: bool) -> dict:
    size = [int(v) for v in rng.integers(1, 4, 3)]
    stride, dilation = [1, 1, 1], [1, 1, 1]
    if both:  # stride > 1 with dilation > 1, on one axis or across axes
        stride = [int(v) for v in rng.choice([1, 2, 3], 3)]
        dilation = [int(v) for v in rng.choice([1, 2], 3)]
        stride[int(rng.integers(3))] = 2
        dilation[int(rng.integers(3))] = 2
        size = [max(s, 2) for s in size]
    elif rng.random() < 0.3:
        dilation = [int(v) for v in rng.choice([1, 2, 3], 3)]
    else:
        stride = [int(v) for v in rng.choice([1, 1, 2, 3], 3)]
    conv = {
        "n_filters": int(rng.integers(1, 4)),
        "size": size,
        "stride": stride,
        "dilation_rate": dilation,
        "activation": activation,
        "use_bias": bool(rng.integers(2)),
        "padding": bool(rng.integers(2)),
        "data_format": str(rng.choice(["channels_first", "channels_last"])),
        "bias_initializer": "random_normal",  # a bias that shows (the default is zeros)
    }
    if rng.random() < 0.4:
        conv["output_padding"] = [int(rng.integers(0, s)) for s in stride]
    return conv


def _input_shape(rng: np.random.Generator, data_format: str) -> tuple[int, ...]:
    spatial = [int(v) for v in rng.integers(2, 5, 3)]
    c = int(rng.integers(1, 4))
    return (2, c, *spatial) if data_format == "channels_first" else (2, *spatial, c)


@functools.lru_cache(maxsize=1)
def sweep() -> dict[str, GraphDocument]:
    """``SWEEP_SIZE`` seeded chains of 1-3 layers: both data formats and mixed stacks, all 15
    activations (each at least twice), sizes, strides, dilations (every fifth case with stride > 1
    and dilation > 1 together), output_padding, valid/same, with and without bias; small shapes."""
    rng = np.random.default_rng(SWEEP_SEED)
    acts = itertools.cycle(ACTIVATION_NAMES)
    cases: dict[str, GraphDocument] = {}
    while len(cases) < SWEEP_SIZE:
        i = len(cases)
        n_layers = 1 + i % 3
        convs = [_conv(rng, next(acts), both=(i % 5 == 0 and k == 0)) for k in range(n_layers)]
        doc = chain_doc(_input_shape(rng, convs[0]["data_format"]), convs, seed=i)
        report = validate(doc)
        out = report.shapes.get("prediction_6d")
        if report.problems or out is None or not 0 < math.prod(out) <= 60_000 or max(out) > 40:
            continue  # too big (or invalid): draw again; the activations stay in order anyway
        cases[f"case{i:02d}-" + "-".join(c["activation"] for c in convs)] = doc
    return cases


@functools.lru_cache(maxsize=1)
def examples() -> dict[str, GraphDocument]:
    """The bundled examples, with one sample (the layer kept as it is)."""
    out = {}
    for path in example_paths():
        doc = load(path)
        doc.set_param("data", "batch_size", 1)
        out[path.stem] = doc
    return out


@functools.cache
def _reference(kind: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    doc = (sweep() if kind == "sweep" else examples())[name]
    result = run_document(doc, backend="numpy")
    return result.input, result.prediction


def reference(kind: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(input data, our prediction) of a sweep case or an example, NumPy backend."""
    return _reference(kind, name)


def all_cases() -> list[tuple[str, str]]:
    return [("example", n) for n in examples()] + [("sweep", n) for n in sweep()]


def case_doc(kind: str, name: str) -> GraphDocument:
    return (sweep() if kind == "sweep" else examples())[name]


def load_module(path: Path, name: str):
    """Import a file by its path (as a user of an exported model.py would)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
