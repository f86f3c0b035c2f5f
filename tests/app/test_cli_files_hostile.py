"""`export` and `import` with hostile files and paths from the command line: one line and exit
status 2 for every refusal, no other file touched, no warning of Python's on stderr."""

from __future__ import annotations

import json
import pickle
import time
import warnings
import zipfile

import numpy as np
import pytest
import safetensors.numpy
from cli_helpers import ERR, run_module
from small_graphs import small_doc

from conv3dt_studio import nodes
from conv3dt_studio.app.cli import main
from conv3dt_studio.app.cli.errors import guarded
from conv3dt_studio.nodes.interop import export_document

EXPORTED = {"model.py", "weights.safetensors", "architecture.json", "train_ddp.py"}


@pytest.fixture
def graph(tmp_path):
    path = tmp_path / "g.json"
    small_doc({"activation": "tanh"}).save(path)
    return path


def _one_error(err: str) -> str:
    (line,) = err.splitlines()
    assert line.startswith(ERR)
    return line[len(ERR) :]


# ------------------------------------------------------------------- (5) export into a folder
def test_force_keeps_the_graph_and_the_other_files_of_the_folder(capsys, tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    small_doc().save(project / "graph.json")
    (project / "notes.txt").write_text("precious")
    np.save(project / "x.npy", np.zeros(3, np.float32))
    argv = ["export", str(project / "graph.json"), "--format", "pytorch", "-o", str(project)]

    assert main(argv) == 2
    line = _one_error(capsys.readouterr().err)
    assert line == (
        f"Folder `{project}` already exists: pass --force to replace its export (model.py, "
        "weights.safetensors, architecture.json, train_ddp.py); the other files in it are kept. "
        "Nothing was written"
    )
    assert main([*argv, "--force"]) == 0
    assert {p.name for p in project.iterdir()} == {"graph.json", "notes.txt", "x.npy", *EXPORTED}
    assert (project / "notes.txt").read_text() == "precious"
    assert nodes.validate(nodes.load(project / "graph.json")).ok


def test_export_refuses_to_replace_the_graph_it_exports(capsys, tmp_path):
    source = tmp_path / "architecture.json"
    small_doc().save(source)
    before = source.read_bytes()
    argv = ["export", str(source), "--format", "pytorch", "-o", str(tmp_path), "--force"]
    assert main(argv) == 2
    line = _one_error(capsys.readouterr().err)
    assert line.startswith(f"Cannot export to `{source}`: it is the graph being exported")
    assert source.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["architecture.json"]


# ------------------------------------------------------------------- (6) -o .
def test_pytorch_export_to_dot_writes_into_the_current_folder(capsys, graph, monkeypatch):
    monkeypatch.chdir(graph.parent)
    assert main(["export", graph.name, "--format", "pytorch", "-o", ".", "--force"]) == 0
    assert "to PyTorch `.`" in capsys.readouterr().out
    assert {p.name for p in graph.parent.iterdir()} == {"g.json", *EXPORTED}


@pytest.mark.parametrize("fmt", ["onnx", "keras", "python"])
def test_a_file_format_refuses_dot_in_one_line(capsys, graph, monkeypatch, fmt):
    monkeypatch.chdir(graph.parent)
    assert main(["export", graph.name, "--format", fmt, "-o", ".", "--force"]) == 2
    line = _one_error(capsys.readouterr().err)
    assert line.startswith("Invalid value for -o: expected a file name ending in .")
    assert line.endswith("Received: -o '.'")
    assert [p.name for p in graph.parent.iterdir()] == ["g.json"]


def test_an_empty_output_folder_name_is_refused(capsys, graph):
    assert main(["export", str(graph), "--format", "pytorch", "-o", ""]) == 2
    line = _one_error(capsys.readouterr().err)
    assert line.startswith("Invalid value for -o: expected a folder name")
    assert line.endswith("Received: an empty name")


# ------------------------------------------------------------------- (7) NaN weights
def test_import_refuses_nan_weights_and_writes_nothing(capsys, graph, tmp_path):
    folder = export_document(nodes.load(graph), "pytorch", tmp_path / "pt").path
    arrays = safetensors.numpy.load_file(str(folder / "weights.safetensors"))
    arrays["layers.0.conv.weight"].reshape(-1)[[0, 5]] = np.nan
    meta = {"conv3dt_studio.architecture": (folder / "architecture.json").read_text()}
    bad = tmp_path / "nan.safetensors"
    safetensors.numpy.save_file(arrays, str(bad), metadata=meta)
    size = arrays["layers.0.conv.weight"].size
    assert main(["import", str(bad), "-o", str(tmp_path / "nan.json")]) == 2
    assert _one_error(capsys.readouterr().err) == (
        "`nan.safetensors`: weights must be finite: tensor `layers.0.conv.weight` holds 2 "
        f"non-finite values (2 NaN, 0 Inf) of {size}"
    )
    assert not (tmp_path / "nan.json").exists()


# ------------------------------------------------------------------- (14) MODEL.KERAS
def test_an_upper_case_keras_suffix_imports(capsys, graph, tmp_path):
    assert main(["export", str(graph), "--format", "keras", "-o", str(tmp_path / "M.KERAS")]) == 0
    assert (tmp_path / "M.KERAS").is_file()
    assert main(["import", str(tmp_path / "M.KERAS"), "-o", str(tmp_path / "back")]) == 0
    assert "imported 1 layer from" in capsys.readouterr().out
    assert nodes.validate(nodes.load(tmp_path / "back.json")).ok


# ------------------------------------------------------------------- (4) a hostile .keras
def test_a_keras_file_declaring_absurd_weights_is_one_line_at_once(graph, tmp_path):
    """Petabytes declared in config.json: refused in one line before Keras builds anything,
    whatever the machine (the weights file holds a few values)."""
    model = export_document(nodes.load(graph), "keras", tmp_path / "model.keras").path
    with zipfile.ZipFile(model) as zin:
        files = {name: zin.read(name) for name in zin.namelist()}
    config = json.loads(files["config.json"])
    td = next(x for x in config["config"]["layers"] if x["class_name"] == "TimeDistributed")
    td["config"]["layer"]["config"].update(filters=2**20, kernel_size=[1024, 1024, 1024])
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "huge.keras", "w") as out:
        for name, data in files.items():
            out.writestr(name, data)
    start = time.monotonic()
    proc = run_module("import", "huge.keras", "-o", "h.json", cwd=tmp_path)
    assert proc.returncode == 2 and time.monotonic() - start < 120
    line = _one_error(proc.stderr)
    assert line.startswith("`huge.keras`: config.json declares 2,251,799,814,733,824 weight values")
    assert "the largest a 1024×1024×1024×1048576×2 kernel" in line
    assert not (tmp_path / "h.json").exists()


# ------------------------------------------------------------------- (12) one line on stderr
def test_an_overflow_in_a_run_is_inf_with_nothing_on_stderr(tmp_path):
    """exp past float32's range is inf, as in Keras: counted in the statistics, no warning."""
    conv = {"activation": "exponential", "filter_initializer": "constant", "constant_value": 1e3}
    small_doc(conv).save(tmp_path / "over.json")
    proc = run_module("run", "over.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "Inf: 0" not in proc.stdout and "finite min:" in proc.stdout


def test_a_pickle_named_pt_is_refused_in_one_line(tmp_path):
    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"x": 1}, protocol=4))
    proc = run_module("import", "evil.pt", "-o", "e.json", cwd=tmp_path)
    assert proc.returncode == 2
    assert _one_error(proc.stderr).startswith("`evil.pt`: not a PyTorch state dict file")


def test_a_warning_in_a_command_is_one_line_once(capsys):
    def command() -> int:
        for _ in range(3):
            warnings.warn("something\n  odd", UserWarning, stacklevel=1)
        warnings.warn("for developers", DeprecationWarning, stacklevel=1)
        return 0

    assert guarded(command, debug=False) == 0
    assert capsys.readouterr().err == "conv3dt-studio: warning: something odd\n"
