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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conv3dt_studio.compute import Conv3DTStudioError, ParameterError
from conv3dt_studio.resources import DEFAULT_EXAMPLE, SCHEMA_PATH

from .catalogue import LAYER, NODE_TYPE_IDS, NODE_TYPES, node_type, role_of
from .files import atomic_write_text, read_bounded, require_file

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


# kinds of Change
ADDED, REMOVED, MOVED, RELINKED, PARAM, SETTING, TRAINING = (
    "added",
    "removed",
    "moved",
    "relinked",
    "param",
    "setting",
    "training",
)


@dataclass(frozen=True)
class LinkIndex:
    """A document's links by their ends, built once for a pass over the whole graph (validation
    of 100,000 nodes stays linear instead of scanning every link per node and port)."""

    feeding: dict[tuple[str, str], tuple[str, str]]  # (node, input port) -> first (src, port)
    leaving: dict[str, list[Link]]  # node -> the links out of it
    entering: dict[str, list[Link]]  # node -> the links into it

    @classmethod
    def of(cls, links: Iterable[Link]) -> LinkIndex:
        feeding: dict[tuple[str, str], tuple[str, str]] = {}
        leaving: dict[str, list[Link]] = {}
        entering: dict[str, list[Link]] = {}
        for ln in links:
            feeding.setdefault(ln.dst, ln.src)
            leaving.setdefault(ln.src[0], []).append(ln)
            entering.setdefault(ln.dst[0], []).append(ln)
        return cls(feeding, leaving, entering)

    def upstream(self, node_id: str, port: str) -> tuple[str, str] | None:
        return self.feeding.get((node_id, port))


@dataclass(frozen=True)
class Change:
    """What one edit of the document changed, with enough to undo it.

    ``added``/``removed``: ``nodes`` (copies) and the links that came or went with them;
    ``moved``: ``positions`` node id -> (old, new); ``relinked``: ``links_removed`` then
    ``links_added``; ``param``: ``node``, ``name``, ``old`` and ``new`` stored JSON values
    (:data:`MISSING` for an absent one); ``setting`` (the document's settings) and ``training``
    (its training settings): ``name``, ``old``, ``new``.
    """

    kind: str
    nodes: tuple[Node, ...] = ()
    links_added: tuple[Link, ...] = ()
    links_removed: tuple[Link, ...] = ()
    positions: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    node: str | None = None
    name: str | None = None
    old: Any = None
    new: Any = None


MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()  # an absent value
Listener = Callable[[Change], None]


@dataclass
class GraphDocument:
    """The graph: nodes, links, settings and extras, with a Qt-free edit API.

    Every edit (``add_node``, ``insert_nodes``, ``remove_nodes``, ``move_nodes``, ``connect``,
    ``disconnect``, ``relink``, ``set_param``, ``store_param``, ``set_setting``,
    ``set_training_setting``) is validated, returns what changed as a :class:`Change`, and calls
    every listener given to :meth:`subscribe` with it: views, undo and panels follow the document,
    never the other way round.
    """

    nodes: dict[str, Node] = field(default_factory=dict)
    links: list[Link] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=lambda: {"seed": 0})
    extras: dict[str, Any] = field(default_factory=dict)  # training settings, embedded weights
    # folder of the file it was loaded from: relative data paths are resolved against it
    base_dir: Path | None = field(default=None, compare=False)
    _listeners: list[Listener] = field(default_factory=list, compare=False, repr=False)

    # ------------------------------------------------------------------ change events
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(change)`` after every edit; returns the function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _emit(self, change: Change) -> Change:
        for listener in list(self._listeners):
            listener(change)
        return change

    def resolve_path(self, path: str) -> str:
        """A data file path as written in a node, made absolute against the graph's folder."""
        if not path or os.path.isabs(path) or self.base_dir is None:
            return path
        return str(self.base_dir / path)

    # ------------------------------------------------------------------ nodes
    def new_id(self, type_id: str, taken: set[str] | None = None) -> str:
        """A free id for a new node: the type id, else ``<type id>_2``, ``_3``... (free of the
        document's ids, or of ``taken`` when given)."""
        taken = set(self.nodes) if taken is None else taken
        if type_id not in taken:
            return type_id
        n = 2
        while f"{type_id}_{n}" in taken:
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
        node = self.new_node(type_id, params, pos, node_id)
        self.insert_nodes([node])
        return self.nodes[node.id]

    def new_node(
        self,
        type_id: str,
        params: dict[str, Any] | None = None,
        pos: tuple[float, float] | None = None,
        node_id: str | None = None,
    ) -> Node:
        """A validated node for this document (a free id unless given), not yet added."""
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
        values = nt.schema.validate(params, where=f"node `{node_id}`")  # constraints included
        return Node(node_id, type_id, nt.schema.to_json(values), _pos(pos))

    def insert_nodes(self, new_nodes: list[Node], links: Iterable[Link] = ()) -> Change:
        """Add nodes (ids must be free) and links among them or to existing nodes."""
        taken = [n.id for n in new_nodes if n.id in self.nodes]
        if taken:
            raise ParameterError(f"Node id `{taken[0]}` is already used")
        for n in new_nodes:
            self.nodes[n.id] = copy.deepcopy(n)
        added = [ln for ln in links if ln not in self.links]
        self.links.extend(added)
        return self._emit(Change(ADDED, tuple(copy.deepcopy(new_nodes)), tuple(added)))

    def remove_nodes(self, node_ids: list[str]) -> Change:
        """Remove nodes with every link touching them (unknown ids are ignored)."""
        ids = [i for i in node_ids if i in self.nodes]
        gone = [ln for ln in self.links if ln.src[0] in ids or ln.dst[0] in ids]
        removed = tuple(self.nodes.pop(i) for i in ids)
        self.links = [ln for ln in self.links if ln not in gone]
        return self._emit(Change(REMOVED, removed, links_removed=tuple(gone)))

    def remove_node(self, node_id: str) -> Change:
        if node_id not in self.nodes:
            raise KeyError(node_id)
        return self.remove_nodes([node_id])

    def move_nodes(self, positions: dict[str, tuple[float, float] | None]) -> Change:
        """Place nodes; ``positions`` maps an id to its new position."""
        moves = {}
        for nid, pos in positions.items():
            moves[nid] = (self.nodes[nid].pos, _pos(pos))
            self.nodes[nid].pos = _pos(pos)
        return self._emit(Change(MOVED, positions=moves))

    def check_param(self, node_id: str, name: str, value: Any) -> Any:
        """The JSON value that setting ``name`` to ``value`` would store; raises
        :class:`ParameterError` (with ``.param``) when refused. Nothing changes.

        A value valid on its own is accepted even when *another* parameter of the node is invalid
        (a damaged file can then be repaired field by field); with every value valid, the
        constraints between them must hold."""
        node = self.nodes[node_id]
        nt = NODE_TYPES.get(node.type)
        if nt is None or name not in nt.schema:
            known = ", ".join(nt.schema.names()) if nt else "none (unknown node type)"
            raise ParameterError(
                f"Unknown parameter `{name}` of node `{node_id}`: expected one of {known}",
                param=name,
            )
        param = nt.schema[name]
        stored = param.to_json(param.validate(value))
        merged = {**node.params, name: stored}
        if not nt.schema.problems(merged, constraints=False):
            nt.schema.validate(merged, where=f"node `{node_id}`")
        return stored

    def set_param(self, node_id: str, name: str, value: Any) -> Any:
        """Validate and set one parameter; the document is unchanged on error. Returns the stored
        (JSON) value."""
        stored = self.check_param(node_id, name, value)
        self.store_param(node_id, name, stored)
        return self.nodes[node_id].params[name]

    def store_param(self, node_id: str, name: str, value: Any) -> Change:
        """Store a JSON value already checked (:meth:`check_param`), or :data:`MISSING` to drop
        the parameter: what undo and redo use."""
        params = self.nodes[node_id].params
        old = copy.deepcopy(params.get(name, MISSING))
        if value is MISSING:
            params.pop(name, None)
        else:
            params[name] = copy.deepcopy(value)
        return self._emit(Change(PARAM, node=node_id, name=name, old=old, new=value))

    def set_setting(self, name: str, value: Any) -> Change:
        """Set one of the document's settings (``seed``)."""
        if name != "seed" or isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ParameterError(
                f"Invalid value for `{name}`: expected the setting `seed`, an integer >= 0. "
                f"Received: {name}={value!r}",
                param=name,
            )
        old = self.settings.get(name, MISSING)
        self.settings[name] = value
        return self._emit(Change(SETTING, name=name, old=old, new=value))

    def set_training_setting(self, name: str, value: Any) -> Change:
        """Set one training setting (``extras["training"]``), checked against its declaration
        (:data:`MISSING` drops it)."""
        from .settings import TRAINING_SCHEMA  # noqa: PLC0415 - settings is a leaf; no cycle

        if value is not MISSING:
            if name not in TRAINING_SCHEMA:
                raise ParameterError(
                    f"Unknown training setting `{name}`: expected one of "
                    f"{', '.join(TRAINING_SCHEMA.names())}",
                    param=name,
                )
            value = TRAINING_SCHEMA[name].to_json(TRAINING_SCHEMA[name].validate(value))
        settings = self.extras.setdefault("training", {})
        old = copy.deepcopy(settings.get(name, MISSING))
        if value is MISSING:
            settings.pop(name, None)
        else:
            settings[name] = copy.deepcopy(value)
        return self._emit(Change(TRAINING, name=name, old=old, new=value))

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
        link = Link((src, src_port), (dst, dst_port))
        replaced = [ln for ln in self.links if ln.dst == (dst, dst_port)] if replace else []
        self.relink(replaced, [link], check=False)
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
        fed_by = self.upstream(dst, dst_port)
        if not replace and fed_by is not None:
            return f"Cannot connect: `{dst}.{dst_port}` is already fed by `{fed_by[0]}.{fed_by[1]}`"
        if out.kind == LAYER and any(ln.src == (src, src_port) for ln in self.links):
            return (
                f"Cannot connect: the layer of `{src}` already feeds a TimeDistributed node "
                "(one layer, one wrapper)"
            )
        if src == dst or src in self.descendants(dst):
            return f"Cannot connect `{src}` to `{dst}`: it would make a cycle"
        return None

    def disconnect(self, src: str, src_port: str, dst: str, dst_port: str) -> Change:
        link = Link((src, src_port), (dst, dst_port))
        if link not in self.links:
            raise LinkError(f"Cannot disconnect: no link {src}.{src_port} -> {dst}.{dst_port}")
        return self.relink([link], [], check=False)

    def relink(self, removed: list[Link], added: list[Link], check: bool = True) -> Change:
        """Remove links, then add links, as one edit. With ``check`` each added link must pass
        the port rules once the removed ones are gone, and replaces what fed its input port
        (listed in the change's ``links_removed``); a refusal raises :class:`LinkError` and
        changes nothing."""
        before = list(self.links)
        removed = [ln for ln in removed if ln in before]
        try:
            self.links = [ln for ln in before if ln not in removed]
            for ln in added:
                if ln in self.links:
                    continue
                if check:
                    problem = self.link_problem(*ln.src, *ln.dst, replace=True)
                    if problem:
                        raise LinkError(problem)
                    removed += [x for x in self.links if x.dst == ln.dst]
                    self.links = [x for x in self.links if x.dst != ln.dst]
                self.links.append(ln)
        except LinkError:
            self.links = before
            raise
        gone = tuple(ln for ln in before if ln not in self.links)
        came = tuple(ln for ln in self.links if ln not in before)
        return self._emit(Change(RELINKED, links_added=came, links_removed=gone))

    def upstream(self, node_id: str, port: str) -> tuple[str, str] | None:
        return next((ln.src for ln in self.links if ln.dst == (node_id, port)), None)

    def feeder(self, node_id: str, port: str) -> str:
        """The node feeding ``port`` of ``node_id``, in a graph known to be wired (validated);
        raises :class:`LinkError` when the port is not connected."""
        src = self.upstream(node_id, port)
        if src is None:
            raise LinkError(f"node `{node_id}`: input `{port}` is not connected")
        return src[0]

    def downstream(self, node_id: str) -> list[Link]:
        return [ln for ln in self.links if ln.src[0] == node_id]

    def link_index(self) -> LinkIndex:
        """The links indexed by their ends (a snapshot: build it again after an edit)."""
        return LinkIndex.of(self.links)

    def descendants(self, node_id: str) -> set[str]:
        """Every node reachable along links from ``node_id``."""
        leaving = self.link_index().leaving
        return self._reachable(node_id, lambda n: [ln.dst[0] for ln in leaving.get(n, ())])

    def ancestors(self, node_id: str) -> set[str]:
        """Every node from which links lead to ``node_id``."""
        entering = self.link_index().entering
        return self._reachable(node_id, lambda n: [ln.src[0] for ln in entering.get(n, ())])

    @staticmethod
    def _reachable(start: str, neighbours: Callable[[str], list[str]]) -> set[str]:
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

    def role(self, node_id: str) -> str | None:
        """The catalogue role of a node (None for a missing node or an unknown type)."""
        node = self.nodes.get(node_id)
        return role_of(node.type) if node is not None else None

    def ids_with_role(self, role: str) -> list[str]:
        """The ids of the nodes playing ``role`` (e.g. every Prediction 6D), in document order."""
        return [nid for nid in self.nodes if self.role(nid) == role]

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
                nt = NODE_TYPES.get(node.type)
                for name in nt.path_params if nt else ():
                    rel = node.params.get(name)
                    if isinstance(rel, str) and rel and not os.path.isabs(rel):
                        node.params[name] = os.path.relpath(base / rel, target_dir)
        atomic_write_text(path, out.dumps())

    def copy(self) -> GraphDocument:
        """An independent copy (listeners are not copied)."""
        doc = from_json(self.to_json())
        doc.base_dir = self.base_dir
        return doc

    def sub_document(self, node_ids: Iterable[str]) -> GraphDocument:
        """A copy holding the nodes ``node_ids`` with the links among them (settings kept): a
        snippet, the clipboard."""
        ids = set(node_ids)
        out = self.copy()
        out.nodes = {k: v for k, v in out.nodes.items() if k in ids}
        out.links = [ln for ln in out.links if ln.src[0] in ids and ln.dst[0] in ids]
        return out


def _pos(pos: Any) -> tuple[float, float] | None:
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


MAX_INT_DIGITS = 20  # every integer of a graph fits in 64 bits: 19 digits and a sign


def _strict_object(source: str) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    def build(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:  # JSON parsers disagree on which one wins: refuse, do not guess
                raise DocumentError(f"{source}: the key {key!r} appears twice in one JSON object")
            out[key] = value
        return out

    return build


def _strict_int(source: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if len(text.lstrip("-")) > MAX_INT_DIGITS:
            raise DocumentError(
                f"{source}: an integer literal of {len(text.lstrip('-'))} digits; a graph's "
                f"integers have at most {MAX_INT_DIGITS - 1}"
            )
        return int(text)

    return parse


def _no_constant(source: str) -> Callable[[str], Any]:
    def refuse(name: str) -> Any:
        raise DocumentError(f"{source}: {name} is not a JSON number (not valid in a graph)")

    return refuse


def loads(text: str | bytes, source: str = "document") -> GraphDocument:
    """Parse graph JSON strictly: duplicate keys, NaN/Infinity and integers beyond 64 bits are
    refused with a message (Python's parser would keep the last key, accept NaN, and fail on
    very long integers with an error of its own). Any failure is one :class:`DocumentError`."""
    try:
        return _loads(text, source)
    except Conv3DTStudioError:
        raise
    except Exception as exc:  # noqa: BLE001 - one line, whatever the text holds
        raise DocumentError(f"{source}: cannot be read as a graph: {_what(exc)}") from exc


# characters JSON text never holds raw (only tab, line feed and carriage return, as whitespace)
_BINARY = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _json_text(text: str | bytes, source: str) -> str:
    """``text`` decoded as JSON is (UTF-8, or UTF-16/32 by its first bytes); binary data - a
    .npy given as a graph, say - is refused as not a graph file rather than by a codec error."""
    try:
        decoded = text if isinstance(text, str) else text.decode(json.detect_encoding(text))
    except UnicodeDecodeError:
        decoded = None
    if decoded is None or _BINARY.search(decoded):
        raise DocumentError(
            f"{source}: not a graph file: expected JSON text (a .json graph) or a snippet .png "
            "with an embedded graph; received binary data"
        )
    return decoded


def _loads(text: str | bytes, source: str) -> GraphDocument:
    try:
        data = json.loads(
            _json_text(text, source),
            object_pairs_hook=_strict_object(source),
            parse_int=_strict_int(source),
            parse_constant=_no_constant(source),
        )
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DocumentError(f"{source}: not valid JSON ({exc})") from exc
    except RecursionError as exc:
        raise DocumentError(f"{source}: JSON nested too deeply") from exc
    except ValueError as exc:  # anything else the parser refuses (e.g. a float it cannot read)
        if isinstance(exc, DocumentError):
            raise
        raise DocumentError(f"{source}: not valid JSON ({exc})") from exc
    if _depth(data) > MAX_DEPTH:
        # json.loads accepts ~1000 levels, but copying and checking them would overflow the stack
        raise DocumentError(f"{source}: JSON nested too deeply (more than {MAX_DEPTH} levels)")
    return from_json(data, source)


MAX_DEPTH = 64  # a graph document needs about 6 levels
# a graph file (JSON or snippet PNG) is read whole: larger ones are refused unread. A graph is a few
# kilobytes; embedded weights take 16/3 bytes per parameter in base64 (512 MiB: ~100 million)
MAX_GRAPH_FILE_BYTES = 512 * 2**20
GRAPH_FILE = "a graph file (JSON or snippet PNG)"
# parsing holds the bytes, the text and the parsed JSON (base64 weights as strings) at once
PARSE_FACTOR = 4


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


def load(path: str | os.PathLike, notes: list[str] | None = None) -> GraphDocument:
    """Load a graph from a .json file, a snippet .png with an embedded graph, or a model from
    another framework that :mod:`.interop` imports (a .keras file, an exported PyTorch folder or
    its weights file, an .onnx file the studio exported, weights embedded; what the import chose itself is appended to ``notes``).
    Whatever goes wrong is one :class:`DocumentError` or :class:`FileError` naming the file - an
    unexpected failure of a library included."""
    try:
        return _load(path, notes)
    except Conv3DTStudioError:
        raise
    except Exception as exc:  # noqa: BLE001 - a file from a stranger defeated a check: one line
        raise DocumentError(f"`{path}` cannot be read as a graph: {_what(exc)}") from exc


def _what(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _load(path: str | os.PathLike, notes: list[str] | None = None) -> GraphDocument:
    from .interop import import_model, importable  # noqa: PLC0415 - interop imports this module

    if importable(path):
        return import_model(path, notes=notes)
    p = require_file(path)
    raw = read_bounded(p, MAX_GRAPH_FILE_BYTES, GRAPH_FILE, PARSE_FACTOR)
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
