"""`conv3dt-studio bench`: its options and their checks (before any timing), the table it prints
and the JSON it writes. The measuring itself is `conv3dt_studio.compute.benchmark`'s; the runs here
are W4 with one round, or a stand-in measurement."""

from __future__ import annotations

import json

import pytest
from cli_helpers import one_error_line

from conv3dt_studio.app.cli import main
from conv3dt_studio.app.cli.bench import report
from conv3dt_studio.compute import benchmark

W4_ONCE = ["--workload", "W4", "--rounds", "1", "--warmup", "0"]


@pytest.fixture
def measured(monkeypatch) -> list[tuple]:
    """The workloads bench asks to measure, with a stand-in measurement (no timing)."""
    seen: list[tuple] = []

    def run_workload(w, backend, torch, rounds, warmup, peak):
        seen.append((w.name, backend, torch, rounds, warmup, peak))
        row = {"ours_ms": [1.0], "ours_median_ms": 1.0}
        return {
            "workload": w.name,
            "description": w.description,
            "x_shape": list(w.x_shape),
            "y_shape": [1],
            "gflop": 0.5,
            "forward": dict(row),
            "train_step": dict(row),
        }

    monkeypatch.setattr(benchmark, "run_workload", run_workload)
    return seen


# ---------------------------------------------------------------------- options


@pytest.mark.parametrize("argv", [["bench", "--help"], ["--debug", "bench", "-h"]])
def test_bench_help_exits_0(capsys, argv):
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: conv3dt-studio bench")
    for option in ("--workload", "--vs", "--backend", "--rounds", "--warmup", "--peak-gflops"):
        assert option in out


def test_bench_options_reach_the_measurement(capsys, measured):
    argv = ["bench", "--workload", "W2", "--rounds", "3", "--debug", "--warmup", "1", "--backend"]
    assert main([*argv, "numpy"]) == 0
    assert measured == [("W2", "numpy", None, 3, 1, benchmark.PEAK_GFLOPS)]
    out = capsys.readouterr().out
    assert out.startswith("machine: ") and "\nW2: " in out


def test_bench_all_measures_every_workload_in_order(capsys, measured):
    assert main(["bench", "--peak-gflops", "50", "--backend", "numpy"]) == 0
    assert [(name, peak) for name, *_, peak in measured] == [
        (name, 50.0) for name in benchmark.WORKLOADS
    ]


@pytest.mark.parametrize("group", ["decoders", "toolkit"])
def test_bench_group_measures_its_workloads_in_order(capsys, measured, group):
    assert main(["bench", "--workload", group, "--backend", "numpy"]) == 0
    assert [name for name, *_ in measured] == list(benchmark.GROUPS[group])
    out = capsys.readouterr().out
    assert all(f"\n{name}: " in out for name in benchmark.GROUPS[group])


def test_the_decoder_group_holds_issue_13s_layers():
    names = benchmark.GROUPS["decoders"]
    assert len(names) == 8 and "W4" in names
    d1, d5 = benchmark.WORKLOADS["D1"], benchmark.WORKLOADS["D5"]
    assert (d1.channels, d1.filters, d1.size, d1.stride, d1.same) == (64, 32, 4, 2, True)
    assert d5.data_format == "channels_last" and d5.channels == 64 and d5.spatial == d1.spatial


def test_bench_prints_the_cpu_model_and_vector_isa(capsys, measured):
    assert main(["bench", "--workload", "W1", "--backend", "numpy"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"machine: {benchmark.cpu_model()} ({benchmark.vector_isa()}), ")
    assert "BLAS " in first


@pytest.mark.parametrize(
    ("flags", "isa"),
    [
        ("fpu sse4_2 avx avx2 fma avx512f avx512bw", "AVX-512 (FMA)"),
        ("sse4_2 avx avx2 fma", "AVX2 (FMA)"),
        ("sse4_2 avx", "AVX"),
        ("sse4_2", "SSE4.2"),
        ("", "unknown"),
    ],
)
def test_vector_isa_names_the_widest_instructions(flags, isa):
    assert benchmark.vector_isa(flags) == isa


def test_each_round_alternates_which_side_runs_first(monkeypatch):
    """Each side runs untimed (at least once, at least SWITCH_MS), then once timed; which side
    goes first alternates."""
    monkeypatch.setattr(benchmark, "SWITCH_MS", 0.0)
    order: list[str] = []
    res = benchmark._alternate(
        lambda: order.append("ours"), lambda: order.append("torch"), 4, 1, lambda: None
    )
    assert order[:2] == ["ours", "torch"]  # warm-up
    rounds = [tuple(order[i : i + 4]) for i in range(2, len(order), 4)]
    burst = {"ours": ("ours", "ours"), "torch": ("torch", "torch")}
    assert rounds == [burst["ours"] + burst["torch"], burst["torch"] + burst["ours"]] * 2
    assert len(res["ours_ms"]) == len(res["torch_ms"]) == 4


def test_untimed_calls_last_at_least_the_switch_time(monkeypatch):
    monkeypatch.setattr(benchmark, "SWITCH_MS", 5.0)
    monkeypatch.setattr(benchmark, "_time", lambda fn, sync: (fn(), 2.0)[1])  # 2 ms per call
    calls: list[str] = []
    res = benchmark._alternate(lambda: calls.append("ours"), None, 1, 0, lambda: None)
    assert len(calls) == 4  # three untimed calls reach 5 ms, then the timed one
    assert res["ours_ms"] == [2.0]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--workload", "W9"], "invalid choice: 'W9'"),
        (["--frob"], "unrecognized option `--frob`: `conv3dt-studio bench` accepts --workload"),
        (["--rounds", "0"], "argument --rounds: expected an integer >= 1 and <= 10000, got '0'"),
        (["--rounds", "-1"], "argument --rounds: expected an integer >= 1 and <= 10000, got '-1'"),
        (["--warmup", "-1"], "argument --warmup: expected an integer >= 0 and <= 1000, got '-1'"),
        (
            ["--peak-gflops", "inf"],
            "argument --peak-gflops: expected a number of GFLOP/s from 0.001 to 1e9, got 'inf'",
        ),
    ],
)
def test_bench_usage_errors_are_one_line(capsys, argv, expected):
    assert main(["bench", *argv]) == 2
    line = one_error_line(capsys)
    assert expected in line and line.endswith("(see conv3dt-studio bench --help)")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        # --debug after bench is taken
        (["--json", "", "--debug"], "--json: give a file name"),
        (
            ["--peak-gflops", "0"],
            "argument --peak-gflops: expected a number of GFLOP/s from 0.001 to 1e9, got '0'",
        ),
        # a folder nobody may write in, whoever runs the tests (root included): /proc
        (["--json", "/proc/b.json"], "cannot write in folder `/proc`"),
    ],
)
def test_bench_option_checks_come_before_any_timing(capsys, measured, argv, expected):
    assert main(["bench", *argv]) == 2
    assert expected in one_error_line(capsys)
    assert measured == []


def _json_target(tmp_path, kind: str):
    """A --json name that cannot be written, of the given kind."""
    if kind == "under-a-file":
        (tmp_path / "file").write_text("")
        return tmp_path / "file" / "b.json"
    if kind == "dangling-link":
        (tmp_path / "dangling.json").symlink_to(tmp_path / "nowhere")
        return tmp_path / "dangling.json"
    return {"missing-folder": tmp_path / "nodir" / "b.json", "a-folder": tmp_path}[kind]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("under-a-file", "is a file, not a folder"),
        ("missing-folder", "does not exist"),
        ("a-folder", "is a folder, not a file"),
        ("dangling-link", "already exists"),
    ],
)
def test_bench_json_output_is_checked_before_any_timing(capsys, measured, tmp_path, kind, expected):
    assert main(["bench", "--json", str(_json_target(tmp_path, kind))]) == 2
    assert expected in one_error_line(capsys)
    assert measured == []


# ---------------------------------------------------------------------- real runs (W4, one round)


@pytest.mark.parametrize("vs", ["none", "torch"])
def test_bench_runs_and_writes_json(tmp_path, capsys, monkeypatch, vs):
    for forcing in ("CONV3DT_CPU_PATH", "CONV3DT_FORWARD", "CONV3DT_KERNEL_GRADIENT"):
        monkeypatch.delenv(forcing, raising=False)  # the paths W4 takes by itself
    if vs == "torch":
        import torch  # noqa: F401 - a test dependency: its absence must fail, not skip
    out = tmp_path / "bench.json"
    assert main(["bench", *W4_ONCE, "--vs", vs, "--json", str(out)]) == 0
    written = json.loads(out.read_text())
    (result,) = written["results"]
    assert result["workload"] == "W4"
    assert ("ratio" in result["forward"]) == (vs == "torch")
    assert result["memory"]["extra_bytes"] >= 0 and result["memory"]["train_extra_bytes"] >= 0
    assert result["memory"]["path"] == "loops (forward by rows, kernel gradient by channels)"
    assert written["machine"]["backend"] == "numpy"
    text = capsys.readouterr().out
    assert "W4: " in text and text.rstrip().endswith(f"wrote {out}")


def test_bench_json_never_replaces_a_file_silently(tmp_path, capsys):
    out = tmp_path / "bench.json"
    out.write_text("earlier results")
    argv = ["bench", *W4_ONCE, "--json", str(out)]
    assert main(argv) == 2
    assert one_error_line(capsys) == (
        f"`{out}` already exists: choose another --json or add --force"
    )
    assert out.read_text() == "earlier results"
    assert main([*argv, "--force"]) == 0
    assert json.loads(out.read_text())["results"][0]["workload"] == "W4"


def test_bench_without_torch_times_ours_only(monkeypatch, capsys):
    monkeypatch.setattr(benchmark, "import_torch", lambda: None)
    assert main(["bench", *W4_ONCE, "--vs", "torch"]) == 0
    text = capsys.readouterr().out
    assert "PyTorch is not installed" in text and "ratio" not in text


# ---------------------------------------------------------------------- the table


def test_report_prints_every_measured_row_with_ratio_limit_and_memory():
    res = {
        "workload": "W1",
        "description": "toolkit example",
        "x_shape": [10, 6, 5, 64, 64, 3],
        "gflop": 0.6,
        "forward": {
            "ours_median_ms": 17.1,
            "torch_median_ms": 80.6,
            "ratio": 0.23,
            "fraction_of_limit": 0.117,
        },
        "train_step": {"ours_median_ms": 36.3},
        "memory": {"extra_bytes": 2**20, "output_bytes": 15 * 2**20, "sample_output_bytes": 2**19},
    }
    assert report(res).splitlines() == [
        "W1: toolkit example  x(10, 6, 5, 64, 64, 3) (0.60 GFLOP)",
        "  forward                     ours    17.10 ms   torch    80.60 ms   ratio ours/torch 0.23"
        "   11.7% of arithmetic limit",
        "  train step                  ours    36.30 ms",
        "  memory                      conv forward extra 1.0 MiB (output 15.0 MiB, one sample's "
        "output 0.5 MiB)",
    ]


def test_report_memory_line_gives_the_kernel_gradient_and_path():
    res = {
        "workload": "D1",
        "description": "decoder",
        "x_shape": [2, 1, 64, 16, 16, 16],
        "gflop": 2.1,
        "memory": {
            "extra_bytes": 2**21,
            "train_extra_bytes": 3 * 2**20,
            "output_bytes": 16 * 2**20,
            "sample_output_bytes": 8 * 2**20,
            "path": "gemm",
        },
    }
    assert report(res).splitlines()[1] == (
        "  memory                      conv forward extra 2.0 MiB, kernel gradient extra 3.0 MiB "
        "(output 16.0 MiB, one sample's output 8.0 MiB); CPU path gemm"
    )
