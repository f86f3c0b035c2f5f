"""Building a :class:`compute.Graph` from a document and running it - one code path for the CLI and
the editor. Progress goes through a plain callback ``progress(fraction, message)``; ``should_stop()``
is honoured between batches; a memory guard refuses runs that would not fit.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conv3dt_studio.compute import Graph, PredictionInfo
from conv3dt_studio.compute.conv3d_transpose import conv3d_transpose_working_bytes
from conv3dt_studio.compute.conv3d_transpose_ops import CHUNK_BYTES
from conv3dt_studio.compute.layers import fmt_shape

from . import data_sources, memory
from .catalogue import DATA_SOURCE, INPUT, NODE_TYPES, OUTPUT, TRANSFORM, WRAPPER
from .graph_document import GraphDocument
from .memory import MemoryLimitError, available_memory  # noqa: F401 - re-exported
from .validation import DocumentProblems, Problem, relevant_problems, validate
from .weights import apply_run_weights

Progress = Callable[[float, str], None]


@dataclass
class Plan:
    """What a run needs, found without computing: the chain of nodes and the shapes."""

    data_node: str
    input_node: str
    chain: list[str]  # TimeDistributed node ids, in order
    prediction_node: str
    input_shape: tuple
    output_shape: tuple
    shapes: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    weights: int = 0  # elements of every layer's kernel and bias
    working: int = 0  # bytes of the largest layer's kernel temporaries when predicting
    working_train: int = 0  # ... when training (forward and both gradients)
    transforms: list[str] = field(default_factory=list)  # Data -> these -> Input, in order
    source_shape: tuple = ()  # the Data node's samples, before the transforms

    @property
    def input_feed(self) -> str:
        """The node whose samples the Input receives (the last transform, else the Data)."""
        return self.transforms[-1] if self.transforms else self.data_node


@dataclass
class RunResult:
    info: PredictionInfo
    prediction: np.ndarray
    input: np.ndarray
    backend: str
    seconds: float
    graph: Graph
    prediction_node: str
    # what the Loss fed by this prediction compares it with (when asked for and loadable)
    target: np.ndarray | None = None

    def stats(self) -> dict[str, float]:
        return prediction_stats(self.prediction)


def prediction_stats(y: np.ndarray) -> dict[str, float]:
    finite = np.isfinite(y)
    yf = y[finite] if not finite.all() else y
    return {
        "min": float(yf.min()) if yf.size else math.nan,
        "max": float(yf.max()) if yf.size else math.nan,
        "mean": float(yf.mean(dtype=np.float64)) if yf.size else math.nan,
        "std": float(yf.std(dtype=np.float64)) if yf.size else math.nan,
        "nan": int(np.isnan(y).sum()),
        "inf": int(np.isinf(y).sum()),
    }


def plan(doc: GraphDocument, prediction_node: str | None = None) -> Plan:
    """Validate and trace the chain Data -> Input -> TimeDistributed* -> Prediction 6D (the given
    one, else the first). Only problems of that chain (or of the whole document) stop it: another
    branch being unfinished does not."""
    report = validate(doc)
    preds = doc.ids_with_role(OUTPUT)
    pid = prediction_node or (preds[0] if preds else None)
    if pid is None:  # validation said so: "no Prediction 6D node"
        raise DocumentProblems(report.problems)
    if pid not in preds:
        found = ", ".join(preds)
        raise DocumentProblems(
            [Problem(None, None, f"no Prediction 6D node `{pid}`; the graph has: {found}")]
        )
    problems = relevant_problems(doc, report.problems, pid)
    if problems:
        raise DocumentProblems(problems)
    chain: list[str] = []
    cur = doc.feeder(pid, "x")
    while doc.role(cur) == WRAPPER:
        chain.append(cur)
        cur = doc.feeder(cur, "x")
    if doc.role(cur) != INPUT:
        raise DocumentProblems(
            [
                Problem(
                    cur,
                    None,
                    "a Prediction 6D must be fed by TimeDistributed layers over an Input node",
                )
            ]
        )
    input_node = cur
    data_node, transforms = data_path(doc, doc.feeder(input_node, "x"))
    if doc.role(data_node) != DATA_SOURCE:
        raise DocumentProblems(
            [Problem(input_node, "x", "an Input must be fed by a Data node (or a Resample of one)")]
        )
    chain.reverse()
    feed = transforms[-1] if transforms else data_node
    input_shape, output_shape = report.shapes[feed], report.shapes[pid]
    if input_shape is None or output_shape is None:  # a valid chain has both; never silently
        raise DocumentProblems([Problem(pid, None, "the shapes of this chain are unknown")])
    return Plan(
        data_node,
        input_node,
        chain,
        pid,
        input_shape,
        output_shape,
        report.shapes,
        int(doc.settings.get("seed", 0)),
        sum(weight_count(doc, td, report.shapes) for td in chain),
        max((_working_bytes(doc, td, report.shapes, False) for td in chain), default=0),
        max((_working_bytes(doc, td, report.shapes, True) for td in chain), default=0),
        transforms,
        report.shapes[data_node] or (),
    )


def data_path(doc: GraphDocument, node_id: str) -> tuple[str, list[str]]:
    """Where the samples ``node_id`` gives come from: the source node (a Data or Target node, or
    whatever else ends the walk) and the transforms between it and ``node_id``, source first."""
    transforms: list[str] = []
    cur = node_id
    while doc.role(cur) == TRANSFORM and cur not in transforms:
        transforms.append(cur)
        src = doc.upstream(cur, "x")
        if src is None:
            break
        cur = src[0]
    transforms.reverse()
    return cur, transforms


def probe_document(doc: GraphDocument, node_id: str) -> tuple[GraphDocument, str]:
    """A copy of ``doc`` where ``node_id``'s output feeds a new Prediction 6D (the probe), and the
    probe's id: running it shows any tensor of the graph (an Input, any TimeDistributed) without
    adding a Prediction 6D to the document. A Prediction 6D is its own probe."""
    out = doc.copy()
    if doc.role(node_id) == OUTPUT:
        return out, node_id
    probe = out.add_node("prediction_6d", node_id=out.new_id("probe"))
    out.connect(node_id, NODE_TYPES[doc.nodes[node_id].type].outputs[0].name, probe.id, "x")
    return out, probe.id


def _working_bytes(doc: GraphDocument, wrapper: str, shapes: dict[str, Any], training: bool) -> int:
    """The kernels' temporaries for the layer in ``wrapper`` (one time step of one sample's
    planes per thread; huge dilations make them huge)."""
    params = doc.params(doc.feeder(wrapper, "layer"))
    x: tuple[int, ...] = shapes.get(doc.feeder(wrapper, "x")) or ()
    if len(x) != 6:
        return 0
    return conv3d_transpose_working_bytes(params, (None, *x[2:]), training)


def layer_input_channels(doc: GraphDocument, wrapper: str, shapes: dict[str, Any]) -> int:
    """The channels of the samples arriving at ``wrapper``, read on the axis its layer's
    ``data_format`` names (1 when the shape is unknown)."""
    params = doc.params(doc.feeder(wrapper, "layer"))
    x: tuple[int, ...] = shapes.get(doc.feeder(wrapper, "x")) or ()
    cf = params["data_format"] == "channels_first"
    return (x[2] if cf else x[-1]) if len(x) == 6 else 1


def weight_count(doc: GraphDocument, wrapper: str, shapes: dict[str, Any]) -> int:
    """Elements of the kernel (k0*k1*k2*filters*channels) and bias of the layer in ``wrapper``,
    from its parameters and the channels of the wrapper's input."""
    params = doc.params(doc.feeder(wrapper, "layer"))
    channels = layer_input_channels(doc, wrapper, shapes)
    kernel = math.prod(params["size"]) * params["n_filters"] * channels
    return kernel + (params["n_filters"] if params["use_bias"] else 0)


def feeding_data_node(doc: GraphDocument, prediction_node: str | None = None) -> str | None:
    """The Data node at the start of the chain into the (first) Prediction 6D, if wired."""
    preds = doc.ids_with_role(OUTPUT)
    cur = prediction_node or (preds[0] if preds else None)
    seen: set[str] = set()
    while cur is not None and cur in doc.nodes and cur not in seen:
        seen.add(cur)
        if doc.role(cur) == DATA_SOURCE:
            return cur
        src = doc.upstream(cur, "x")
        cur = src[0] if src else None
    return None


def _replaced_source(doc: GraphDocument, prediction_node: str | None, what: str) -> str:
    """The Data node that ``what`` replaces: the one feeding the Prediction 6D."""
    node = feeding_data_node(doc, prediction_node)
    if node is None:
        raise DocumentProblems(
            [Problem(None, None, f"{what} cannot be used: no Data node feeds the Prediction 6D")]
        )
    return node


def with_data(
    doc: GraphDocument, data: np.ndarray, prediction_node: str | None = None
) -> GraphDocument:
    """A copy of ``doc`` whose Data node describes ``data`` (which replaces it for this run), so
    validation checks the data's shape against the Input like any other."""
    node = _replaced_source(doc, prediction_node, "the data given")
    if data.ndim < 2 or data.shape[0] == 0 or data.size == 0:
        raise DocumentProblems(
            [
                Problem(
                    node,
                    None,
                    f"the data given must hold at least one "
                    f"sample (batch first). Received: shape "
                    f"{fmt_shape(data.shape)}",
                )
            ]
        )
    out = doc.copy()
    out.nodes[node].params = {
        **out.nodes[node].params,
        "source": "generator",
        "batch_size": int(data.shape[0]),
        "sample_shape": [int(s) for s in data.shape[1:]],
    }
    return out


def with_file(
    doc: GraphDocument,
    path: str | os.PathLike,
    array_name: str = "",
    axes: str = "",
    prediction_node: str | None = None,
) -> GraphDocument:
    """A copy of ``doc`` whose Data node (the one feeding the Prediction 6D) reads ``path``
    with its ``axes``: validation checks the file's shape (from its header) before anything is
    read, and the run or training reads it, with progress."""
    node = _replaced_source(doc, prediction_node, f"file `{path}`")
    out = doc.copy()
    out.nodes[node].params = {
        **out.nodes[node].params,
        "source": "file",
        "path": os.path.abspath(path),
        "array_name": array_name,
        "axes": axes,
    }
    return out


def estimate_bytes(p: Plan, batch_size: int = 0) -> int:
    """Bytes a prediction run allocates: the data, the weights (initialised in float32), every
    layer output of one batch, the result, and the transposed convolution's bounded working
    buffers."""
    total = 4 * math.prod(p.input_shape) + 4 * math.prod(p.output_shape) + 4 * p.weights
    outputs, largest = _batch_outputs(p, batch_size)
    # the transposed convolution's working buffers: bounded per chunk, never above a batch output
    return total + _source_bytes(p) + p.working + 2 * outputs + min(2 * CHUNK_BYTES, 2 * largest)


def _batch_outputs(p: Plan, batch_size: int) -> tuple[int, int]:
    """Bytes of every layer's output for one batch (``batch_size``; 0: all samples), and the
    largest of them."""
    n = p.input_shape[0]
    per = min(batch_size, n) if batch_size else n
    sizes = [4 * math.prod(p.shapes[nid]) * per // max(n, 1) for nid in p.chain]
    return sum(sizes), max(sizes, default=0)


def estimate_train_bytes(p: Plan, batch_size: int) -> int:
    """Bytes a training allocates: the data and the target (whole), the weights with their
    gradients and up to three optimizer slots each, and per batch every layer's output,
    pre-activation and input gradient, plus the working buffers."""
    n = p.input_shape[0]
    per = min(batch_size, n) if batch_size else n
    total = 4 * math.prod(p.input_shape) + 4 * math.prod(p.output_shape) + 5 * 4 * p.weights
    outputs, largest = _batch_outputs(p, batch_size)
    input_gradient = 4 * math.prod(p.input_shape) * per // max(n, 1)
    total += _source_bytes(p) + p.working_train + 3 * outputs + input_gradient
    return total + min(2 * CHUNK_BYTES, 2 * largest)


def _source_bytes(p: Plan) -> int:
    """The Data node's samples, held beside the transformed ones the Input receives."""
    return 4 * math.prod(p.source_shape) if p.transforms and p.source_shape else 0


def memory_estimates(doc: GraphDocument) -> dict[str, int]:
    """What running each Prediction 6D of a valid ``doc`` would need, in bytes (its chain planned
    as a run would plan it, with its node's batch size), keyed by the Prediction 6D's id."""
    out = {}
    for pid in doc.ids_with_role(OUTPUT):
        try:
            p = plan(doc, pid)
        except DocumentProblems:
            continue  # validation reports it
        out[pid] = estimate_bytes(p, doc.params(pid)["batch_size"])
    return out


def memory_problems(doc: GraphDocument, limit: int | None = None) -> list[Problem]:
    """A problem on each Prediction 6D of ``doc`` whose run would need more than ``limit`` bytes
    (default: half the available memory), found without allocating: absurd sizes or strides
    show on the node as they are typed, not at Run."""
    limit = memory.default_limit() if limit is None else limit
    return [
        Problem(
            pid,
            None,
            f"a run needs about {memory.mib(need)}, above the memory limit "
            f"of {memory.mib(limit)}; lower the batch size or the shapes",
        )
        for pid, need in memory_estimates(doc).items()
        if need > limit
    ]


def estimate_device_bytes(p: Plan, batch_size: int = 0) -> int:
    """Bytes a prediction run needs on a GPU at once: one batch of the data and, per layer, its
    output and its pre-activation (results come back to the host batch by batch)."""
    n = p.input_shape[0]
    per = batch_size if batch_size and batch_size < n else n
    total = 4 * math.prod(p.input_shape) * per // max(n, 1)
    for nid in p.chain:
        total += 2 * 4 * math.prod(p.shapes[nid]) * per // max(n, 1)
    return total


def build_graph(
    doc: GraphDocument, p: Plan, backend: str = "auto", seed: int | None = None
) -> Graph:
    """The executable graph of a plan: each node builds its own compute object (its node type's
    ``build``); a wrapper wraps the layer wired into it. Layer names: ``name``, else the node id."""

    def build(node_id: str, inner: Any = None) -> Any:
        params = doc.params(node_id)
        make = NODE_TYPES[doc.nodes[node_id].type].build
        if make is None:
            raise DocumentProblems([Problem(node_id, None, "this node builds no layer")])
        return make(params, params.get("name") or node_id, inner)

    layers = [build(p.input_node)]
    layers += [build(td, build(doc.feeder(td, "layer"))) for td in p.chain]
    return Graph(layers, backend=backend, seed=p.seed if seed is None else seed)


def load_data(
    doc: GraphDocument,
    node_id: str,
    seed: int | None = None,
    progress: Progress | None = None,
    given: dict[str, np.ndarray] | None = None,
    limit: int | None = None,
) -> np.ndarray:
    """The samples ``node_id`` gives, as float32: its source's (``given[source]`` when there,
    else generated, or read with progress when the file fits ``limit``), through every
    transform on the way (a Resample). A ``given`` dict also keeps what was read, so a source
    feeding both the Input and the Loss is read once."""
    source, transforms = data_path(doc, node_id)
    if given is not None and source in given:
        x = np.asarray(given[source], np.float32)
    else:
        params = doc.params(source)
        if params["source"] == "generator":
            x = data_sources.generate(params, seed)
        else:
            path = doc.resolve_path(params["path"])
            x = data_sources.load_file(path, params["array_name"], limit, params["axes"], progress)
        if given is not None:
            given[source] = x
    for node in transforms:
        transform = NODE_TYPES[doc.nodes[node].type].transform
        if transform is not None:
            x = transform(doc.params(node), x)
    return x


def run_document(
    doc: GraphDocument,
    *,
    backend: str = "auto",
    seed: int | None = None,
    data: np.ndarray | None = None,
    weights: str | os.PathLike | dict[str, np.ndarray] | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    memory_limit: int | None = None,
    prediction_node: str | None = None,
) -> RunResult:
    """Validate, build and run; ``seed`` overrides the document's seed and the Data seed.
    ``weights``: a .npz path (covering every layer) or named arrays (layers they do not name keep
    their seeded weights); by default the document's embedded weights, if any, else freshly
    initialised (seeded) weights."""
    if data is not None:
        data = np.asarray(data)
        doc = with_data(doc, data, prediction_node)
    p = plan(doc, prediction_node)
    batch_size = doc.params(p.prediction_node)["batch_size"]
    memory.check(estimate_bytes(p, batch_size), memory_limit, "this run", p.prediction_node)
    if progress:
        progress(0.0, "preparing data")
    given = None if data is None else {p.data_node: data}
    x = load_data(doc, p.input_feed, seed, progress, given, memory_limit)
    graph = build_graph(doc, p, backend, seed)
    free = graph.backend.free_memory()
    if free is not None and estimate_device_bytes(p, batch_size) > free:
        need = estimate_device_bytes(p, batch_size)
        raise MemoryLimitError(
            [
                Problem(
                    p.prediction_node,
                    None,
                    f"this run needs about {need / 2**20:,.1f} MiB of memory on "
                    f"{graph.backend.device_name} per batch, above the {free / 2**20:,.1f} MiB "
                    "free there; lower the batch size or the shapes",
                )
            ]
        )
    apply_run_weights(weights, doc, graph.layers)
    t0 = time.perf_counter()
    info, y = graph.predict(
        x, batch_size=batch_size or None, progress=progress, should_stop=should_stop
    )
    return RunResult(
        info, y, x, graph.backend.name, time.perf_counter() - t0, graph, p.prediction_node
    )
