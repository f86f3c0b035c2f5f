"""A model summary, as Keras's ``model.summary()``: per layer of the chain into a Prediction 6D, its
output shape, parameter count, multiply-adds and activation memory, and the totals.

The numbers come from the plan of a run (:func:`nodes.runner.plan`: the chain and every shape),
never from running it. Shapes include the batch of the Data node, so multiply-adds and activation
memory are those of one run of the graph as it stands:

- parameters: kernel ``kd·kh·kw·in_channels·n_filters`` plus ``n_filters`` biases;
- multiply-adds: a transposed convolution multiplies every input element by every kernel tap of
  every filter, ``input elements · kd·kh·kw · n_filters`` (for stride 1 and "same" padding this
  is the direct convolution's ``output elements · taps · in_channels``);
- activation memory: the layer's float32 output, ``4 · output elements`` bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from conv3dt_studio.compute.layers import fmt_shape

from .catalogue import NODE_TYPES
from .graph_document import GraphDocument
from .runner import Plan, plan, weight_count

FLOAT_BYTES = 4


@dataclass(frozen=True)
class LayerRow:
    """One line of the summary."""

    name: str  # the layer's name (as weights are keyed), or the Input node's id
    node: str  # the canvas node the row stands for
    kind: str  # "Input", "TimeDistributed(Conv3DTranspose)"
    output_shape: tuple[int, ...]  # batch first
    params: int
    macs: int
    activation_bytes: int
    trainable: bool = True


@dataclass(frozen=True)
class ModelSummary:
    """The rows of the chain into ``prediction_node``, Input first, and their totals."""

    prediction_node: str
    rows: tuple[LayerRow, ...]

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def trainable_params(self) -> int:
        return sum(r.params for r in self.rows if r.trainable)

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def total_macs(self) -> int:
        return sum(r.macs for r in self.rows)

    @property
    def activation_bytes(self) -> int:
        return sum(r.activation_bytes for r in self.rows)

    @property
    def params_bytes(self) -> int:
        return FLOAT_BYTES * self.total_params


def model_summary(doc: GraphDocument, prediction_node: str | None = None) -> ModelSummary:
    """The summary of the chain into ``prediction_node`` (None: the first Prediction 6D);
    raises :class:`nodes.DocumentProblems` when that chain has problems."""
    p = plan(doc, prediction_node)
    rows = [_input_row(doc, p)]
    for wrapper in p.chain:
        layer = doc.feeder(wrapper, "layer")
        params = doc.params(layer)
        nt = NODE_TYPES[doc.nodes[layer].type]
        x = p.shapes[doc.feeder(wrapper, "x")]
        y = tuple(p.shapes[wrapper])
        rows.append(
            LayerRow(
                name=params.get("name") or layer,
                node=wrapper,
                kind=f"{NODE_TYPES[doc.nodes[wrapper].type].title}({nt.title})",
                output_shape=y,
                params=weight_count(doc, wrapper, p.shapes),
                macs=math.prod(x) * math.prod(params["size"]) * params["n_filters"],
                activation_bytes=FLOAT_BYTES * math.prod(y),
                trainable=not nt.frozen(params),
            )
        )
    return ModelSummary(p.prediction_node, tuple(rows))


def _input_row(doc: GraphDocument, p: Plan) -> LayerRow:
    shape = tuple(p.shapes[p.input_node])
    return LayerRow(
        name=p.input_node,
        node=p.input_node,
        kind=NODE_TYPES[doc.nodes[p.input_node].type].title,
        output_shape=shape,
        params=0,
        macs=0,
        activation_bytes=FLOAT_BYTES * math.prod(shape),
    )


def size_text(n: int) -> str:
    """Bytes as people read them: '1.6 KiB', '15.0 MiB'."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n} B"


HEADERS = ("Layer (type)", "Output shape", "Param #", "Mult-adds", "Activations")


def table_rows(summary: ModelSummary) -> list[tuple[str, str, str, str, str]]:
    """The cells of each row, as text (the CLI's table and the editor's dialog show these)."""
    return [
        (
            f"{r.name} ({r.kind})" + ("" if r.trainable else " ❄"),
            fmt_shape(r.output_shape),
            f"{r.params:,}",
            f"{r.macs:,}",
            size_text(r.activation_bytes),
        )
        for r in summary.rows
    ]


def total_lines(summary: ModelSummary) -> list[str]:
    """Keras's totals, plus the run's multiply-adds and memory."""
    return [
        f"Total params: {summary.total_params:,} ({size_text(summary.params_bytes)})",
        f"Trainable params: {summary.trainable_params:,}",
        f"Non-trainable params: {summary.non_trainable_params:,}",
        f"Total mult-adds: {summary.total_macs:,}",
        f"Activation memory: {size_text(summary.activation_bytes)}",
    ]


def summary_text(summary: ModelSummary) -> str:
    """The summary as a plain-text table, Keras style."""
    rows = table_rows(summary)
    widths = [max(len(c[i]) for c in [HEADERS, *rows]) for i in range(len(HEADERS))]

    def line(cells: tuple[str, ...]) -> str:
        left = [f"{c:<{w}}" for c, w in zip(cells[:2], widths[:2])]
        right = [f"{c:>{w}}" for c, w in zip(cells[2:], widths[2:])]
        return "  ".join(left + right).rstrip()

    rule = "─" * len(line(HEADERS))
    body = [line(r) for r in rows]
    title = f'Model: "{summary.prediction_node}"'
    return "\n".join([title, rule, line(HEADERS), rule, *body, rule, *total_lines(summary)])
