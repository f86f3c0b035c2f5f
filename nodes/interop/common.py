"""What every export and import format shares: errors, the plain description of a graph's chain
(:class:`ModelSpec`, with the weights the studio would run it with), the architecture JSON stored
beside PyTorch weights, safe output paths, and building a document back from a description.

Contract: :func:`model_spec` picks weights exactly as :func:`conv3dt_studio.nodes.run_document`
does (``weights`` a .npz path or named arrays, else the document's embedded weights, else seeded)
by calling the same functions (``plan``, ``build_graph``, ``apply_run_weights``);
an invalid graph raises :class:`~conv3dt_studio.nodes.DocumentProblems` as validation reports it.
Imports of optional libraries go through :func:`require`, which turns a missing one into
:class:`MissingExtraError` naming the pip command. Nothing here imports onnx, keras, jax or torch.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from conv3dt_studio.compute import Conv3DTStudioError, ParameterError
from conv3dt_studio.compute.conv3d_transpose_ops import AxisGeometry, Geometry
from conv3dt_studio.compute.layers import fmt_shape
from conv3dt_studio.nodes.files import current_umask
from conv3dt_studio.nodes.graph_document import GraphDocument
from conv3dt_studio.nodes.runner import Plan, build_graph, plan
from conv3dt_studio.nodes.validation import validate
from conv3dt_studio.nodes.weights import apply_run_weights, conv_layers, encode_weights

FORMATS = ("onnx", "keras", "pytorch", "python")
FORMAT_TITLES = {"onnx": "ONNX", "keras": "Keras", "pytorch": "PyTorch", "python": "Python"}

ARCHITECTURE_FORMAT = "conv3dt-studio/architecture"
ARCHITECTURE_VERSION = 1
# key of the architecture JSON in a .safetensors header's metadata (and file name beside weights)
ARCHITECTURE_KEY = "conv3dt_studio.architecture"
ARCHITECTURE_FILE = "architecture.json"

# the parameters of a Conv3DTranspose that every format carries (the rest: training settings)
ARCH_PARAMS = (
    "n_filters",
    "size",
    "stride",
    "dilation_rate",
    "activation",
    "use_bias",
    "padding",
    "data_format",
    "output_padding",
)


class InteropError(Conv3DTStudioError, ValueError):
    """A graph cannot be exported or a file imported; the one-line message names the file, node
    or parameter, what is allowed and what was received. ``param`` names the argument at fault
    (e.g. ``path``, ``force``) when there is one, so that the command line names its option."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class MissingExtraError(InteropError):
    """An optional library that a format needs is not installed; the message names the command."""


# ---------------------------------------------------------------------------- optional libraries
EXTRAS = {
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "keras": "keras",
    "jax": "keras",
    "torch": "torch",
    "safetensors": "torch",
}


def require(module: str, what: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` saying which extra brings it;
    ``what`` is the action, e.g. "Export to ONNX"."""
    extra = EXTRAS[module]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{what} needs the `{extra}` extra: pip install 'conv3dt-studio[{extra}]' "
            f"(`{module}` is not installed)"
        ) from exc


# ---------------------------------------------------------------------------- the chain, as data
@dataclass(frozen=True)
class LayerSpec:
    """One TimeDistributed(Conv3DTranspose) of the chain, with its weights (Keras layout)."""

    name: str  # the TimeDistributed layer's name
    conv_name: str  # the Conv3DTranspose layer's name (keys its weights)
    params: dict[str, Any]  # ARCH_PARAMS, JSON values (lists, not tuples)
    in_channels: int
    input_shape: tuple[int, ...]  # per sample, without batch: (time, ...) as the layer sees it
    output_shape: tuple[int, ...]
    kernel: np.ndarray  # (kd, kh, kw, n_filters, in_channels), float32
    bias: np.ndarray | None  # (n_filters,), float32
    node: str = ""  # the Conv3DTranspose node's id ("" when imported)

    @property
    def channels_first(self) -> bool:
        return self.params["data_format"] == "channels_first"

    def geometry(self) -> Geometry:
        """The exact crop and lengths of each spatial axis (the compute core's definition)."""
        s = self.input_shape[1:]
        spatial = s[1:] if self.channels_first else s[:3]
        p = self.params
        return Geometry.of(
            spatial,
            tuple(p["size"]),
            tuple(p["stride"]),
            tuple(p["dilation_rate"]),
            p["padding"],
            None if p["output_padding"] is None else tuple(p["output_padding"]),
        )

    def weights(self) -> dict[str, np.ndarray]:
        out = {f"{self.conv_name}/kernel": self.kernel}
        if self.bias is not None:
            out[f"{self.conv_name}/bias"] = self.bias
        return out


@dataclass(frozen=True)
class ModelSpec:
    """The chain Input -> TimeDistributed(Conv3DTranspose)... of one Prediction 6D."""

    input_name: str
    input_shape: tuple[int, ...]  # per sample: (time, ...)
    layers: tuple[LayerSpec, ...]
    doc: GraphDocument | None = None  # the source document and its plan (exports only)
    plan: Plan | None = None
    seed: int | None = None  # the seed given to the export (None: the graph's own)

    @property
    def output_name(self) -> str:
        return self.layers[-1].name

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.layers[-1].output_shape

    def weights(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for layer in self.layers:
            out.update(layer.weights())
        return out


def model_spec(
    doc: GraphDocument,
    *,
    weights: str | os.PathLike | dict[str, np.ndarray] | None = None,
    prediction: str | None = None,
    seed: int | None = None,
) -> ModelSpec:
    """The chain feeding ``prediction`` (default: the first Prediction 6D) with the weights the
    studio would run it with. Raises DocumentProblems for an invalid chain."""
    p = plan(doc, prediction)
    graph = build_graph(doc, p, "numpy", seed)
    apply_run_weights(weights, doc, graph.layers)
    shape = tuple(p.input_shape[1:])
    layers = []
    for td_node, td, conv in zip(p.chain, graph.layers[1:], conv_layers(graph.layers)):
        out = tuple(p.shapes[td_node][1:])
        w = conv.get_weights()
        params = {k: _json(conv.config[k]) for k in ARCH_PARAMS}
        c = shape[1] if params["data_format"] == "channels_first" else shape[-1]
        src = doc.upstream(td_node, "layer")
        conv_node = src[0] if src else conv.name
        bias = w[1] if len(w) > 1 else None
        layers.append(LayerSpec(td.name, conv.name, params, c, shape, out, w[0], bias, conv_node))
        shape = out
    return ModelSpec(graph.layers[0].name, tuple(p.input_shape[1:]), tuple(layers), doc, p, seed)


def _json(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def axis_lengths(a: AxisGeometry) -> tuple[int, int, int]:
    """(crop at the start, crop at the end, zeros appended at the end) of one axis: the layer's
    output is the full transposed convolution cropped, then zero-padded when Keras's window
    reaches past it."""
    end = a.crop_start + a.out_len
    return a.crop_start, max(0, a.full_len - end), max(0, end - a.full_len)


# ---------------------------------------------------------------------------- architecture JSON
def architecture(spec: ModelSpec) -> dict[str, Any]:
    """The chain as plain JSON (stored in model.py, the .safetensors metadata and
    architecture.json), enough to rebuild the layers without the studio."""
    data: dict[str, Any] = {
        "format": ARCHITECTURE_FORMAT,
        "version": ARCHITECTURE_VERSION,
        "input": {"name": spec.input_name, "shape": list(spec.input_shape)},
        "layers": [
            {"name": x.name, "conv_name": x.conv_name, "in_channels": x.in_channels, **x.params}
            for x in spec.layers
        ],
    }
    if spec.doc is not None and spec.plan is not None:
        data_params = dict(spec.doc.nodes[spec.plan.data_node].params)
        if spec.seed is not None:
            data_params["seed"] = spec.seed
        data["data"] = data_params
        data["seed"] = spec.plan.seed if spec.seed is None else spec.seed
    return data


def generator_params(data: Any) -> dict[str, Any] | None:
    """The exported Data node's generator settings (a data file is not carried along)."""
    if not isinstance(data, dict) or data.get("source") != "generator":
        return None
    return {k: data[k] for k in ("distribution", "batch_size", "seed") if k in data}


def read_architecture(data: Any, source: str) -> dict[str, Any]:
    """Check an architecture JSON object (as :func:`architecture` writes it)."""
    if not isinstance(data, dict) or data.get("format") != ARCHITECTURE_FORMAT:
        raise InteropError(
            f"`{source}`: not a Conv3DT Studio architecture (expected "
            f'"format": "{ARCHITECTURE_FORMAT}")'
        )
    if data.get("version") != ARCHITECTURE_VERSION:
        raise InteropError(
            f"`{source}`: architecture version {data.get('version')!r} is not readable "
            f"(this version reads {ARCHITECTURE_VERSION})"
        )
    try:
        shape = [int(s) for s in data["input"]["shape"]]
        layers = list(data["layers"])
        for layer in layers:
            required = ("name", "conv_name", "in_channels", *ARCH_PARAMS)
            missing = [k for k in required if k not in layer]
            if missing:
                raise InteropError(
                    f"`{source}`: layer {layer.get('name', '?')!r} lacks {', '.join(missing)}"
                )
    except (KeyError, TypeError, ValueError) as exc:
        raise InteropError(f"`{source}`: malformed architecture ({exc})") from exc
    if len(shape) != 5 or not layers:
        raise InteropError(
            f"`{source}`: expected a 5-D per-sample input shape and at least one layer. "
            f"Received: shape {shape}, {len(layers)} layers"
        )
    return data


def load_architecture_json(text: str, source: str) -> dict[str, Any]:
    try:
        return read_architecture(json.loads(text), source)
    except json.JSONDecodeError as exc:
        raise InteropError(f"`{source}`: architecture is not valid JSON ({exc})") from exc


# ---------------------------------------------------------------------------- back to a document
@dataclass(frozen=True)
class ImportedLayer:
    """One layer read from a file: its names, parameters (ARCH_PARAMS) and weights."""

    name: str
    conv_name: str
    params: dict[str, Any]
    kernel: np.ndarray
    bias: np.ndarray | None


def finite_float32(array: Any, source: str, tensor: str) -> np.ndarray:
    """``array`` as float32, refused when it holds NaN or Inf (or values beyond float32's range,
    which become Inf), naming the file, the tensor and how many: the run would only fail later,
    blaming the graph's embedded weights (as a weights .npz with such values is refused when it
    is applied)."""
    with np.errstate(over="ignore", invalid="ignore"):  # counted below instead
        a = np.asarray(array, np.float32)
    finite = int(np.count_nonzero(np.isfinite(a)))
    if finite == a.size:
        return a
    nan = int(np.count_nonzero(np.isnan(a)))
    bad = a.size - finite
    raise InteropError(
        f"`{source}`: weights must be finite: tensor `{tensor}` holds {bad} non-finite "
        f"value{'s' if bad != 1 else ''} ({nan} NaN, {bad - nan} Inf) of {a.size}"
    )


_ID_BAD = re.compile(r"[^A-Za-z0-9_.-]")


def _node_id(doc: GraphDocument, name: str, type_id: str) -> str:
    nid = _ID_BAD.sub("_", name)
    if not nid or not (nid[0].isalpha() or nid[0] == "_"):
        nid = f"{type_id}_{nid}" if nid else type_id
    return nid if nid not in doc.nodes else doc.new_id(type_id)


def document_from_layers(
    input_name: str,
    input_shape: tuple[int, ...],
    layers: list[ImportedLayer],
    source: str,
    data: dict[str, Any] | None = None,
    seed: int = 0,
) -> GraphDocument:
    """Data -> Input -> TimeDistributed(Conv3DTranspose)... -> Prediction 6D, laid out left to
    right, with the weights embedded (Keras kernel layout, as nodes.weights encodes them)."""
    doc = GraphDocument(settings={"seed": int(seed)})
    data_params = {"sample_shape": list(input_shape), "batch_size": 1, **(data or {})}
    data_params["sample_shape"] = list(input_shape)
    try:
        doc.add_node("data", data_params, pos=(-40, 0))
        inp = _node_id(doc, input_name, "input")
        doc.add_node("input", {"shape": list(input_shape)}, pos=(260, 0), node_id=inp)
        _set_name(doc, inp, input_name)
        doc.connect("data", "data", inp, "x")
        prev = inp
        arrays: dict[str, np.ndarray] = {}
        taken: set[str] = set()
        for i, layer in enumerate(layers):
            conv_name = _unique(layer.conv_name, taken)
            conv = _node_id(doc, conv_name, "conv3d_transpose")
            doc.add_node("conv3d_transpose", layer.params, pos=(260 + 300 * i, 200), node_id=conv)
            _set_name(doc, conv, conv_name)
            td = _node_id(doc, layer.name, "time_distributed")
            doc.add_node("time_distributed", {}, pos=(560 + 300 * i, 60), node_id=td)
            _set_name(doc, td, layer.name)
            doc.connect(prev, "y", td, "x")
            doc.connect(conv, "layer", td, "layer")
            arrays[f"{conv_name}/kernel"] = np.asarray(layer.kernel, np.float32)
            if layer.bias is not None:
                arrays[f"{conv_name}/bias"] = np.asarray(layer.bias, np.float32)
            prev = td
        pred = doc.new_id("prediction_6d")
        doc.add_node("prediction_6d", {}, pos=(560 + 300 * len(layers), 60), node_id=pred)
        doc.connect(prev, "y", pred, "x")
    except ParameterError as exc:
        raise InteropError(f"`{source}`: {exc}") from exc
    doc.extras["weights"] = encode_weights(arrays)
    problems = validate(doc).problems
    if problems:
        raise InteropError(f"`{source}`: the imported graph is not valid: {problems[0]}")
    return doc


def _set_name(doc: GraphDocument, node_id: str, name: str) -> None:
    if name != node_id:
        doc.set_param(node_id, "name", name)


def _unique(name: str, taken: set[str]) -> str:
    out, n = name, 2
    while out in taken:
        out, n = f"{name}_{n}", n + 1
    taken.add(out)
    return out


# ---------------------------------------------------------------------------- output paths
# suffixes that name a file, refused for a folder (``-o model.py`` meant a file, not a folder)
# fmt: off
FILE_SUFFIXES = frozenset({
    ".bin", ".ckpt", ".csv", ".gz", ".h5", ".hdf5", ".ipynb", ".jpg", ".json", ".keras", ".md",
    ".npy", ".npz", ".onnx", ".pb", ".pkl", ".pickle", ".png", ".pt", ".pth", ".py",
    ".safetensors", ".tar", ".tgz", ".tif", ".tiff", ".tflite", ".txt", ".zip",
})
# fmt: on


def output_path(path: str | os.PathLike, suffix: str | None, what: str) -> Path:
    """``path`` with ``suffix`` added when it has none; another suffix is refused (as the
    editor's snippet export does), in any case (``M.ONNX`` is an ONNX file). ``suffix`` None: a
    folder, any name but a file's (``.`` included: the export writes its files in it)."""
    given = os.fspath(path)
    p = Path(given)
    if not given.strip():
        kind = "a folder name" if suffix is None else f"a file name ending in {suffix}"
        raise InteropError(
            f"Invalid value for `path`: expected {kind} ({what}). Received: an empty name",
            param="path",
        )
    if suffix is None and p.suffix.lower() in FILE_SUFFIXES:
        raise InteropError(
            f"Invalid value for `path`: expected a folder name ({what}), not a file name "
            f"ending in {p.suffix}. Received: path={str(p)!r}",
            param="path",
        )
    if suffix is None or p.suffix.lower() == suffix:
        return p
    if p.suffix or p.name in ("", ".", ".."):  # `.` and `..` name folders, not files
        raise InteropError(
            f"Invalid value for `path`: expected a file name ending in {suffix} ({what}). "
            f"Received: path={str(p)!r}",
            param="path",
        )
    return p.with_name(p.name + suffix)


def check_writable(paths: list[Path], force: bool) -> None:
    """Refuse to replace an existing path unless ``force``; the folder must exist, and a
    folder is never replaced by a file."""
    for p in paths:
        parent = p.parent if str(p.parent) else Path(".")
        if not parent.is_dir():
            raise InteropError(f"Cannot export to `{p}`: folder `{parent}` does not exist")
        if p.is_dir():
            raise InteropError(
                f"Cannot export to `{p}`: it is a folder; give the name of a file to write",
                param="path",
            )
        if (p.exists() or p.is_symlink()) and not force:
            raise InteropError(
                f"`{p}` already exists: pass force=True to replace it. Nothing was written",
                param="force",
            )


def check_folder_writable(path: Path, names: tuple[str, ...], force: bool) -> None:
    """Check an export that writes the files ``names`` in the folder ``path``. A new folder is
    made whole; in an existing folder, ``force`` replaces those files only and keeps every
    other file (the graph being exported, the user's data and notes)."""
    if not path.is_dir():
        check_writable([path], force)  # a new folder (or a file that force replaces)
        return
    if not force:
        raise InteropError(
            f"Folder `{path}` already exists: pass force=True to replace its export "
            f"({', '.join(names)}); the other files in it are kept. Nothing was written",
            param="force",
        )
    for name in names:
        if (path / name).is_dir() and not (path / name).is_symlink():
            raise InteropError(
                f"Cannot export to `{path}`: `{path / name}` is a folder, where the export "
                "writes a file. Nothing was written",
                param="path",
            )


@contextlib.contextmanager
def temporary_folder_beside(path: Path) -> Iterator[Path]:
    """A fresh folder in ``path``'s folder (same file system, so a rename is atomic), removed
    afterwards with whatever is left in it."""
    parent = path.parent if str(path.parent) else Path(".")
    with temporary_folder_in(parent, path.name) as tmp:
        yield tmp


@contextlib.contextmanager
def temporary_folder_in(folder: Path, name: str) -> Iterator[Path]:
    """A fresh hidden folder ``.NAME.<random>.tmp`` in ``folder``, removed afterwards with
    whatever is left in it."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=folder))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def replace_path(src: Path, dst: Path) -> None:
    """Move ``src`` (a file, or a folder) to ``dst``, replacing the file or link there. An
    existing folder is never replaced (nor deleted): the callers refuse it or write in it."""
    if dst.is_dir() and not dst.is_symlink():
        raise InteropError(f"Cannot export to `{dst}`: it is a folder", param="path")
    if src.is_dir() and (dst.exists() or dst.is_symlink()):
        os.unlink(dst)
    os.replace(src, dst)


def write_folder(path: Path, fill: Callable[[Path], None]) -> None:
    """Write the files that ``fill(tmp)`` makes in a temporary folder to the folder ``path``.
    A new folder is built beside ``path`` and renamed to it, so it appears whole. In an
    existing folder only those files are replaced, each by a rename (after all of them are
    written), and nothing else in it is touched. New files get the permissions of a new file
    (``0666 & ~umask``) or folder (``0777 & ~umask``), whatever the writers chose (safetensors
    writes 0600); a replaced file keeps its own."""
    if path.is_dir():
        with temporary_folder_in(path, "export") as tmp:
            fill(tmp)
            give_usual_permissions(tmp)
            for new in sorted(tmp.iterdir()):
                old = path / new.name
                if old.is_file() and not old.is_symlink():
                    os.chmod(new, old.stat().st_mode & 0o7777)
                replace_path(new, old)
        return
    with temporary_folder_beside(path) as tmp:
        folder = tmp / "out"
        folder.mkdir()
        fill(folder)
        give_usual_permissions(folder)
        replace_path(folder, path)


def give_usual_permissions(folder: Path) -> None:
    """Set ``folder``, the folders and the files in it to the modes that new ones get."""
    mask = current_umask()
    os.chmod(folder, 0o777 & ~mask)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777 & ~mask)
        for name in files:
            file = os.path.join(root, name)
            if not os.path.islink(file):
                os.chmod(file, 0o666 & ~mask)


# ---------------------------------------------------------------------------- results
@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: ``layer_names`` are the TimeDistributed layers in order,
    ``input_shape`` has None for batch and time, ``output_name`` names the prediction."""

    path: Path
    format: str
    layer_names: tuple[str, ...]
    input_shape: tuple[int | None, ...]
    output_name: str
    summary: str


def export_result(spec: ModelSpec, fmt: str, path: Path, files: str = "") -> ExportResult:
    shape = (None, None, *spec.input_shape[1:])
    names = tuple(x.name for x in spec.layers)
    n = len(names)
    summary = (
        f"Exported {n} layer{'s' if n != 1 else ''} ({', '.join(names)}) to {FORMAT_TITLES[fmt]} "
        f"`{path}`{files}: input `{spec.input_name}` {fmt_shape(shape)}, output "
        f"`{spec.output_name}` {fmt_shape((None, None, *spec.output_shape[1:]))}"
    )
    return ExportResult(path, fmt, names, shape, spec.output_name, summary)


def check_format(fmt: Any) -> str:
    if fmt not in FORMATS:
        raise InteropError(
            f"Invalid value for `format`: expected one of {', '.join(FORMATS)}. "
            f"Received: format={fmt!r}"
        )
    return fmt


def check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InteropError(
            f"Invalid value for `seed`: expected a non-negative integer or None. "
            f"Received: seed={seed!r}"
        )
    return int(seed)


__all__ = [
    "ARCHITECTURE_FILE",
    "ARCHITECTURE_KEY",
    "FORMATS",
    "ExportResult",
    "ImportedLayer",
    "InteropError",
    "LayerSpec",
    "MissingExtraError",
    "ModelSpec",
    "model_spec",
]
