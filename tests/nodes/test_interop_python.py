"""Export to a Python script: run in a fresh interpreter, it rebuilds the graph with our API and
reproduces run_document's prediction bit for bit (same data, same weights)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import numpy as np
import pytest
from interop_helpers import all_cases, case_doc, reference, sweep

from conv3dt_studio.nodes import run_document
from conv3dt_studio.nodes.interop import export_document

# runs every exported script's main() in one interpreter (one start-up instead of one each)
DRIVER = """
import json, runpy, sys
for script, out in json.loads(sys.argv[1]):
    sys.argv = [script, "--out", out]
    runpy.run_path(script, run_name="__main__")
"""


@pytest.fixture(scope="module")
def predictions(tmp_path_factory):
    """Each case exported, all run by one subprocess: {name: (script path, prediction)}."""
    root = tmp_path_factory.mktemp("python")
    jobs, scripts = [], {}
    for kind, name in all_cases():
        result = export_document(case_doc(kind, name), "python", root / f"{name}.py")
        scripts[name] = result.path
        jobs.append([str(result.path), str(root / f"{name}.npy")])
    subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(jobs)],
        check=True,
        capture_output=True,
        timeout=600,
        cwd=root,
    )
    return {name: (scripts[name], np.load(root / f"{name}.npy")) for name in scripts}


@pytest.mark.parametrize("kind,name", all_cases(), ids=[n for _, n in all_cases()])
def test_the_script_reproduces_run_document_bit_for_bit(kind, name, predictions):
    _, got = predictions[name]
    assert np.array_equal(got, reference(kind, name)[1])


def test_the_script_runs_on_its_own(predictions, tmp_path):
    """As a user runs it: `python PATH.py --out FILE`, printing the info cluster."""
    script, want = predictions["toolkit_example"]
    out = subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path / "y.npy")],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.stdout.split()[:2] == ["time_distributed", "1"]
    assert np.array_equal(np.load(tmp_path / "y.npy"), want)


def test_the_script_uses_our_public_api_and_no_pickle(predictions):
    script, _ = predictions[next(iter(sweep()))]
    source = script.read_text()
    ast.parse(source)
    assert "from conv3dt_studio.compute import Conv3DTranspose, Graph, Input, TimeDistributed" in (
        source
    )
    assert "allow_pickle=False" in source
    assert script.with_suffix(".npz").is_file()


def test_data_from_a_file_and_a_seed_override(tmp_path):
    doc = case_doc("sweep", next(iter(sweep()))).copy()
    shape = (3, *doc.params("input")["shape"])
    np.save(tmp_path / "x.npy", np.random.default_rng(5).random(shape, dtype=np.float32))
    doc.set_param("data", "source", "file")
    doc.set_param("data", "path", str(tmp_path / "x.npy"))
    result = export_document(doc, "python", tmp_path / "from_file.py", seed=11)
    subprocess.run(
        [sys.executable, str(result.path), "--out", str(tmp_path / "y.npy")],
        check=True,
        capture_output=True,
        timeout=300,
    )
    want = run_document(doc, backend="numpy", seed=11).prediction
    assert np.array_equal(np.load(tmp_path / "y.npy"), want)
