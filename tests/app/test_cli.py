"""The ``conv3dt-studio`` command line: every command, every bad input, exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import ERR, installed_env, run_module  # noqa: E402
from small_graphs import SMALL_SAMPLE as SAMPLE  # noqa: E402
from small_graphs import small_doc  # noqa: E402

from conv3dt_studio import nodes  # noqa: E402
from conv3dt_studio.app import cli  # noqa: E402
from conv3dt_studio.app.cli import lazy_import  # noqa: E402
from conv3dt_studio.nodes.snippet import PNG_SIGNATURE, embed_graph_text  # noqa: E402
from conv3dt_studio.nodes.weights import save_weights  # noqa: E402

SMALL_SHAPE = "(2, 2, 3, 10, 10, 5)"


@pytest.fixture
def graph(tmp_path) -> Path:
    path = tmp_path / "small.json"
    small_doc().save(path)
    return path


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def error_lines(err: str) -> list[str]:
    lines = err.strip().splitlines()
    assert lines and all(line.startswith(ERR) for line in lines), err
    assert "Traceback" not in err
    return [line[len(ERR) :] for line in lines]


def _chunk(ctype: bytes, body: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def tiny_png() -> bytes:
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\x00\x80"))
        + _chunk(b"IEND", b"")
    )


# ---------------------------------------------------------------------- run


def test_run_default_toolkit_example(capsys):
    code, out, err = run(capsys, "run", "--backend", "numpy")
    assert code == 0, err
    assert "Prediction 6D `prediction_6d` (toolkit_example.json)" in out
    assert "name:        time_distributed" in out
    assert "graph index: 1" in out
    assert "shape:       (10, 6, 3, 66, 66, 5)" in out
    # docs/cli.md shows this run's output: every line but the time it took
    docs = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
    shown = docs.split("Prediction 6D `prediction_6d` (toolkit_example.json)\n", 1)[1]
    shown = shown.split("elapsed:", 1)[0].rstrip().splitlines()
    assert shown and all(line in out.splitlines() for line in shown), shown


def test_run_prints_info_backend_and_statistics(capsys, graph):
    code, out, err = run(capsys, "run", graph, "--backend", "numpy")
    assert code == 0 and err == ""
    assert f"shape:       {SMALL_SHAPE}" in out
    assert "backend: numpy (CPU)" in out
    for word in ("min:", "max:", "mean:", "std:", "NaN: 0  Inf: 0", "elapsed:"):
        assert word in out


def test_run_says_its_statistics_leave_out_inf_and_nan(capsys, tmp_path):
    """min/max/mean/std skip non-finite values: with any, they are called finite."""
    conv = {"filter_initializer": "constant", "constant_value": 30.0, "activation": "exponential"}
    path = tmp_path / "overflow.json"
    small_doc(conv).save(path)
    code, out, err = run(capsys, "run", path, "--backend", "numpy")
    assert code == 0, err
    assert "Inf: 0" not in out
    assert "finite min:" in out and "finite mean:" in out


@pytest.fixture
def two_chains(tmp_path) -> Path:
    """The small graph plus a second chain from its Input, of 7 filters, ending in
    `prediction_6d_2`."""
    doc = small_doc()
    doc.add_node("conv3d_transpose", {"n_filters": 7}, node_id="conv3d_transpose_2")
    doc.add_node("time_distributed", {}, node_id="time_distributed_2")
    doc.add_node("prediction_6d", {}, node_id="prediction_6d_2")
    doc.connect("input", "y", "time_distributed_2", "x")
    doc.connect("conv3d_transpose_2", "layer", "time_distributed_2", "layer")
    doc.connect("time_distributed_2", "y", "prediction_6d_2", "x")
    path = tmp_path / "two.json"
    doc.save(path)
    return path


@pytest.mark.parametrize(
    ("argv", "node_id", "filters"),
    [([], "prediction_6d", 3), (["--prediction", "prediction_6d_2"], "prediction_6d_2", 7)],
)
def test_run_names_the_prediction_node_it_computes(capsys, two_chains, argv, node_id, filters):
    code, out, err = run(capsys, "run", two_chains, *argv)
    assert code == 0, err
    assert out.startswith(f"Prediction 6D `{node_id}` (two.json)")
    assert f"shape:       (2, 2, {filters}, 10, 10, 5)" in out


@pytest.mark.parametrize("data", [False, True])
def test_an_unknown_prediction_node_lists_those_of_the_graph(capsys, two_chains, tmp_path, data):
    argv = ["run", two_chains, "--prediction", "nope"]
    if data:  # checked before the data, whose message would otherwise come first
        np.save(tmp_path / "x.npy", np.ones((1, *SAMPLE), np.float32))
        argv += ["--data", tmp_path / "x.npy"]
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert error_lines(err) == [
        "Invalid value for --prediction: expected a Prediction 6D node of two.json (it has: "
        "`prediction_6d`, `prediction_6d_2`). Received: `nope`"
    ]


def test_run_ignores_an_unfinished_branch_elsewhere(capsys, two_chains):
    doc = nodes.load(two_chains)
    doc.disconnect("conv3d_transpose_2", "layer", "time_distributed_2", "layer")
    doc.save(two_chains)
    assert run(capsys, "run", two_chains)[0] == 0
    code, _, err = run(capsys, "run", two_chains, "--prediction", "prediction_6d_2")
    assert code == 2 and "node `time_distributed_2`, `layer`: missing link" in err


def test_same_seed_bit_identical_output(capsys, graph, tmp_path):
    outs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        path = tmp_path / f"{name}.npy"
        code, out, _ = run(capsys, "run", graph, "--seed", seed, "--out", path)
        assert code == 0 and f"saved: {path}" in out
        outs.append(path.read_bytes())
    assert outs[0] == outs[1]
    assert outs[0] != outs[2]
    assert np.load(tmp_path / "a.npy").shape == (2, 2, 3, 10, 10, 5)


def test_out_refuses_to_overwrite_without_force(capsys, graph, tmp_path):
    path = tmp_path / "y.npy"
    path.write_bytes(b"precious")
    code, out, err = run(capsys, "run", graph, "--out", path)
    assert code == 2 and out == ""
    assert error_lines(err) == [f"`{path}` already exists: choose another --out or add --force"]
    assert path.read_bytes() == b"precious"
    code, _, _ = run(capsys, "run", graph, "--out", path, "--force")
    assert code == 0
    assert np.load(path, allow_pickle=False).shape == (2, 2, 3, 10, 10, 5)


def test_out_into_a_missing_folder(capsys, graph, tmp_path):
    code, _, err = run(capsys, "run", graph, "--out", tmp_path / "no" / "y.npy")
    assert code == 2
    assert "folder" in error_lines(err)[0] and "does not exist" in err


def test_data_overrides_the_data_node(capsys, graph, tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.ones((3, *SAMPLE), np.float32))
    code, out, err = run(capsys, "run", graph, "--data", path)
    assert code == 0, err
    assert "shape:       (3, 2, 3, 10, 10, 5)" in out


def test_data_npz_with_array_name(capsys, graph, tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, x=np.ones((1, *SAMPLE)), other=np.zeros(2))
    code, out, _ = run(capsys, "run", graph, "--data", path, "--array", "x")
    assert code == 0 and "shape:       (1, 2, 3, 10, 10, 5)" in out
    code, _, err = run(capsys, "run", graph, "--data", path)
    assert error_lines(err) == [
        f"File `{path}` holds 2 arrays (other, x): set --array to choose one"
    ]


def test_wrong_data_shape_names_both_shapes(capsys, graph, tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.ones((3, 2, 2, 8, 8), np.float32))
    code, _, err = run(capsys, "run", graph, "--data", path)
    assert code == 2
    (line,) = error_lines(err)
    assert line.startswith(f"{graph} with --data {path}: node `input`, `shape`: shape mismatch")
    assert "(None, 2, 2, 8, 8, 3)" in line and "(3, 2, 2, 8, 8)" in line


def test_pickled_npy_is_refused(capsys, graph, tmp_path):
    path = tmp_path / "evil.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    code, _, err = run(capsys, "run", graph, "--data", path)
    assert code == 2
    (line,) = error_lines(err)
    assert f"`{path}` holds Python objects (pickled data)" in line


def test_missing_data_file(capsys, graph, tmp_path):
    code, _, err = run(capsys, "run", graph, "--data", tmp_path / "nope.npy")
    assert code == 2 and "nope.npy` does not exist" in error_lines(err)[0]


def test_weights(capsys, graph, tmp_path):
    result = nodes.run_document(nodes.load(graph), backend="numpy", seed=1)
    weights = tmp_path / "w.npz"
    save_weights(weights, result.graph.layers)
    out_path = tmp_path / "y.npy"
    code, _, err = run(capsys, "run", graph, "--seed", 1, "--weights", weights, "--out", out_path)
    assert code == 0, err
    assert np.array_equal(np.load(out_path), result.prediction)


def test_weights_for_another_graph(capsys, graph, tmp_path):
    weights = tmp_path / "w.npz"
    np.savez(weights, **{"other/kernel": np.zeros((3, 3, 3, 3, 2), np.float32)})
    code, _, err = run(capsys, "run", graph, "--weights", weights)
    assert code == 2
    assert "has no weights for layer `conv3d_transpose`" in error_lines(err)[0]


def test_memory_limit(capsys, graph):
    code, _, err = run(capsys, "run", graph, "--memory-limit", "0.01")
    assert code == 2
    (line,) = error_lines(err)
    assert line.startswith(f"{graph}: node `prediction_6d`: this run needs about")
    assert "above the memory limit of 0.0 MiB" in line
    assert run(capsys, "run", graph, "--memory-limit", "64")[0] == 0


def test_progress_of_multi_batch_runs_is_plain_lines_off_a_terminal(capsys, tmp_path):
    doc = small_doc(batch=3)
    doc.set_param("prediction_6d", "batch_size", 1)
    path = tmp_path / "batched.json"
    doc.save(path)
    code, out, err = run(capsys, "run", path)
    assert code == 0
    assert err.splitlines() == [" 33% batch 1/3", " 67% batch 2/3", "100% batch 3/3"]
    assert "\r" not in err and "batch 1/3" not in out


def test_single_batch_runs_draw_no_bar(capsys, graph):
    code, _, err = run(capsys, "run", graph)
    assert code == 0 and err == ""


def test_unavailable_cupy_backend(capsys, graph):
    from conv3dt_studio import compute

    if compute.cupy_status().startswith("available"):
        pytest.skip("CuPy works here")
    code, _, err = run(capsys, "run", graph, "--backend", "cupy")
    assert code == 2 and error_lines(err)[0].startswith("Backend `cupy` is unavailable")


def test_run_a_snippet_png(capsys, graph, tmp_path):
    png = tmp_path / "snippet.png"
    png.write_bytes(embed_graph_text(tiny_png(), graph.read_text()))
    code, out, _ = run(capsys, "run", png)
    assert code == 0 and f"shape:       {SMALL_SHAPE}" in out


def test_keyboard_interrupt_exits_130_quietly(capsys, graph, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(nodes, "run_document", interrupted)
    code, _, err = run(capsys, "run", graph)
    assert code == 130 and "Traceback" not in err and "error" not in err


def test_broken_pipe_exits_quietly(capsys, graph, monkeypatch):
    def closed(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(nodes, "validate", closed)
    code, _, err = run(capsys, "validate", graph)
    assert code == 141 and err == ""


def test_debug_shows_the_traceback(capsys, tmp_path):
    code, _, err = run(capsys, "run", "--debug", tmp_path / "nope.json")
    assert code == 2
    assert "Traceback" in err and err.rstrip().endswith("nope.json` does not exist")
    code, _, err = run(capsys, "--debug", "validate", tmp_path / "nope.json")
    assert code == 2 and "Traceback" in err


# ---------------------------------------------------------------------- bad inputs


def _doc_json(**conv) -> dict:
    return small_doc(conv).to_json()


def _bad_graphs(tmp_path: Path) -> dict[str, tuple[Path, list[str]]]:
    """name -> (file, substrings that the error lines must contain)."""
    out = {}

    def write(name, text, needles):
        path = tmp_path / name
        path.write_text(text) if isinstance(text, str) else path.write_bytes(text)
        out[name] = (path, needles)

    good = json.dumps(_doc_json(), indent=2)
    write("truncated.json", good[: len(good) // 2], ["truncated.json: not valid JSON"])
    data = _doc_json()
    data["nodes"][2]["type"] = "conv4d"
    write("unknown_type.json", json.dumps(data), ["node `conv3d_transpose`: unknown node type"])
    data = _doc_json()
    data["nodes"][2]["params"]["size"] = [3, 3, 3, 3]
    write(
        "four_sizes.json",
        json.dumps(data),
        ["node `conv3d_transpose`, `size`: Invalid value for `size`", "size=[3, 3, 3, 3]"],
    )
    data = _doc_json()
    data["links"][0]["from"] = ["conv3d_transpose", "layer"]
    write(
        "wrong_kind.json",
        json.dumps(data),
        ["node `input`, `x`: wrong port kind: `conv3d_transpose.layer` gives a layer"],
    )
    data = _doc_json()
    data["links"][0]["from"] = ["time_distributed", "y"]
    write("cycle.json", json.dumps(data), ["cycle through nodes input, time_distributed"])
    write("corrupt.png", tiny_png()[:30], ["corrupt.png` is a truncated or corrupt PNG"])
    write("plain.png", tiny_png(), ["plain.png` is a PNG without an embedded"])
    out["missing.json"] = (tmp_path / "missing.json", ["missing.json` does not exist"])
    return out


BAD = [
    "truncated.json",
    "unknown_type.json",
    "four_sizes.json",
    "wrong_kind.json",
    "cycle.json",
    "corrupt.png",
    "plain.png",
    "missing.json",
]


@pytest.mark.parametrize("command", ["run", "validate"])
@pytest.mark.parametrize("name", BAD)
def test_bad_graph_files(capsys, tmp_path, command, name):
    path, needles = _bad_graphs(tmp_path)[name]
    code, out, err = run(capsys, command, path)
    assert code == 2
    assert out == ""
    text = "\n".join(error_lines(err))
    assert str(path) in text  # the file is named
    for needle in needles:
        assert needle in text


def test_validate_reports_every_problem_one_line_each(capsys, tmp_path):
    data = _doc_json()
    data["nodes"][2]["params"].update(size=[3, 3, 3, 3], n_filters=0)
    data["nodes"][4]["params"]["batch_size"] = -1
    path = tmp_path / "g.json"
    path.write_text(json.dumps(data))
    code, _, err = run(capsys, "validate", path)
    assert code == 2
    lines = error_lines(err)
    assert len(lines) == 3
    assert all(line.startswith(f"{path}: node `") for line in lines)
    assert {line.split(": ")[1] for line in lines} == {
        "node `conv3d_transpose`, `size`",
        "node `conv3d_transpose`, `n_filters`",
        "node `prediction_6d`, `batch_size`",
    }


# ---------------------------------------------------------------------- validate, info


def test_validate_prints_the_shape_table(capsys, graph):
    code, out, err = run(capsys, "validate", graph)
    assert code == 0 and err == ""
    rows = [line.split() for line in out.strip().splitlines()]
    assert rows[0] == ["node", "type", "output", "shape"]
    table = {r[0]: (r[1], " ".join(r[2:])) for r in rows[1:-2]}  # then memory and OK
    assert rows[-2][:5] == ["memory", "for", "a", "run", "of"]
    assert table == {
        "data": ("data", "(2, 2, 2, 8, 8, 3)"),
        "input": ("input", "(2, 2, 2, 8, 8, 3)"),
        "conv3d_transpose": ("conv3d_transpose", "(layer)"),
        "time_distributed": ("time_distributed", SMALL_SHAPE),
        "prediction_6d": ("prediction_6d", SMALL_SHAPE),
    }
    assert out.strip().splitlines()[-1] == f"{graph}: OK (5 nodes, 4 links)"


def test_validate_needs_a_graph(capsys):
    code, _, err = run(capsys, "validate")
    assert code == 2 and "the following arguments are required: GRAPH" in err


def test_info(capsys):
    from conv3dt_studio import compute

    code, out, err = run(capsys, "info")
    assert code == 0 and err == ""
    assert out.startswith("conv3dt-studio ")
    assert f"NumPy: {np.__version__}" in out
    assert f"CuPy: {compute.cupy_status()}" in out
    for t in nodes.NODE_TYPES.values():
        assert any(line.split()[:2] == [t.type_id, f"v{t.version}"] for line in out.splitlines()), (
            t.type_id
        )


def test_help_and_version(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("run", "validate", "info", "bench", "snippet", "open"):
        assert command in out
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("conv3dt-studio ")


@pytest.mark.parametrize(
    ("argv", "needles", "command"),
    [
        (["frobnicate"], ["invalid choice", "frobnicate", "run", "validate"], ""),
        (["--bogus"], ["unrecognized option `--bogus`", "--debug, --version"], ""),
        (["--bogus", "run"], ["unrecognized option `--bogus`"], ""),
        (["run", "--seed", "-1"], ["--seed", "expected an integer from 0 to 2147483647"], "run"),
        (
            ["run", "--seed", "x"],
            ["--seed", "expected an integer from 0 to 2147483647", "'x'"],
            "run",
        ),
        (["run", "--seed"], ["--seed", "expected one argument"], "run"),
        (["run", "--backend", "foo"], ["--backend", "invalid choice", "foo", "numpy"], "run"),
        (["run", "--memory-limit", "0"], ["expected a positive number of MiB"], "run"),
        (
            ["run", "--bogus"],
            ["unrecognized option `--bogus`", "accepts --debug, --prediction, --data"],
            "run",
        ),
        (["run", "a.json", "b"], ["unexpected argument `b`", "takes only GRAPH"], "run"),
        (["train"], ["required: GRAPH"], "train"),
        (["validate", "a", "b", "c"], ["unexpected arguments `b`, `c`"], "validate"),
        (["info", "x"], ["unexpected argument `x`", "no arguments"], "info"),
        (["snippet", "g.json"], ["required: -o/--output"], "snippet"),
    ],
)
def test_usage_errors_are_one_line_with_a_help_hint(capsys, argv, needles, command):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    (line,) = error_lines(err)
    for needle in needles:
        assert needle in line
    prog = " ".join(filter(None, ["conv3dt-studio", command]))
    assert line.endswith(f"(see {prog} --help)")


@pytest.mark.parametrize("argv", [["run", "--help"], ["train", "-h"], ["validate", "--help"]])
def test_command_help_still_exits_0(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 0 and err == ""
    assert out.startswith(f"usage: conv3dt-studio {argv[0]}")


# ---------------------------------------------------------------------- delegated commands


def _fake_module(monkeypatch, name: str, **functions):
    module = types.ModuleType(name)
    for key, fn in functions.items():
        setattr(module, key, fn)
    monkeypatch.setitem(sys.modules, name, module)
    return module


@pytest.mark.parametrize(
    ("argv", "module", "what"),
    [
        (["bench"], "conv3dt_studio.compute.benchmark", "the `bench` command"),
        (
            ["snippet", "GRAPH", "-o", "g.png"],
            "conv3dt_studio.app.editor.snippet_export",
            "the `snippet` command",
        ),
        (["open"], "conv3dt_studio.app.editor.main_window", "the editor"),
        ([], "conv3dt_studio.app.editor.main_window", "the editor"),
    ],
)
def test_missing_module_is_a_one_line_error(capsys, monkeypatch, graph, argv, module, what):
    monkeypatch.setitem(sys.modules, module, None)  # import raises ModuleNotFoundError
    code, _, err = run(capsys, *[graph if a == "GRAPH" else a for a in argv])
    assert code == 2
    assert error_lines(err) == [f"{what} is not available in this build (no module `{module}`)"]


def test_qt_that_fails_to_load_is_a_one_line_error(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "conv3dt_studio.app.editor.main_window", None)

    def failing_import(name, *args, **kwargs):
        raise ImportError("libEGL.so.1: cannot open shared object file", name="PySide6.QtGui")

    monkeypatch.setattr(lazy_import.importlib, "import_module", failing_import)
    code, _, err = run(capsys, "open")
    assert code == 2
    (line,) = error_lines(err)
    assert line.startswith("the editor needs Qt (PySide6, NodeGraphQt), which failed to load")
    assert "libEGL.so.1" in line


def test_snippet_delegates(capsys, monkeypatch, graph, tmp_path):
    seen = []
    _fake_module(
        monkeypatch,
        "conv3dt_studio.app.editor.snippet_export",
        main=lambda args: seen.append(args) or 0,
    )
    png = tmp_path / "g.png"
    assert cli.main(["snippet", str(graph), "-o", str(png)]) == 0
    (args,) = seen
    assert (args.graph, args.output, args.force) == (str(graph), str(png), False)


def test_snippet_checks_the_graph_and_the_output_first(capsys, monkeypatch, graph, tmp_path):
    _fake_module(monkeypatch, "conv3dt_studio.app.editor.snippet_export", main=lambda args: 0)
    code, _, err = run(capsys, "snippet", tmp_path / "nope.json", "-o", tmp_path / "g.png")
    assert code == 2 and "nope.json` does not exist" in error_lines(err)[0]
    png = tmp_path / "g.png"
    png.write_bytes(b"old")
    code, _, err = run(capsys, "snippet", graph, "-o", png)
    assert code == 2 and "already exists" in error_lines(err)[0]
    assert run(capsys, "snippet", graph, "-o", png, "--force")[0] == 0


@pytest.mark.parametrize(
    ("name", "written"), [("g.png", "g.png"), ("g.PNG", "g.PNG"), ("g", "g.png"), ("a.b/g", None)]
)
def test_snippet_output_gets_png_as_in_the_editor(
    capsys, monkeypatch, graph, tmp_path, name, written
):
    seen = []
    _fake_module(
        monkeypatch,
        "conv3dt_studio.app.editor.snippet_export",
        main=lambda args: seen.append(args) or 0,
    )
    (tmp_path / "a.b").mkdir()
    assert cli.main(["snippet", str(graph), "-o", str(tmp_path / name)]) == 0
    assert seen[0].output == str(tmp_path / (written or "a.b/g.png"))


@pytest.mark.parametrize("name", ["g.jpg", "g.json", "g.png.bak"])
def test_snippet_output_with_another_extension_is_refused(
    capsys, monkeypatch, graph, tmp_path, name
):
    _fake_module(monkeypatch, "conv3dt_studio.app.editor.snippet_export", main=lambda args: 0)
    code, _, err = run(capsys, "snippet", graph, "-o", tmp_path / name)
    assert code == 2
    assert error_lines(err) == [
        "Invalid value for -o: expected a .png file (a name without an extension gets .png). "
        f"Received: `{tmp_path / name}`"
    ]


def test_snippet_output_checks_the_name_it_will_write(capsys, monkeypatch, graph, tmp_path):
    _fake_module(monkeypatch, "conv3dt_studio.app.editor.snippet_export", main=lambda args: 0)
    (tmp_path / "g.png").write_bytes(b"old")
    code, _, err = run(capsys, "snippet", graph, "-o", tmp_path / "g")
    assert code == 2 and error_lines(err) == [
        f"`{tmp_path / 'g.png'}` already exists: choose another -o or add --force"
    ]
    code, _, err = run(capsys, "snippet", graph, "-o", tmp_path / "nodir" / "g.png")
    assert code == 2 and "folder `" in err and "does not exist" in err


@pytest.mark.parametrize(
    ("argv", "path"), [([], None), (["open"], None), (["open", "g.json"], "g.json")]
)
def test_open_and_no_command_launch_the_editor(monkeypatch, argv, path):
    seen = []
    _fake_module(
        monkeypatch, "conv3dt_studio.app.editor.main_window", launch=lambda p: seen.append(p) or 0
    )
    assert cli.main(argv) == 0
    assert seen == [path]


# ---------------------------------------------------------------------- processes


def test_python_m_conv3dt_studio_run_in_a_real_process(graph):
    proc = run_module("run", "--seed", "0", str(graph), cwd=graph.parent, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"shape:       {SMALL_SHAPE}" in proc.stdout
    assert proc.stderr == ""


@pytest.mark.parametrize("argv", [["validate", "nope.json"], ["run", "--backend", "foo"]])
def test_python_m_app_error_exit_status(tmp_path, argv):
    proc = run_module(*argv, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith(ERR) and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr


QT = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "NodeGraphQt", "pyqtgraph", "qtpy")

HEADLESS_PROBE = """
import contextlib, io, sys
from conv3dt_studio.app import cli
graph = sys.argv[1]
for argv in (["run", graph], ["validate", graph], ["info"], ["bench", "--help"]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        cli.main(argv)
print(sorted(m for m in sys.modules if m.split(".")[0] in QT))
"""


def test_headless_commands_import_no_qt(graph):
    probe = f"QT = {QT!r}\n" + HEADLESS_PROBE
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(graph)],
        env=installed_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_validate_table_marks_nodes_without_a_tensor_output(capsys, tmp_path):
    doc = small_doc()
    doc.add_node("target", {"batch_size": 2, "sample_shape": [2, 3, 10, 10, 5]})
    doc.add_node("loss")
    doc.connect("prediction_6d", "y", "loss", "prediction")
    doc.connect("target", "data", "loss", "target")
    path = tmp_path / "train.json"
    doc.save(path)
    code, out, err = run(capsys, "validate", path)
    assert code == 0, err
    rows = {line.split()[0]: line.split()[-1] for line in out.splitlines()[1:-1]}
    assert rows["loss"] == "-" and rows["conv3d_transpose"] == "(layer)"


def test_open_without_a_display_is_one_clear_error(capsys, monkeypatch):
    for key in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    code, _, err = run(capsys, "open")
    assert code == 2
    (line,) = error_lines(err)
    assert "needs a display" in line


def test_complex_data_file_is_refused_on_its_node(capsys, tmp_path):
    x = tmp_path / "c.npy"
    np.save(x, np.ones((1, 2, 2, 8, 8, 3), np.complex64))
    doc = small_doc()
    doc.set_param("data", "source", "file")
    doc.set_param("data", "path", str(x))
    doc.save(tmp_path / "g.json")
    code, _, err = run(capsys, "validate", tmp_path / "g.json")
    assert code == 2
    assert "node `data`, `path`" in err and "expected numbers" in err


def test_a_folder_as_graph_is_named_as_a_folder(capsys, tmp_path):
    code, _, err = run(capsys, "run", tmp_path)
    assert code == 2
    assert "is a folder, not a file" in error_lines(err)[0]


@pytest.mark.parametrize("debug", [False, True])
def test_an_unexpected_exception_is_one_line_naming_the_file(capsys, graph, monkeypatch, debug):
    def broken(path):
        raise ZeroDivisionError("the reader divided by zero")

    monkeypatch.setattr(nodes, "load", broken)
    argv = ["validate", str(graph)] + (["--debug"] if debug else [])
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last == (
        f"{ERR}`{graph}`: unexpected ZeroDivisionError: the reader divided by zero (please "
        "report it; --debug shows the traceback)"
    )
    assert ("Traceback" in err) is debug


def test_validate_prints_the_memory_a_run_needs_and_refuses_what_would_not_fit(
    capsys, tmp_path, monkeypatch
):
    from conv3dt_studio.nodes import memory

    path = tmp_path / "g.json"
    small_doc().save(path)
    code, out, _ = run(capsys, "validate", path)
    assert code == 0 and "memory for a run of prediction_6d: about " in out
    monkeypatch.setattr(memory, "available_memory", lambda: 2 * 1024)  # a 1 KiB limit
    code, out, err = run(capsys, "validate", path)
    (line,) = error_lines(err)
    assert code == 2 and "node `prediction_6d`: a run needs about" in line
    assert "above the memory limit of 0.0 MiB" in line
