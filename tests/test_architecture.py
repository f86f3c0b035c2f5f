"""Import rules: one namespace, and the direction compute <- nodes <- app.

The cores (``conv3dt_studio.compute`` and ``conv3dt_studio.nodes``) load no Qt and no CuPy; compute
imports neither nodes nor app, nodes does not import app. Inside the package every import of a
sibling goes through ``conv3dt_studio.`` (or is relative): the repository's folders ``compute/``,
``nodes/`` and ``app/`` are never importable as top-level packages of their own.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("PySide6", "PyQt", "Qt", "NodeGraphQt", "pyqtgraph", "cupy", "cupyx")
LAYERS = {"compute": ("nodes", "app"), "nodes": ("app",)}
FOLDERS = ("compute", "nodes", "app", "resources", "conv3dt_studio", "scripts", "tests")


def _loaded_after_import(module: str) -> list[str]:
    code = f"import json, sys\nimport {module}\nprint(json.dumps(sorted(sys.modules)))\n"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path.home() if Path.home().is_dir() else "/",  # not the checkout: the installed package
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _forbidden(modules: list[str]) -> list[str]:
    return [m for m in modules if m.split(".")[0].startswith(FORBIDDEN)]


@pytest.mark.parametrize("layer", ["compute", "nodes"])
def test_core_imports_no_qt_and_no_cupy(layer):
    modules = _loaded_after_import(f"conv3dt_studio.{layer}")
    assert f"conv3dt_studio.{layer}" in modules
    assert _forbidden(modules) == []


def test_the_check_can_fail():
    """The filter recognises what it must refuse."""
    assert _forbidden(
        ["numpy", "PySide6.QtCore", "cupy", "NodeGraphQt", "pyqtgraph.Qt", "QtPy", "PyQt5"]
    ) == ["PySide6.QtCore", "cupy", "NodeGraphQt", "pyqtgraph.Qt", "QtPy", "PyQt5"]
    assert _forbidden(["conv3dt_studio.compute", "numpy", "jsonschema"]) == []


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_a_layer_does_not_load_the_layers_above_it(layer):
    modules = _loaded_after_import(f"conv3dt_studio.{layer}")
    above = [f"conv3dt_studio.{name}" for name in LAYERS[layer]]
    assert [m for m in modules if m.split(".")[:2] and ".".join(m.split(".")[:2]) in above] == []


def _imports(path: Path, members_of: tuple[str, ...] = ()) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import statement in a file (relative ones resolved
    against the package the folder is mapped to); ``from P import m`` also gives ``P.m`` for the
    namespace, the layers and the packages ``members_of``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    parts = list(path.parent.relative_to(ROOT).parts)
    package = ".".join(["conv3dt_studio"] + [p for p in parts if p != "conv3dt_studio"])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            if name in ("conv3dt_studio", *(f"conv3dt_studio.{f}" for f in LAYERS), *members_of):
                found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]
    return found


def _violations(folder: str) -> list[str]:
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for line, name in _imports(path):
            parts = name.split(".")
            top, second = parts[0], (parts[1] if len(parts) > 1 else "")
            where = f"{path.relative_to(ROOT)}:{line} imports {name}"
            if top in ("compute", "nodes", "app", "resources"):
                bad.append(where + " (outside the conv3dt_studio namespace)")
            if top == "conv3dt_studio" and second in LAYERS.get(folder, ()):
                bad.append(where + " (against the direction compute <- nodes <- app)")
    return bad


@pytest.mark.parametrize("folder", FOLDERS)
def test_static_imports_use_the_namespace_and_the_direction(folder):
    assert _violations(folder) == []


def test_the_static_check_can_fail(tmp_path, monkeypatch):
    pkg = tmp_path / "nodes"
    pkg.mkdir()
    (pkg / "bad.py").write_text(
        "import compute\nfrom conv3dt_studio.app import cli\nfrom ..app import canvas\n"
        "from conv3dt_studio import app\nfrom conv3dt_studio.compute import Graph\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = _violations("nodes")
    assert len(found) == 4, found


# ---------------------------------------------------------------------- node behaviour
def _type_id_comparisons(path: Path, type_ids: set[str]) -> list[str]:
    """Places in a file that pick behaviour by comparing a node type id: ``x == "data"``,
    ``t in ("input", "time_distributed")``, ``nodes_of_type("loss")``."""

    def is_type_id(node: ast.AST) -> bool:
        if isinstance(node, ast.Constant):
            return node.value in type_ids
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return any(is_type_id(e) for e in node.elts)
        return False

    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Compare)
            and any(is_type_id(n) for n in (node.left, *node.comparators))
            or (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "nodes_of_type"
                and any(is_type_id(a) for a in node.args)
            )
        ):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_no_type_id_comparisons_outside_the_catalogue():
    """What a node does is declared on its node type (role, inference, caption, colour, build):
    nothing in nodes/ or app/ picks behaviour by comparing type-id strings."""
    from conv3dt_studio.nodes import NODE_TYPE_IDS

    ids = set(NODE_TYPE_IDS)
    found = [
        place
        for folder in ("nodes", "app")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path.name != "catalogue.py"
        for place in _type_id_comparisons(path, ids)
    ]
    assert found == []


def test_the_type_id_count_can_fail(tmp_path, monkeypatch):
    bad = tmp_path / "bad.py"
    bad.write_text(
        'if node.type == "conv3d_transpose": pass\n'
        'ok = kind in ("data", "target")\n'
        'preds = doc.nodes_of_type("prediction_6d")\n'
        "fine = node.type == other\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    ids = {"conv3d_transpose", "data", "target", "prediction_6d"}
    assert _type_id_comparisons(bad, ids) == ["bad.py:1", "bad.py:2", "bad.py:3"]


# ---------------------------------------------------------------------- the command line
CLI = ("app", "cli")  # conv3dt_studio.app.cli, beside the editor in app/
QT = ("PySide6", "shiboken6", "NodeGraphQt", "pyqtgraph")
EDITOR = "conv3dt_studio.app.editor"


def _cli_modules() -> list[str]:
    folder = ROOT.joinpath(*CLI)
    names = sorted(p.stem for p in folder.glob("*.py") if p.stem not in ("__init__", "__main__"))
    return ["conv3dt_studio.app.cli"] + [f"conv3dt_studio.app.cli.{n}" for n in names]


def test_the_command_line_imports_no_qt():
    """Every module of the command-line package, imported in a fresh process, loads no Qt, no
    CuPy and nothing of the editor."""
    modules = _cli_modules()
    assert len(modules) >= 8, modules
    loaded = _loaded_after_import(", ".join(modules))
    assert set(modules) <= set(loaded)
    assert [m for m in loaded if m.split(".")[0] in QT] == []
    assert _forbidden(loaded) == []
    assert [m for m in loaded if m.startswith(EDITOR)] == []


def _cli_violations() -> list[str]:
    """Import statements under app/cli that load the editor or Qt (at module level or in a
    function alike), and modules loaded by name anywhere but lazy_import.py: the editor's modules
    reach the command line only as names given to ``lazy_import.optional_module``."""
    bad = []
    for path in sorted(ROOT.joinpath(*CLI).rglob("*.py")):
        where = str(path.relative_to(ROOT))
        for line, name in _imports(path, members_of=("conv3dt_studio.app",)):
            if name.startswith(EDITOR) or name.split(".")[0] in QT:
                bad.append(f"{where}:{line} imports {name}")
        if path.name == "lazy_import.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and _called_name(node) in ("import_module", "__import__"):
                bad.append(f"{where}:{node.lineno} imports by name outside lazy_import.py")
    return bad


def _called_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def test_the_command_line_loads_the_editor_only_by_name():
    assert _cli_violations() == []


def test_the_command_line_check_can_fail(tmp_path, monkeypatch):
    cli = tmp_path.joinpath(*CLI)
    cli.mkdir(parents=True)
    (cli / "lazy_import.py").write_text("import importlib\nimportlib.import_module('x')\n")
    (cli / "bad.py").write_text(
        "from conv3dt_studio.app.editor import main_window\nfrom ..editor import canvas\n"
        "import PySide6.QtCore\nfrom conv3dt_studio.app import editor\n"
        "def later():\n    import pyqtgraph\n    importlib.import_module('NodeGraphQt')\n"
        "from conv3dt_studio.app import cli\nimport argparse\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = _cli_violations()
    assert [f.split(":")[1].split()[0] for f in found] == ["1", "2", "3", "4", "6", "7"], found


def test_the_numerics_core_has_no_command_line():
    """Options, their checks and printing live in app/cli (bench's included), not in compute/."""
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sorted((ROOT / "compute").rglob("*.py"))
        for line, name in _imports(path)
        if name.split(".")[0] in ("argparse", "tqdm")
    ]
    assert found == []
