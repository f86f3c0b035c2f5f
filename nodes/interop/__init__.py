"""Take a graph out of the studio and bring it back: export to ONNX, Keras, PyTorch and Python;
import from Keras and PyTorch. See docs/interop.md.

    export_document(doc, "onnx", "model.onnx")        # -> ExportResult
    doc = import_model("model.keras")                  # -> GraphDocument, weights embedded

An export covers the chain Data -> Input -> TimeDistributed(Conv3DTranspose)... -> Prediction 6D
of one Prediction 6D node, with the weights ``run_document`` would use (a .npz path or named
arrays given as ``weights``, else the document's embedded weights, else seeded); each format
reproduces the studio's prediction (Python bit for bit, the others within 1e-5 relative). Files
are written atomically and an existing path is replaced only with ``force=True``; in an existing
folder a PyTorch export replaces only the files it writes there, and the file the graph came
from (``source``) is never replaced.

Importing this package is light: onnx, keras/jax, torch and safetensors are imported only by the
function that needs them, and a missing one raises :class:`MissingExtraError` with the pip command
(extras ``onnx``, ``keras``, ``torch``, ``all``). Keras runs on JAX: ``KERAS_BACKEND`` is set to
``jax`` (unless already set) before Keras is imported.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from conv3dt_studio.nodes.graph_document import GraphDocument

from .common import (
    FORMATS,
    ExportResult,
    InteropError,
    MissingExtraError,
    check_folder_writable,
    check_format,
    check_seed,
    check_writable,
    export_result,
    model_spec,
    output_path,
)

SUFFIXES = {"onnx": ".onnx", "keras": ".keras", "pytorch": None, "python": ".py"}
WHAT = {
    "onnx": "an ONNX file",
    "keras": "a Keras file",
    "pytorch": "PyTorch exports a folder holding model.py and weights.safetensors",
    "python": "a Python script",
}


def export_document(
    doc: GraphDocument,
    fmt: str,
    path: str | os.PathLike,
    *,
    weights: str | os.PathLike | dict[str, np.ndarray] | None = None,
    prediction: str | None = None,
    seed: int | None = None,
    force: bool = False,
    source: str | os.PathLike | None = None,
) -> ExportResult:
    """Export the chain of ``prediction`` (default: the first Prediction 6D) as ``fmt`` (one of
    :data:`FORMATS`) to ``path``: a file for onnx (.onnx), keras (.keras) and python (.py, with
    its weights in the .npz beside it; the suffix is added when the name has none), a folder for
    pytorch (an existing one, ``.`` included, keeps its other files). ``seed`` overrides the
    graph's seed (seeded weights and generated data). ``source``: the file the graph was read
    from, which the export must not replace.

    Raises :class:`~conv3dt_studio.nodes.DocumentProblems` for an invalid graph,
    :class:`InteropError` for a path that exists (without ``force``), the source's path or a
    graph the format cannot hold, :class:`MissingExtraError` when the format's library is not
    installed.
    """
    fmt = check_format(fmt)
    seed = check_seed(seed)
    target = output_path(path, SUFFIXES[fmt], WHAT[fmt])
    if fmt == "pytorch":
        from .torch_format import EXPORT_FILES

        check_folder_writable(target, EXPORT_FILES, force)
        paths = [target / name for name in EXPORT_FILES] if target.is_dir() else [target]
    else:
        paths = [target, target.with_suffix(".npz")] if fmt == "python" else [target]
        check_writable(paths, force)
    if source is not None:
        _keep_source(paths, Path(source))
    spec = model_spec(doc, weights=weights, prediction=prediction, seed=seed)
    if fmt == "onnx":
        from .onnx_export import export_onnx

        export_onnx(spec, target)
    elif fmt == "keras":
        from .keras_format import export_keras

        export_keras(spec, target)
    elif fmt == "pytorch":
        from .torch_format import export_pytorch

        export_pytorch(spec, target)
    else:
        from .python_export import export_python

        export_python(spec, target)
    files = f" (weights `{paths[1].name}`)" if fmt == "python" else ""
    return export_result(spec, fmt, target, files)


def _keep_source(paths: list[Path], source: Path) -> None:
    """Refuse an export that would replace the graph's own file."""
    for p in paths:
        try:
            same = p.exists() and source.exists() and os.path.samefile(p, source)
        except OSError:
            same = False
        if same:
            raise InteropError(
                f"Cannot export to `{p}`: it is the graph being exported (`{source}`); choose "
                "another name. Nothing was written",
                param="path",
            )


def _model_folder(path: Path) -> Path:
    """An exported PyTorch folder chosen through its ``model.py`` (file dialogs pick files)."""
    if (
        path.name == "model.py"
        and path.is_file()
        and (path.parent / "weights.safetensors").is_file()
    ):
        return path.parent
    return path


def _kind(path: Path) -> str | None:
    """The importer of ``path`` ("keras", "pytorch", "onnx") by its form, or None."""
    path = _model_folder(path)
    suffix = path.suffix.lower()
    if path.is_dir():
        has_weights = (path / "weights.safetensors").is_file()
        return "pytorch" if (path / "model.py").is_file() and has_weights else None
    if not path.is_file():
        return None
    if suffix == ".keras":
        return "keras"
    if suffix in (".safetensors", ".pt", ".pth"):
        return "pytorch"
    if suffix == ".onnx":
        return "onnx"
    return None


def importable(path: str | os.PathLike) -> bool:
    """Whether :func:`import_model` takes ``path`` by its form: a .keras file, an exported
    PyTorch folder (model.py and weights.safetensors), a .safetensors or .pt/.pth file, or an
    .onnx file."""
    try:
        return _kind(Path(path)) is not None
    except OSError:
        return False


def import_model(path: str | os.PathLike, *, notes: list[str] | None = None) -> GraphDocument:
    """A graph document (Data -> Input -> TimeDistributed(Conv3DTranspose)... -> Prediction 6D,
    weights embedded) from a Keras or PyTorch model, or an ONNX file the studio exported; see
    docs/interop.md. What the import had to
    choose itself (e.g. 1 time step for a Keras model that takes any number) is appended to
    ``notes``, one line each, for the caller to show."""
    p = _model_folder(Path(path))
    if not p.exists():
        raise InteropError(f"File `{p}` does not exist")
    kind = _kind(p)
    if kind == "keras":
        from .keras_format import import_keras

        return import_keras(p, notes)
    if kind == "pytorch":
        from .torch_format import import_pytorch

        return import_pytorch(p)
    if kind == "onnx":
        from .onnx_import import import_onnx

        return import_onnx(p)
    raise InteropError(
        f"`{p}`: cannot import it: expected a .keras file, an exported PyTorch folder (model.py "
        "and weights.safetensors), a .safetensors file, a .pt/.pth state dict or an .onnx file "
        "the studio exported"
    )


__all__ = [
    "FORMATS",
    "ExportResult",
    "InteropError",
    "MissingExtraError",
    "export_document",
    "import_model",
    "importable",
]
