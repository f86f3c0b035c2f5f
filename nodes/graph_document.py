"""The graph document: our own stable, versioned JSON format (not NodeGraphQt's session format).

```
{"format": "conv3dt-studio/graph", "version": 1,
 "settings": {"seed": 0},
 "nodes": [{"id": "conv3d_transpose", "type": "conv3d_transpose", "params": {...},
            "ui": {"pos": [x, y]}}],
 "links": [{"from": ["conv3d_transpose", "layer"], "to": ["time_distributed", "layer"]}]}
```
Ids are stable strings chosen at creation, never memory addresses; ``ui`` is optional. Saving is
atomic. Loading checks the structure against the package's ``graph.schema.json`` and migrates older
versions; per-node problems (unknown type, bad value, missing link...) are kept and reported all at
once by :func:`nodes.validation.validate`.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conv3dt_studio.compute import Conv3DTStudioError, ParameterError
from conv3dt_studio.compute.conv3d_transpose import check_cross_constraints
from conv3dt_studio.resources import DEFAULT_EXAMPLE, SCHEMA_PATH

from .catalogue import NODE_TYPE_IDS, NODE_TYPES, node_type
from .files import FileError, atomic_write_text

FORMAT = "conv3dt-studio/graph"
VERSION = 1

# version N -> function turning a version-N document dict into a version N+1 one
MIGRATIONS: dict[int, Callable[[dict], dict]] = {}

_ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


class DocumentError(Conv3DTStudioError, ValueError):
    """A graph file or JSON text cannot be read as a graph document."""


class LinkError(Conv3DTStudioError, ValueError):
    """A connection that the port rules refuse (wrong kind, taken port, cycle...)."""


@dataclass
class Node:
    id: str
    type: str
    params: dict[str, Any]  # JSON values; validated when set through the document
    pos: tuple[float, float] | None = None


@dataclass(frozen=True)
class Link:
    src: tuple[str, str]  # (node id, output port)
    dst: tuple[str, str]  # (node id, input port)


@dataclass
class GraphDocument:
    nodes: dict[str, Node] = field(default_factory=dict)
    links: list[Link] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=lambda: {"seed": 0})
    extras: dict[str, Any] = field(default_factory=dict)  # training settings, embedded weights
    # folder of the file it was loaded from: relative data paths are resolved against it
    base_dir: Path | None = field(default=None, compare=False)

    def resolve_path(self, path: str) -> str:
        """A data file path as written in a node, made absolute against the graph's folder."""
        if not path or os.path.isabs(path) or self.base_dir is None:
            return path
        return str(self.base_dir / path)

    # ------------------------------------------------------------------ nodes
    def new_id(self, type_id: str) -> str:
        if type_id not in self.nodes:
            return type_id
        n = 2
        while f"{type_id}_{n}" in self.nodes:
            n += 1
        return f"{type_id}_{n}"

    def add_node(
        self,
        type_id: str,
        params: dict[str, Any] | None = None,
        pos: tuple[float, float] | None = None,
        node_id: str | None = None,
    ) -> Node:
        """Create a node with validated parameters (defaults for those not given)."""
        nt = node_type(type_id)
        if nt is None:
            raise ParameterError(
                f"Unknown node type {type_id!r}: expected one of {', '.join(NODE_TYPE_IDS)}"
            )
        node_id = node_id or self.new_id(type_id)
        if node_id in self.nodes:
            raise ParameterError(f"Node id `{node_id}` is already used")
        if not _ID_RE.match(node_id):
            raise ParameterError(
                f"Invalid node id: expected letters, digits, _ . - (not first). "
                f"Received: {node_id!r}"
            )
        values = nt.schema.validate(params, where=f"node `{node_id}`")
        if type_id == "conv3d_transpose":
            check_cross_constraints(values)
        node = Node(node_id, type_id, nt.schema.to_json(values), _pos(pos))
        self.nodes[node_id] = node
        return node

    def remove_node(self, node_id: str) -> None:
        self.nodes.pop(node_id)
        self.links = [ln for ln in self.links if node_id not in (ln.src[0], ln.dst[0])]

    def set_param(self, node_id: str, name: str, value: Any) -> Any:
        """Validate and set one parameter; the document is unchanged on error. Returns the stored
        (JSON) value."""
        node = self.nodes[node_id]
        nt = NODE_TYPES[node.type]
        if name not in nt.schema:
            raise ParameterError(
                f"Unknown parameter `{name}` of node `{node_id}`: expected one of "
                f"{', '.join(nt.schema.names())}"
            )
        param = nt.schema[name]
        normalised = param.validate(value)
        merged = {**node.params, name: param.to_json(normalised)}
        # a damaged unrelated value (from a file) must not block repairing the node field by field
        if node.type == "conv3d_transpose" and not nt.schema.problems(merged):
            check_cross_constraints(nt.schema.validate(merged))
        node.params[name] = param.to_json(normalised)
        return node.params[name]

    def params(self, node_id: str) -> dict[str, Any]:
        """The node's parameters as Python values (raises :class:`ParameterError` if invalid)."""
        node = self.nodes[node_id]
        return NODE_TYPES[node.type].schema.validate(node.params, where=f"node `{node_id}`")

    # ------------------------------------------------------------------ links
    def connect(
        self, src: str, src_port: str, dst: str, dst_port: str, replace: bool = False
    ) -> Link:
        """Connect an output port to an input port, enforcing the port rules."""
        problem = self.link_problem(src, src_port, dst, dst_port, replace=replace)
        if problem:
            raise LinkError(problem)
        if replace:
            self.links = [ln for ln in self.links if ln.dst != (dst, dst_port)]
        link = Link((src, src_port), (dst, dst_port))
        self.links.append(link)
        return link

    def link_problem(
        self, src: str, src_port: str, dst: str, dst_port: str, replace: bool = False
    ) -> str | None:
        """Why this connection is refused, or None when allowed."""
        for nid in (src, dst):
            if nid not in self.nodes:
                return f"Cannot connect: no node `{nid}`"
            if self.nodes[nid].type not in NODE_TYPES:
                return f"Cannot connect: node `{nid}` has unknown type {self.nodes[nid].type!r}"
        out = NODE_TYPES[self.nodes[src].type].output_port(src_port)
        inp = NODE_TYPES[self.nodes[dst].type].input_port(dst_port)
        if out is None:
            return f"Cannot connect: node `{src}` has no output port `{src_port}`"
        if inp is None:
            return f"Cannot connect: node `{dst}` has no input port `{dst_port}`"
        if out.kind != inp.kind:
            return (
                f"Cannot connect `{src}.{src_port}` ({out.kind}) to `{dst}.{dst_port}` "
                f"({inp.kind}): a {inp.kind} port accepts only a {inp.kind}"
            )
        if not replace and self.upstream(dst, dst_port) is not None:
            s = self.upstream(dst, dst_port)
            return f"Cannot connect: `{dst}.{dst_port}` is already fed by `{s[0]}.{s[1]}`"
        if out.kind == "layer" and any(ln.src == (src, src_port) for ln in self.links):
            return (
                f"Cannot connect: the layer of `{src}` already feeds a TimeDistributed node "
                "(one layer, one wrapper)"
            )
        if src == dst or src in self.descendants(dst):
            return f"Cannot connect `{src}` to `{dst}`: it would make a cycle"
        return None

    def disconnect(self, src: str, src_port: str, dst: str, dst_port: str) -> None:
        self.links.remove(Link((src, src_port), (dst, dst_port)))

    def upstream(self, node_id: str, port: str) -> tuple[str, str] | None:
        return next((ln.src for ln in self.links if ln.dst == (node_id, port)), None)

    def downstream(self, node_id: str) -> list[Link]:
        return [ln for ln in self.links if ln.src[0] == node_id]

    def descendants(self, node_id: str) -> set[str]:
        """Every node reachable along links from ``node_id``."""
        return self._reachable(node_id, lambda n: [ln.dst[0] for ln in self.downstream(n)])

    def ancestors(self, node_id: str) -> set[str]:
        """Every node from which links lead to ``node_id``."""
        return self._reachable(
            node_id, lambda n: [ln.src[0] for ln in self.links if ln.dst[0] == n]
        )

    @staticmethod
    def _reachable(start: str, neighbours) -> set[str]:
        seen: set[str] = set()
        stack = [start]
        while stack:
            for other in neighbours(stack.pop()):
                if other not in seen:
                    seen.add(other)
                    stack.append(other)
        return seen

    def nodes_of_type(self, type_id: str) -> list[Node]:
        return [n for n in self.nodes.values() if n.type == type_id]

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> dict[str, Any]:
        nodes = []
        for n in self.nodes.values():
            item: dict[str, Any] = {"id": n.id, "type": n.type, "params": copy.deepcopy(n.params)}
            if n.pos is not None:
                item["ui"] = {"pos": [n.pos[0], n.pos[1]]}
            nodes.append(item)
        data: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "settings": dict(self.settings),
            "nodes": nodes,
            "links": [{"from": list(ln.src), "to": list(ln.dst)} for ln in self.links],
        }
        data.update(copy.deepcopy(self.extras))
        return data

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"

    def save(self, path: str | os.PathLike) -> None:
        """Atomic save (temporary file, then rename). Relative data paths are rewritten relative
        to the new file's folder, so the saved graph finds its data wherever it is saved."""
        out = self.copy()
        target_dir = Path(path).resolve().parent
        base = self.base_dir  # None: a new graph, its paths are meant relative to where it goes
        if base is not None and base != target_dir:
            for node in out.nodes.values():
                rel = node.params.get("path") if node.type in ("data", "target") else None
                if isinstance(rel, str) and rel and not os.path.isabs(rel):
                    node.params["path"] = os.path.relpath(base / rel, target_dir)
        atomic_write_text(path, out.dumps())

    def copy(self) -> GraphDocument:
        doc = from_json(self.to_json())
        doc.base_dir = self.base_dir
        return doc


def _pos(pos) -> tuple[float, float] | None:
    if pos is None:
        return None
    return (float(pos[0]), float(pos[1]))


# ---------------------------------------------------------------------- loading
EXTRA_KEYS = ("training", "weights")


def document_json_schema() -> dict[str, Any]:
    """The JSON Schema of the document (structure; ``$defs`` hold each node type's parameters)."""
    pair = {
        "type": "array",
        "prefixItems": [{"type": "string"}, {"type": "string"}],
        "minItems": 2,
        "maxItems": 2,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://conv3dt-studio.example/graph.schema.json",
        "title": "Conv3DT Studio graph document",
        "type": "object",
        "required": ["format", "version", "nodes", "links"],
        "properties": {
            "format": {"const": FORMAT},
            "version": {"type": "integer", "minimum": 1},
            "settings": {
                "type": "object",
                "properties": {"seed": {"type": "integer", "minimum": 0}},
            },
            "nodes": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "type"],
                    "properties": {
                        "id": {"type": "string", "pattern": _ID_RE.pattern},
                        "type": {"type": "string"},
                        "params": {"type": "object"},
                        "ui": {
                            "type": "object",
                            "properties": {
                                "pos": {
                                    "type": "array",
                                    "items": {"type": "number"},
                                    "minItems": 2,
                                    "maxItems": 2,
                                }
                            },
                        },
                    },
                },
            },
            "links": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["from", "to"],
                    "properties": {"from": pair, "to": pair},
                    "additionalProperties": False,
                },
            },
            "training": {"type": "object"},
            "weights": {"type": "object"},
        },
        "additionalProperties": False,
        "$defs": {f"{t.type_id}_params": t.schema.json_schema() for t in NODE_TYPES.values()},
    }


def _schema_validator():
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def migrate(data: dict[str, Any], source: str = "document") -> dict[str, Any]:
    """Bring a document dict to :data:`VERSION` through :data:`MIGRATIONS`, one version a step."""
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise DocumentError(
            f"{source}: `version` must be a positive integer. Received: {version!r}"
        )
    if version > VERSION:
        raise DocumentError(
            f"{source}: made by a newer Conv3DT Studio (format version {version}; "
            f"this one reads up to {VERSION})"
        )
    while version < VERSION:
        if version not in MIGRATIONS:
            raise DocumentError(f"{source}: no migration from format version {version}")
        data = MIGRATIONS[version](copy.deepcopy(data))
        version += 1
        data["version"] = version
    return data


def from_json(data: Any, source: str = "document") -> GraphDocument:
    """Build a document from parsed JSON: structure checked, migrated; node parameters kept as
    given (bad values are reported by validation, not dropped)."""
    if not isinstance(data, dict):
        raise DocumentError(
            f"{source}: expected a JSON object at the top level. Received: {type(data).__name__}"
        )
    if data.get("format") != FORMAT:
        raise DocumentError(
            f'{source}: not a Conv3DT Studio graph (expected "format": '
            f'"{FORMAT}"). Received: format={data.get("format")!r}'
        )
    data = migrate(data, source)
    errors = sorted(_schema_validator().iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        raise DocumentError(f"{source}: invalid graph document at `{where}`: {e.message}")
    doc = GraphDocument(settings={"seed": 0, **data.get("settings", {})})
    for item in data["nodes"]:
        nid = item["id"]
        if nid in doc.nodes:
            raise DocumentError(f"{source}: node id `{nid}` appears twice")
        doc.nodes[nid] = Node(
            nid, item["type"], dict(item.get("params", {})), _pos(item.get("ui", {}).get("pos"))
        )
    for ln in data["links"]:
        doc.links.append(Link(tuple(ln["from"]), tuple(ln["to"])))
    doc.extras = {k: copy.deepcopy(data[k]) for k in EXTRA_KEYS if k in data}
    return doc


def loads(text: str | bytes, source: str = "document") -> GraphDocument:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DocumentError(f"{source}: not valid JSON ({exc})") from exc
    except RecursionError as exc:
        raise DocumentError(f"{source}: JSON nested too deeply") from exc
    if _depth(data) > MAX_DEPTH:
        # json.loads accepts ~1000 levels, but copying and checking them would overflow the stack
        raise DocumentError(f"{source}: JSON nested too deeply (more than {MAX_DEPTH} levels)")
    return from_json(data, source)


MAX_DEPTH = 64  # a graph document needs about 6 levels


def _depth(data: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            return depth
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return deepest


def load(path: str | os.PathLike) -> GraphDocument:
    """Load a graph from a .json file or a snippet .png with an embedded graph."""
    p = Path(path)
    if not p.is_file():
        raise FileError(
            f"`{p}` is a folder, not a file" if p.is_dir() else f"File `{p}` does not exist"
        )
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise FileError(f"Cannot read `{p}`: {exc.strerror or exc}") from exc
    from .snippet import PNG_SIGNATURE, read_graph_text

    if raw.startswith(PNG_SIGNATURE) or p.suffix.lower() == ".png":
        doc = loads(read_graph_text(raw, source=str(p)), source=str(p))
    else:
        doc = loads(raw, source=str(p))
    doc.base_dir = p.resolve().parent
    return doc


def default_document() -> GraphDocument:
    """The toolkit example: Data -> Input -> TimeDistributed <- Conv3DTranspose -> Prediction 6D."""
    return load(DEFAULT_EXAMPLE)
