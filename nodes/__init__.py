"""Conv3DT Studio node catalogue and graph document (Qt-free)."""

from conv3dt_studio.resources import DEFAULT_EXAMPLE, EXAMPLES

from .catalogue import LAYER, NODE_TYPE_IDS, NODE_TYPES, TENSOR, NodeType, Port, categories
from .files import FileError
from .graph_document import (
    FORMAT,
    VERSION,
    DocumentError,
    GraphDocument,
    Link,
    LinkError,
    Node,
    default_document,
    from_json,
    load,
    loads,
)
from .runner import MemoryLimitError, RunResult, plan, prediction_stats, run_document
from .validation import DocumentProblems, Problem, Report, infer_shapes, validate

__all__ = [
    "DEFAULT_EXAMPLE",
    "EXAMPLES",
    "FORMAT",
    "LAYER",
    "NODE_TYPES",
    "NODE_TYPE_IDS",
    "TENSOR",
    "VERSION",
    "DocumentError",
    "DocumentProblems",
    "FileError",
    "GraphDocument",
    "Link",
    "LinkError",
    "MemoryLimitError",
    "Node",
    "NodeType",
    "Port",
    "Problem",
    "Report",
    "RunResult",
    "categories",
    "default_document",
    "from_json",
    "infer_shapes",
    "load",
    "loads",
    "plan",
    "prediction_stats",
    "run_document",
    "validate",
]
