"""The core never imports Qt: ``import nodes`` (and a headless run) load no Qt module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QT = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "NodeGraphQt", "pyqtgraph", "qtpy")

PROBE = f"""
import sys
from conv3dt_studio import nodes
from conv3dt_studio.nodes.examples import toolkit_example
doc = toolkit_example(data={{"batch_size": 1, "sample_shape": [1, 1, 2, 2, 2]}},
                      input_shape=(1, 1, 2, 2, 2))
nodes.run_document(doc, backend="numpy")
nodes.load(nodes.DEFAULT_EXAMPLE)
print(sorted(m for m in sys.modules if m.split(".")[0] in {QT!r}))
"""


def test_import_nodes_loads_no_qt():
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
