"""The headless graph commands ``run``, ``validate`` and ``info``.

``run`` computes one Prediction 6D of a graph and prints the toolkit's info cluster (name, graph
index, shape), the backend and statistics; ``validate`` prints each node's inferred output shape or
every problem; ``info`` prints the version, the backends and the node types. None imports Qt.
"""

from __future__ import annotations

import argparse
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import EXIT_OK, PROG, UsageError, with_source
from .output_files import checked_output
from .parser import version
from .progress import Progress

if TYPE_CHECKING:
    from conv3dt_studio.nodes import GraphDocument, RunResult


def cmd_run(args: argparse.Namespace) -> int:
    """``run``: compute the graph's Prediction 6D, print it, save it with ``--out``."""
    from conv3dt_studio import nodes
    from conv3dt_studio.nodes.files import save_npy

    graph = nodes.DEFAULT_EXAMPLE if args.graph is None else Path(args.graph)
    out = checked_output(args.out, args.force, "--out", suffix=".npy")
    doc = nodes.load(graph)
    _check_prediction(doc, args.prediction, graph)
    doc = with_data_file(doc, args, args.prediction)
    limit = None if args.memory_limit is None else int(args.memory_limit * 2**20)
    progress = Progress()
    try:
        result = nodes.run_document(
            doc,
            backend=args.backend,
            seed=args.seed,
            weights=args.weights,
            progress=lambda fraction, message: _batches_only(progress, fraction, message),
            memory_limit=limit,
            prediction_node=args.prediction,
        )
    except nodes.DocumentProblems as exc:
        # problems of the data given name its file too
        given = graph if args.data is None else f"{graph} with --data {args.data}"
        raise with_source(exc, given) from None
    finally:
        progress.close()
    _print_prediction(result, graph)
    if out is not None:
        checked_output(str(out), args.force, "--out")  # a file may have appeared while running
        save_npy(out, result.prediction)
        print(f"saved: {out}")
    return EXIT_OK


def with_data_file(doc: GraphDocument, args: argparse.Namespace, pred: str | None) -> GraphDocument:
    """``doc`` whose Data node feeding ``pred`` reads the ``--data`` file (its ``--array``, its
    axes mapped by ``--axes``); ``doc`` itself without ``--data``."""
    if args.data is None:
        if args.axes or args.array:
            option = "--axes" if args.axes else "--array"
            raise UsageError(f"{option} describes the --data file: give --data FILE too")
        return doc
    from conv3dt_studio.nodes import FileError
    from conv3dt_studio.nodes.data_sources import peek_shape
    from conv3dt_studio.nodes.runner import with_file

    try:
        peek_shape(args.data, args.array, args.axes)
    except FileError as exc:
        if exc.param is not None:  # --array or --axes at fault: named so (see dispatch)
            raise
        # a fault of the file itself is reported by the run, naming the node that reads it
    return with_file(doc, args.data, args.array, args.axes, pred)


def _batches_only(progress: Progress, fraction: float, message: str) -> None:
    """Progress is shown for reading a file and for runs of several batches."""
    if (
        message.startswith("reading ")
        or message.startswith("batch ")
        and not message.endswith(" 1/1")
    ):
        progress(fraction, message)


def _print_prediction(result: RunResult, graph: Path) -> None:
    info, stats = result.info, result.stats()
    backend = result.graph.backend
    print(f"Prediction 6D `{result.prediction_node}` ({graph.name})")
    print(f"  name:        {info.name}")
    print(f"  graph index: {info.index}")
    print(f"  shape:       {_fmt_shape(info.shape)}")
    print(f"backend: {backend.name} ({backend.device_name})")
    finite = "finite " if stats["nan"] or stats["inf"] else ""  # NaN and Inf left out
    print(
        f"{finite}min: {stats['min']:.6g}  max: {stats['max']:.6g}  "
        f"{finite}mean: {stats['mean']:.6g}  std: {stats['std']:.6g}"
    )
    print(f"NaN: {stats['nan']}  Inf: {stats['inf']}")
    print(f"elapsed: {result.seconds:.3f} s")


def _check_prediction(doc: GraphDocument, node_id: str | None, graph: Path) -> None:
    """``--prediction`` must name one of the graph's Prediction 6D nodes."""
    if node_id is None:
        return
    from conv3dt_studio.nodes import OUTPUT

    preds = doc.ids_with_role(OUTPUT)
    if node_id not in preds:
        allowed = ", ".join(f"`{p}`" for p in preds) or "none"
        raise UsageError(
            f"Invalid value for --prediction: expected a Prediction 6D node of {graph.name} "
            f"(it has: {allowed}). Received: `{node_id}`"
        )


def cmd_validate(args: argparse.Namespace) -> int:
    """``validate``: the per-node shape table, or every problem (a :class:`DocumentProblems`)."""
    from conv3dt_studio import nodes
    from conv3dt_studio.nodes import memory
    from conv3dt_studio.nodes.runner import memory_estimates, memory_problems

    doc = nodes.load(args.graph)
    report = nodes.validate(doc)
    if not report.ok:
        raise with_source(nodes.DocumentProblems(report.problems), args.graph)
    limit = memory.default_limit()
    too_big = memory_problems(doc, limit)
    if too_big:
        raise with_source(nodes.DocumentProblems(too_big), args.graph)
    rows = [
        (nid, doc.nodes[nid].type, _shape_cell(doc.nodes[nid].type, report.shapes[nid]))
        for nid in report.order
    ]
    widths = [max(len(r[i]) for r in [("node", "type", "output shape"), *rows]) for i in range(2)]
    print(f"{'node':<{widths[0]}}  {'type':<{widths[1]}}  output shape")
    for nid, type_id, shape in rows:
        print(f"{nid:<{widths[0]}}  {type_id:<{widths[1]}}  {shape}")
    for pid, need in memory_estimates(doc).items():
        print(f"memory for a run of {pid}: about {memory.mib(need)} (limit {memory.mib(limit)})")
    print(f"{args.graph}: OK ({len(rows)} nodes, {len(doc.links)} links)")
    return EXIT_OK


def _fmt_shape(shape: Sequence[int | None]) -> str:
    from conv3dt_studio.compute.layers import fmt_shape

    return fmt_shape(shape)


def _shape_cell(type_id: str, shape: Sequence[int | None] | None) -> str:
    """A node's output shape for the validate table; layer outputs are not tensors."""
    from conv3dt_studio import nodes

    if shape is not None:
        return _fmt_shape(shape)
    outputs = nodes.NODE_TYPES[type_id].outputs
    return "(layer)" if any(p.kind == nodes.LAYER for p in outputs) else "-"


def cmd_info(args: argparse.Namespace) -> int:
    """``info``: version, Python, NumPy, CuPy (with the GPU) and the node types."""
    import numpy as np

    from conv3dt_studio import compute, nodes

    print(f"{PROG} {version()}")
    print(f"Python: {platform.python_version()}")
    print(f"NumPy: {np.__version__}")
    print(f"CuPy: {compute.cupy_status()}")
    print("node types:")
    width = max(len(t) for t in nodes.NODE_TYPE_IDS)
    for t in nodes.NODE_TYPES.values():
        print(f"  {t.type_id:<{width}}  v{t.version}  {t.title} ({t.category})")
    return EXIT_OK
