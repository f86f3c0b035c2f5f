"""Hostile command-line input (a pass over the CLI's options): every refusal is one line naming
the option, what is allowed and what was received, exit status 2, and comes before any work:
empty file names, outputs that are dangling links with --force, unbounded bench counts, absurd
--peak-gflops, a wrong --x shape, embedded weights holding NaN."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import one_error_line
from small_graphs import small_doc

from conv3dt_studio import nodes
from conv3dt_studio.app.cli import main
from conv3dt_studio.app.cli.output_files import output_problem
from conv3dt_studio.compute import benchmark
from conv3dt_studio.nodes import EXAMPLES, FileError
from conv3dt_studio.nodes.files import require_file
from conv3dt_studio.nodes.weights import encode_weights

GRAPH = str(EXAMPLES / "teacher_student.json")


@pytest.fixture
def no_work(monkeypatch) -> list[str]:
    """Running, training and timing replaced by recorders: a refusal must come before them."""
    calls: list[str] = []

    def record(name):
        def called(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} ran before the refusal")

        return called

    monkeypatch.setattr(nodes, "run_document", record("run"))
    monkeypatch.setattr("conv3dt_studio.nodes.training.train_document", record("train"))
    monkeypatch.setattr(benchmark, "run_workload", record("bench"))
    return calls


# ------------------------------------------------------------ (1) --force with a dangling link
def _dangling(tmp_path, name: str):
    link = tmp_path / name
    link.symlink_to(tmp_path / "missing" / f"target{link.suffix}")
    return link


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["train", GRAPH, "--epochs", "1", "--weights-out"], "w.npz"),
        (["train", GRAPH, "--epochs", "1", "--history"], "h.json"),
        (["run", GRAPH, "--out"], "y.npy"),
        (["bench", "--workload", "W4", "--json"], "b.json"),
    ],
)
def test_force_with_a_dangling_link_into_a_missing_folder_is_refused_first(
    capsys, tmp_path, no_work, argv, name
):
    link = _dangling(tmp_path, name)
    assert main([*argv, str(link), "--force"]) == 2
    line = one_error_line(capsys)
    assert f"cannot save `{link}`" in line and f"`{tmp_path / 'missing'}` does not exist" in line
    assert no_work == []


def test_force_with_a_link_into_a_folder_nobody_may_write_in_is_refused(tmp_path):
    link = tmp_path / "p.json"
    link.symlink_to("/proc/p.json")  # whoever runs the tests, root included
    problem = output_problem(str(link), True, "--json")
    assert problem is not None and "cannot write in folder `/proc`" in problem


def test_force_with_a_link_whose_target_lies_under_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    link = tmp_path / "w.npz"
    link.symlink_to(tmp_path / "file" / "w.npz")
    problem = output_problem(str(link), True, "--weights-out")
    assert problem is not None and "is a file, not a folder" in problem


def test_force_with_a_dangling_link_into_an_existing_folder_writes_the_target(capsys, tmp_path):
    (tmp_path / "real").mkdir()
    link = tmp_path / "y.npy"
    link.symlink_to(tmp_path / "real" / "y.npy")
    assert main(["run", str(EXAMPLES / "toolkit_example.json"), "--out", str(link), "--force"]) == 0
    assert link.is_symlink() and np.load(tmp_path / "real" / "y.npy").ndim == 6


def test_without_force_a_dangling_link_is_still_an_existing_name(tmp_path):
    link = _dangling(tmp_path, "y.npy")
    assert "already exists" in output_problem(str(link), False, "--out")


# ------------------------------------------------- (2) and (3) an empty name for an input file
EMPTY = [
    (["run", ""], "GRAPH"),
    (["run", "--data", ""], "--data"),
    (["run", "--weights", ""], "--weights"),
    (["train", GRAPH, "--x", ""], "--x"),
    (["train", GRAPH, "--y", ""], "--y"),
    (["train", GRAPH, "--data", ""], "--data"),
    (["train", GRAPH, "--weights-in", ""], "--weights-in"),
    (["train", "", "--epochs", "1"], "GRAPH"),
    (["validate", ""], "GRAPH"),
    (["summary", ""], "GRAPH"),
    (["export", "", "--format", "python", "-o", "never.py"], "GRAPH"),
    (["export", GRAPH, "--format", "python", "-o", "never.py", "--weights", ""], "--weights"),
    (["import", "", "-o", "never.json"], "MODEL"),
]


@pytest.mark.parametrize(("argv", "option"), EMPTY)
def test_an_empty_input_file_name_is_refused_naming_the_option(capsys, no_work, argv, option):
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert f"argument {option}: give a file name. Received: an empty name" in line
    assert no_work == []


def test_require_file_says_the_name_is_empty():
    with pytest.raises(FileError, match="give a file name. Received: an empty name"):
        require_file("")


# ---------------------------------------------------- (4) bench --rounds and --warmup bounded
@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--rounds", "99999999999999999999999", "an integer >= 1 and <= 10000"),
        ("--rounds", "10001", "an integer >= 1 and <= 10000"),
        ("--rounds", "0", "an integer >= 1 and <= 10000"),
        ("--warmup", "99999999999999", "an integer >= 0 and <= 1000"),
        ("--warmup", "-1", "an integer >= 0 and <= 1000"),
    ],
)
def test_bench_counts_are_bounded(capsys, no_work, option, value, words):
    assert main(["bench", option, value]) == 2
    assert f"argument {option}: expected {words}, got '{value}'" in one_error_line(capsys)
    assert no_work == []


# ------------------------------------------------------------------ (5) bench --peak-gflops
@pytest.mark.parametrize("value", ["1e-300", "1e400", "0", "-5", "nan", "inf", "abc", "2e9"])
def test_bench_peak_gflops_out_of_range_echoes_what_was_typed(capsys, no_work, value):
    assert main(["bench", "--peak-gflops", value]) == 2
    line = one_error_line(capsys)
    assert line.startswith("argument --peak-gflops: expected a number of GFLOP/s from 0.001 to 1e9")
    assert f"got '{value}'" in line
    assert no_work == []


# ---------------------------------------------------------------- (7) train --x, wrong shape
def test_train_x_of_a_wrong_shape_names_the_option_and_the_file(capsys, tmp_path):
    x = tmp_path / "x_bad.npy"
    np.save(x, np.zeros((4, 4, 2, 8, 8, 5), np.float32))
    assert main(["train", GRAPH, "--x", str(x), "--epochs", "1", "--backend", "numpy"]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"{GRAPH} with --x {x}: ")
    assert "expected data of shape" in line and "(4, 4, 2, 8, 8, 5)" in line


# ---------------------------------------------------- validate: embedded weights holding NaN
def _with_embedded(tmp_path, bad: float, key: str = "conv3d_transpose/kernel"):
    doc = small_doc()
    path = tmp_path / "g.json"
    doc.save(path)
    arrays = {
        "conv3d_transpose/kernel": np.ones((3, 3, 3, 3, 2), np.float32),
        "conv3d_transpose/bias": np.zeros((3,), np.float32),
    }
    arrays[key].flat[0] = bad
    data = json.loads(path.read_text())
    data["weights"] = encode_weights(arrays)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("bad", "key"),
    [
        (np.nan, "conv3d_transpose/kernel"),
        (np.inf, "conv3d_transpose/kernel"),
        (-np.inf, "conv3d_transpose/bias"),
    ],
)
def test_validate_refuses_embedded_weights_holding_nan_as_run_does(capsys, tmp_path, bad, key):
    path = _with_embedded(tmp_path, bad, key)
    assert main(["validate", str(path)]) == 2
    validated = one_error_line(capsys)
    assert main(["run", str(path), "--backend", "numpy"]) == 2
    assert one_error_line(capsys) == validated
    assert validated == (
        f"{path}: node `conv3d_transpose`: `embedded weights`: Layer `conv3d_transpose`: "
        "weights must be finite. Received NaN or Inf"
    )


def test_validate_accepts_finite_embedded_weights(capsys, tmp_path):
    assert main(["validate", str(_with_embedded(tmp_path, 0.5))]) == 0
    assert capsys.readouterr().out.rstrip().endswith("OK (5 nodes, 4 links)")
