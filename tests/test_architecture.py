"""Import direction compute <- nodes <- app: the cores load no Qt and no CuPy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("PySide6", "PyQt", "Qt", "NodeGraphQt", "pyqtgraph", "cupy", "cupyx")

PACKAGES = ["compute"] + (["nodes"] if (ROOT / "nodes" / "__init__.py").exists() else [])


def _loaded_after_import(package: str) -> list[str]:
    code = f"import json, sys\nimport {package}\nprint(json.dumps(sorted(sys.modules)))\n"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _forbidden(modules: list[str]) -> list[str]:
    return [m for m in modules if m.split(".")[0].startswith(FORBIDDEN)]


@pytest.mark.parametrize("package", PACKAGES)
def test_core_imports_no_qt_and_no_cupy(package):
    modules = _loaded_after_import(package)
    assert package in modules
    assert _forbidden(modules) == []


def test_the_check_can_fail():
    """The filter recognises what it must refuse."""
    assert _forbidden(
        ["numpy", "PySide6.QtCore", "cupy", "NodeGraphQt", "pyqtgraph.Qt", "QtPy", "PyQt5"]
    ) == ["PySide6.QtCore", "cupy", "NodeGraphQt", "pyqtgraph.Qt", "QtPy", "PyQt5"]
    assert _forbidden(["compute", "nodes", "numpy", "scipy"]) == []


def test_compute_does_not_import_nodes_or_app():
    modules = _loaded_after_import("compute")
    assert not [m for m in modules if m.split(".")[0] in ("nodes", "app")]
