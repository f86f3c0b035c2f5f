"""``export`` and ``import``: take a graph to ONNX, Keras, PyTorch or a Python script, and bring a
Keras or PyTorch model back as a graph (the editor's File -> Export and Open use the same
functions, :func:`conv3dt_studio.nodes.interop.export_document` and ``import_model``).

An invalid graph prints its validation problems, one per line, with exit status 2; a format whose
library is not installed names the ``pip install`` to run. No Qt is imported.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import EXIT_OK, PROG, with_source
from .output_files import checked_output


def cmd_export(args: argparse.Namespace) -> int:
    """``export GRAPH --format F -o PATH``: write the graph and its weights in format F."""
    from conv3dt_studio import nodes
    from conv3dt_studio.nodes.interop import export_document

    graph = Path(args.graph)
    doc = nodes.load(graph)
    try:
        result = export_document(
            doc,
            args.format,
            args.output,
            weights=args.weights,
            prediction=args.prediction,
            seed=args.seed,
            force=args.force,
            source=graph,
        )
    except nodes.DocumentProblems as exc:
        raise with_source(exc, graph) from None
    print(result.summary)
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    """``import MODEL -o GRAPH.json``: a Keras or PyTorch model as a graph, weights embedded."""
    from conv3dt_studio.nodes import LAYER_ROLE
    from conv3dt_studio.nodes.interop import import_model

    out = checked_output(args.output, args.force, "-o", suffix=".json")
    notes: list[str] = []
    doc = import_model(args.model, notes=notes)
    doc.save(out)
    layers = len(doc.ids_with_role(LAYER_ROLE))
    print(f"imported {layers} layer{'s' if layers != 1 else ''} from `{args.model}` into `{out}`")
    for note in notes:  # what the import chose itself, e.g. 1 time step
        print(f"{PROG}: warning: {note}", file=sys.stderr)
    return EXIT_OK
