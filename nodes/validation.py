"""Validation and shape inference of a graph document, without computing anything.

Every problem is reported at once, per node, with the node id and parameter: unknown type, bad value,
missing or wrong link, cycle, shape mismatch. Shapes come from the layer's pure output-shape function,
so the editor can show them live.
"""

from __future__ import annotations

from dataclasses import dataclass

from conv3dt_studio.compute import Conv3DTStudioError, ParameterError
from conv3dt_studio.compute.conv3d_transpose import (
    check_cross_constraints,
    conv3d_transpose_output_shape,
)
from conv3dt_studio.compute.layers import fmt_shape

from .catalogue import NODE_TYPE_IDS, NODE_TYPES
from .data_sources import generated_shape, peek_shape
from .graph_document import GraphDocument

Shape = tuple


@dataclass(frozen=True)
class Problem:
    node: str | None  # node id, None for the whole document
    param: str | None  # parameter or port name
    message: str

    def __str__(self) -> str:
        where = []
        if self.node is not None:
            where.append(f"node `{self.node}`")
        if self.param is not None:
            where.append(f"`{self.param}`")
        return (", ".join(where) + ": " if where else "") + self.message


class DocumentProblems(Conv3DTStudioError, ValueError):
    """The document cannot run; ``problems`` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


@dataclass
class Report:
    problems: list[Problem]
    shapes: dict[str, Shape | None]  # each node's output shape (batch first), None if unknown
    order: list[str]  # topological order (nodes in cycles left out)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problems_of(self, node_id: str) -> list[Problem]:
        return [p for p in self.problems if p.node == node_id]


def _topological_order(doc: GraphDocument) -> tuple[list[str], set[str]]:
    indeg = {nid: 0 for nid in doc.nodes}
    for ln in doc.links:
        if ln.src[0] in indeg and ln.dst[0] in indeg:
            indeg[ln.dst[0]] += 1
    ready = [nid for nid, d in indeg.items() if d == 0]
    order = []
    while ready:
        nid = ready.pop(0)
        order.append(nid)
        for ln in doc.downstream(nid):
            if ln.dst[0] in indeg:
                indeg[ln.dst[0]] -= 1
                if indeg[ln.dst[0]] == 0:
                    ready.append(ln.dst[0])
    return order, set(doc.nodes) - set(order)


def _check_links(doc: GraphDocument, problems: list[Problem]) -> None:
    seen_inputs: set[tuple[str, str]] = set()
    seen_layers: set[tuple[str, str]] = set()
    for ln in doc.links:
        (s, sp), (d, dp) = ln.src, ln.dst
        if s not in doc.nodes or d not in doc.nodes:
            missing = s if s not in doc.nodes else d
            problems.append(
                Problem(
                    None,
                    None,
                    f"link {s}.{sp} -> {d}.{dp} names a node `{missing}` that does not exist",
                )
            )
            continue
        st, dt = NODE_TYPES.get(doc.nodes[s].type), NODE_TYPES.get(doc.nodes[d].type)
        if st is None or dt is None:
            continue  # reported as an unknown type
        out, inp = st.output_port(sp), dt.input_port(dp)
        if out is None:
            problems.append(
                Problem(
                    s,
                    sp,
                    f"no output port `{sp}` (has: "
                    f"{', '.join(p.name for p in st.outputs) or 'none'})",
                )
            )
            continue
        if inp is None:
            problems.append(
                Problem(
                    d,
                    dp,
                    f"no input port `{dp}` (has: {', '.join(p.name for p in dt.inputs) or 'none'})",
                )
            )
            continue
        if out.kind != inp.kind:
            problems.append(
                Problem(
                    d,
                    dp,
                    f"wrong port kind: `{s}.{sp}` gives a {out.kind}, "
                    f"this port accepts a {inp.kind}",
                )
            )
        if ln.dst in seen_inputs:
            problems.append(Problem(d, dp, "input port fed by more than one link"))
        seen_inputs.add(ln.dst)
        if out.kind == "layer":
            if ln.src in seen_layers:
                problems.append(Problem(s, sp, "one layer can feed only one TimeDistributed"))
            seen_layers.add(ln.src)


def validate(doc: GraphDocument) -> Report:
    """Every problem of ``doc`` and every node's inferred output shape."""
    problems: list[Problem] = []
    params: dict[str, dict] = {}
    for nid, node in doc.nodes.items():
        nt = NODE_TYPES.get(node.type)
        if nt is None:
            problems.append(
                Problem(
                    nid,
                    None,
                    f"unknown node type {node.type!r}; known types: {', '.join(NODE_TYPE_IDS)}",
                )
            )
            continue
        errs = nt.schema.problems(node.params, where=f"node `{nid}`")
        for e in errs:
            name = str(e).split("`")[1] if "`" in str(e) else None
            problems.append(Problem(nid, name, str(e)))
        if not errs:
            values = nt.schema.validate(node.params)
            try:
                if node.type == "conv3d_transpose":
                    check_cross_constraints(values)
                params[nid] = values
            except ParameterError as e:
                problems.append(Problem(nid, "output_padding", str(e)))
    _check_links(doc, problems)
    order, cyclic = _topological_order(doc)
    if cyclic:
        # nodes merely downstream of a cycle are left over too; name only those on one
        on_cycle = sorted(n for n in cyclic if n in doc.descendants(n)) or sorted(cyclic)
        problems.append(
            Problem(
                None,
                None,
                f"cycle through nodes {', '.join(on_cycle)}: graphs must be acyclic",
            )
        )
    for nid, node in doc.nodes.items():
        nt = NODE_TYPES.get(node.type)
        for port in nt.inputs if nt else ():
            if doc.upstream(nid, port.name) is None:
                problems.append(
                    Problem(
                        nid,
                        port.name,
                        f"missing link: input `{port.name}` ({port.kind}) is not connected",
                    )
                )
    if not doc.nodes_of_type("prediction_6d"):
        problems.append(Problem(None, None, "no Prediction 6D node: add one to run the graph"))
    problems.extend(_duplicate_layer_names(doc, params))
    problems.extend(_extras_problems(doc))
    shapes = _infer(doc, order, params, problems)
    return Report(problems, shapes, order)


def relevant_problems(doc: GraphDocument, problems: list[Problem], end: str) -> list[Problem]:
    """The problems that concern ``end``'s own chain (the node and everything feeding it) or the
    whole document; an unfinished branch elsewhere does not stop it."""
    chain = doc.ancestors(end) | {end}
    return [p for p in problems if p.node is None or p.node in chain]


def _duplicate_layer_names(doc: GraphDocument, params: dict[str, dict]) -> list[Problem]:
    """Layer names (the ``name`` parameter, else the node id) must be unique among the
    Conv3DTranspose nodes, which they key in weights files, and among the Input and
    TimeDistributed nodes, which they name in a graph."""
    out = []
    for kinds in (("conv3d_transpose",), ("input", "time_distributed")):
        seen: dict[str, str] = {}
        for nid, node in doc.nodes.items():
            if node.type not in kinds or nid not in params:
                continue
            name = params[nid].get("name") or nid
            if name in seen:
                out.append(
                    Problem(
                        nid,
                        "name",
                        f"layer name `{name}` is also node `{seen[name]}`'s: layer names must be "
                        "unique (they key the trained weights)",
                    )
                )
            else:
                seen[name] = nid
    return out


def _extras_problems(doc: GraphDocument) -> list[Problem]:
    """Problems of the document's training settings and embedded weights (checked on use too)."""
    from .training import TRAINING_SCHEMA
    from .weights import decode_weights

    out = []
    if "training" in doc.extras:
        for e in TRAINING_SCHEMA.problems(doc.extras["training"], where="training"):
            out.append(Problem(None, "training", str(e)))
    if doc.extras.get("weights"):
        try:
            decode_weights(doc.extras["weights"])
        except Conv3DTStudioError as e:
            out.append(Problem(None, "weights", str(e)))
    return out


def _infer(doc, order, params, problems) -> dict[str, Shape | None]:
    shapes: dict[str, Shape | None] = {nid: None for nid in doc.nodes}

    def up(nid: str, port: str) -> Shape | None:
        src = doc.upstream(nid, port)
        return shapes.get(src[0]) if src else None

    for nid in order:
        node = doc.nodes[nid]
        p = params.get(nid)
        if p is None:
            continue
        kind = node.type
        try:
            if kind == "target" and p["source"] == "teacher":
                continue  # the prediction's shape, set by the Loss node below
            if kind in ("data", "target"):
                shapes[nid] = (
                    generated_shape(p)
                    if p["source"] == "generator"
                    else peek_shape(doc.resolve_path(p["path"]), p["array_name"])
                )
                if len(shapes[nid]) < 2 or 0 in shapes[nid]:
                    problems.append(
                        Problem(
                            nid,
                            "path",
                            f"empty data: expected at least one "
                            f"sample (batch first). Received: shape "
                            f"{fmt_shape(shapes[nid])}",
                        )
                    )
                    shapes[nid] = None
                    continue
            elif kind == "input":
                s = up(nid, "x")
                if s is not None and tuple(s[1:]) != tuple(p["shape"]):
                    problems.append(
                        Problem(
                            nid,
                            "shape",
                            f"shape mismatch: Input expects "
                            f"{fmt_shape((None, *p['shape']))}, its data has "
                            f"{fmt_shape(s)}",
                        )
                    )
                    continue
                shapes[nid] = (s[0] if s else None, *p["shape"])
            elif kind == "time_distributed":
                shapes[nid] = _td_shape(doc, nid, up(nid, "x"), params, problems)
            elif kind == "prediction_6d":
                shapes[nid] = up(nid, "x")
            elif kind == "loss":
                a, b = up(nid, "prediction"), up(nid, "target")
                src = doc.upstream(nid, "target")
                teacher = src and params.get(src[0], {}).get("source") == "teacher"
                if teacher and a is not None:
                    shapes[src[0]] = b = a
                if a is not None and b is not None and tuple(a) != tuple(b):
                    problems.append(
                        Problem(
                            nid,
                            "target",
                            f"shape mismatch: target "
                            f"{fmt_shape(b)} must equal prediction "
                            f"{fmt_shape(a)}",
                        )
                    )
        except Conv3DTStudioError as e:
            param = "path" if kind in ("data", "target") else None
            problems.append(Problem(nid, param, str(e)))
    return shapes


def _td_shape(doc, nid, x: Shape | None, params, problems) -> Shape | None:
    src = doc.upstream(nid, "layer")
    if x is None or src is None or src[0] not in params:
        return None
    if len(x) != 6:
        problems.append(
            Problem(
                nid,
                "x",
                f"shape mismatch: TimeDistributed(Conv3DTranspose) "
                f"needs 6-D data (batch, time, ...). Received "
                f"{fmt_shape(x)}",
            )
        )
        return None
    config = params[src[0]]
    inner = conv3d_transpose_output_shape(config, (None, *x[2:]))
    return (x[0], x[1], *inner[1:])


def infer_shapes(doc: GraphDocument) -> dict[str, Shape | None]:
    return validate(doc).shapes
