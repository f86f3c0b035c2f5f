"""Validation and shape inference of a graph document, without computing anything.

Every problem is reported at once, per node, with the node id and parameter: unknown type, bad value,
missing or wrong link, cycle, shape mismatch. Each node's shape comes from its node type's own
inference (declared in the catalogue, from the layer's pure output-shape function), so the editor can
show them live. ``Problem`` and ``DocumentProblems`` live in :mod:`.problems` and are re-exported.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from conv3dt_studio.compute import Conv3DTStudioError

from .catalogue import (
    LAYER,
    LAYER_ROLE,
    NODE_TYPE_IDS,
    NODE_TYPES,
    OUTPUT,
    InferContext,
    type_with_role,
)
from .graph_document import GraphDocument, LinkIndex
from .problems import DocumentProblems, Problem  # noqa: F401 - re-exported
from .settings import TRAINING_SCHEMA

Shape = tuple


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


def _topological_order(doc: GraphDocument, index: LinkIndex) -> tuple[list[str], set[str]]:
    indeg = {nid: 0 for nid in doc.nodes}
    for ln in doc.links:
        if ln.src[0] in indeg and ln.dst[0] in indeg:
            indeg[ln.dst[0]] += 1
    ready = deque(nid for nid, d in indeg.items() if d == 0)
    order = []
    while ready:
        nid = ready.popleft()
        order.append(nid)
        for ln in index.leaving.get(nid, ()):
            if ln.dst[0] in indeg:
                indeg[ln.dst[0]] -= 1
                if indeg[ln.dst[0]] == 0:
                    ready.append(ln.dst[0])
    return order, set(doc.nodes) - set(order)


def _on_cycles(left: set[str], index: LinkIndex) -> set[str]:
    """Of the nodes a topological sort left over (on a cycle or downstream of one), those that
    lead back into the leftovers: peel off, linearly, every node with no link to another."""
    out = {n: {ln.dst[0] for ln in index.leaving.get(n, ()) if ln.dst[0] in left} for n in left}
    into: dict[str, set[str]] = {n: set() for n in left}
    for n, targets in out.items():
        for t in targets:
            into[t].add(n)
    sinks = deque(n for n, targets in out.items() if not targets)
    remaining = set(left)
    while sinks:
        n = sinks.popleft()
        remaining.discard(n)
        for m in into[n]:
            out[m].discard(n)
            if not out[m] and m in remaining:
                sinks.append(m)
    return remaining


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
        if out.kind == LAYER:
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
        errs = nt.schema.problems(node.params, where=f"node `{nid}`")  # constraints included
        problems.extend(Problem(nid, e.param, str(e)) for e in errs)
        if not errs:
            params[nid] = nt.schema.validate(node.params)
    _check_links(doc, problems)
    index = doc.link_index()
    order, cyclic = _topological_order(doc, index)
    if cyclic:
        # nodes merely downstream of a cycle are left over too; name only those on one
        on_cycle = sorted(_on_cycles(cyclic, index)) or sorted(cyclic)
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
            if index.upstream(nid, port.name) is None:
                problems.append(
                    Problem(
                        nid,
                        port.name,
                        f"missing link: input `{port.name}` ({port.kind}) is not connected",
                    )
                )
    if not doc.ids_with_role(OUTPUT):
        title = type_with_role(OUTPUT).title
        problems.append(Problem(None, None, f"no {title} node: add one to run the graph"))
    problems.extend(_duplicate_layer_names(doc, params))
    problems.extend(_extras_problems(doc, params))
    shapes = _infer(doc, index, order, params, problems)
    return Report(problems, shapes, order)


def relevant_problems(doc: GraphDocument, problems: list[Problem], end: str) -> list[Problem]:
    """The problems that concern ``end``'s own chain (the node and everything feeding it) or the
    whole document; an unfinished branch elsewhere does not stop it."""
    chain = doc.ancestors(end) | {end}
    return [p for p in problems if p.node is None or p.node in chain]


def _duplicate_layer_names(doc: GraphDocument, params: dict[str, dict]) -> list[Problem]:
    """Layer names (the ``name`` parameter, else the node id) must be unique within their node
    types' ``name_scope``: the layers' names key weights files, the Input and wrappers' name the
    graph's layers."""
    out = []
    scopes = {t.name_scope for t in NODE_TYPES.values() if t.name_scope}
    for scope in sorted(scopes):
        seen: dict[str, str] = {}
        for nid, node in doc.nodes.items():
            nt = NODE_TYPES.get(node.type)
            if nt is None or nt.name_scope != scope or nid not in params:
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


def _extras_problems(doc: GraphDocument, params: dict[str, dict]) -> list[Problem]:
    """Problems of the document's training settings and embedded weights (checked on use too):
    weights that cannot be decoded, and a layer's weights holding NaN or Inf, on its node (as a
    run refuses them; checked on the arrays decoded here, so nothing is decoded twice)."""
    from .weights import EMBEDDED, decode_weights, non_finite_layers, non_finite_message

    out = []
    if "training" in doc.extras:
        for e in TRAINING_SCHEMA.problems(doc.extras["training"], where="training"):
            out.append(Problem(None, "training", str(e)))
    if doc.extras.get("weights"):
        try:
            arrays = decode_weights(doc.extras["weights"])
        except Conv3DTStudioError as e:
            out.append(Problem(None, "weights", str(e)))
            return out
        nodes = {  # layer name -> its node, for the layers whose parameters are valid
            params[nid].get("name") or nid: nid
            for nid in doc.ids_with_role(LAYER_ROLE)
            if nid in params
        }
        uses_bias = {name: bool(params[nid].get("use_bias", True)) for name, nid in nodes.items()}
        for name in non_finite_layers(arrays, uses_bias):
            out.append(Problem(nodes[name], None, non_finite_message(EMBEDDED, name)))
    return out


def _infer(
    doc: GraphDocument,
    index: LinkIndex,
    order: list[str],
    params: dict[str, dict],
    problems: list[Problem],
) -> dict[str, Shape | None]:
    """Every node's output shape, each from its node type's own inference, in topological order."""
    shapes: dict[str, Shape | None] = {nid: None for nid in doc.nodes}
    for nid in order:
        if nid not in params:  # unknown type or invalid parameters: reported already
            continue
        nt = NODE_TYPES[doc.nodes[nid].type]
        ctx = InferContext(doc, index, nid, params[nid], shapes, params, problems)
        try:
            shape = nt.infer(ctx)
        except Conv3DTStudioError as e:  # e.g. a data file that cannot be read
            param = getattr(e, "param", None) or (nt.path_params[0] if nt.path_params else None)
            problems.append(Problem(nid, param, str(e)))
            continue
        if shape is not None or shapes[nid] is None:
            shapes[nid] = shape
    return shapes


def infer_shapes(doc: GraphDocument) -> dict[str, Shape | None]:
    return validate(doc).shapes
