"""``conv3dt-studio summary GRAPH [--prediction NODE]``: the model summary
(:func:`nodes.summary.model_summary`) as a Keras-style table; problems of the chain give one line
each and exit status 2."""

from __future__ import annotations

import argparse

from .errors import EXIT_OK, with_source


def cmd_summary(args: argparse.Namespace) -> int:
    from conv3dt_studio import nodes
    from conv3dt_studio.nodes.summary import model_summary, summary_text

    doc = nodes.load(args.graph)
    try:
        summary = model_summary(doc, args.prediction)
    except nodes.DocumentProblems as exc:
        raise with_source(exc, args.graph) from None
    print(summary_text(summary))
    return EXIT_OK
