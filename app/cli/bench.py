"""The ``bench`` command: its options, their checks, the results table and the JSON file.

The measuring is :mod:`conv3dt_studio.compute.benchmark`'s (loaded when the command runs, so a
build without it says so in one line); this module decides what to measure, checks every option
before any timing (a bad ``--json`` must not cost minutes of benchmarking first), prints one table
per workload and writes every timing as JSON (atomically; an existing file only with ``--force``).
``bench`` parses its own options: everything after ``bench`` on the command line comes here.
"""

from __future__ import annotations

import argparse
import json
import math
from types import ModuleType
from typing import Any

from .errors import EXIT_ERROR, EXIT_OK, PROG, UsageError, print_error
from .lazy_import import optional_module
from .output_files import output_problem, suffixed
from .parser import BACKENDS, CommandLineParser, int_between, parse

# a count beyond these is a typo, not a measurement (one D7 round takes a second or more)
MAX_ROUNDS, MAX_WARMUP = 10_000, 1_000
# GFLOP/s a --peak-gflops may give: beyond them the fraction printed is nonsense (1e-300 gave a
# 300-digit percentage); 1e9 GFLOP/s is an exaflop machine
PEAK_GFLOPS_MIN, PEAK_GFLOPS_MAX = 1e-3, 1e9
PEAK_GFLOPS_WORDS = "a number of GFLOP/s from 0.001 to 1e9"


def peak_gflops(text: str) -> float:
    """An argparse type: a machine's arithmetic limit in GFLOP/s, echoing the text typed."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not PEAK_GFLOPS_MIN <= value <= PEAK_GFLOPS_MAX:  # NaN and infinities included
        raise argparse.ArgumentTypeError(f"expected {PEAK_GFLOPS_WORDS}, got {text!r}")
    return value


ROW_LABELS = {
    "forward": "forward",
    "train_step": "train step",
    "forward_on_device": "forward, data on the GPU",
    "train_step_on_device": "train step, data on the GPU",
}


def cmd_bench(argv: list[str]) -> int:
    """``bench ARGS...``: time the workloads, print their tables, write ``--json``."""
    benchmark = optional_module("conv3dt_studio.compute.benchmark", "the `bench` command")
    args = parse(bench_parser(benchmark), argv)
    if isinstance(args, int):  # --help
        return args
    problem = option_problem(args)
    if problem:  # one line, without a traceback even with --debug: nothing has run yet
        print_error(problem)
        return EXIT_ERROR
    results = _run(args, benchmark)
    if args.json:
        _write_json(args.json, results)
    return EXIT_OK


def bench_parser(benchmark: ModuleType) -> argparse.ArgumentParser:
    """The ``bench`` options (workload names and the default peak from ``benchmark``)."""
    p = CommandLineParser(
        prog=f"{PROG} bench",
        description="Time the compute core on reference workloads, side by side with PyTorch.",
    )
    p.add_argument(
        "--workload",
        default="all",
        choices=[*benchmark.WORKLOADS, *benchmark.GROUPS],
        help="one workload, or a group: "
        + "; ".join(
            f"{g} = {' '.join(names)}" for g, names in benchmark.GROUPS.items() if g != "all"
        )
        + "; all (the default)",
    )
    p.add_argument(
        "--vs",
        choices=["torch", "none"],
        default="none",
        help="also time PyTorch, alternately, in this process",
    )
    p.add_argument("--backend", default="auto", choices=BACKENDS)
    p.add_argument(
        "--rounds",
        type=int_between(1, MAX_ROUNDS),
        default=7,
        help=f"timed rounds per measurement (1 to {MAX_ROUNDS})",
    )
    p.add_argument(
        "--warmup",
        type=int_between(0, MAX_WARMUP),
        default=2,
        help=f"untimed rounds first (0 to {MAX_WARMUP})",
    )
    p.add_argument(
        "--peak-gflops",
        type=peak_gflops,
        default=None,
        help="the machine's arithmetic limit, for the fraction reported, from 0.001 to 1e9 "
        f"(default on the CPU: {benchmark.PEAK_GFLOPS:g}, the 2-core reference machine; on a GPU, "
        "none unless given)",
    )
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    p.add_argument("--force", action="store_true", help="let --json replace an existing file")
    return p


def option_problem(args: argparse.Namespace) -> str | None:
    """Why the options cannot be run, as one line (checked before any timing); None when fine."""
    if args.json is not None:
        try:
            args.json = suffixed(args.json, ".json", "--json")  # as every output file
        except UsageError as exc:
            return str(exc)
        problem = output_problem(args.json, args.force, "--json")
        if problem:
            return problem
    return _backend_problem(args.backend)


def _backend_problem(name: str) -> str | None:
    from conv3dt_studio.compute.backend import get_backend
    from conv3dt_studio.compute.errors import BackendError

    try:
        get_backend(name)
    except BackendError as exc:
        return str(exc)
    return None


def _run(args: argparse.Namespace, benchmark: ModuleType) -> dict[str, Any]:
    """Time every chosen workload, printing each one's table as soon as it is done."""
    torch = benchmark.import_torch() if args.vs == "torch" else None
    if args.vs == "torch" and torch is None:
        print("PyTorch is not installed: timing ours only.")
    info = benchmark.machine(args.backend, torch)
    peak = args.peak_gflops
    if peak is None:
        peak = benchmark.default_peak_gflops(info["backend"])
    print(machine_line(info))
    names = list(benchmark.GROUPS.get(args.workload, (args.workload,)))
    results = []
    for name in names:
        workload = benchmark.WORKLOADS[name]
        r = benchmark.run_workload(workload, args.backend, torch, args.rounds, args.warmup, peak)
        print(report(r), flush=True)
        results.append(r)
    return {"machine": info, "results": results}


def machine_line(info: dict[str, Any]) -> str:
    """Where the timings run, in one line: CPU model, vector ISA, cores, BLAS (and any
    OPENBLAS_* setting, which changes its kernels), backend, kernels, PyTorch."""
    env = " ".join(f"{k}={v}" for k, v in sorted(info.get("openblas_env", {}).items()))
    return (
        f"machine: {info['cpu_model']} ({info['vector_isa']}), {info['cpu_count']} CPU cores, "
        f"BLAS {info['blas']}{' with ' + env if env else ''}, backend {info['backend']} "
        f"({info['device']}), kernels {info['cpu_kernels']}, torch {info['torch'] or '-'}"
    )


def _write_json(path: str, results: dict[str, Any]) -> None:
    from conv3dt_studio.nodes.files import atomic_write_text

    atomic_write_text(path, json.dumps(results, indent=2))
    print(f"wrote {path}")


# ---------------------------------------------------------------------- the table
def report(res: dict[str, Any]) -> str:
    """One workload's result (:func:`~conv3dt_studio.compute.benchmark.run_workload`) as text."""
    lines = [
        f"{res['workload']}: {res['description']}  x{tuple(res['x_shape'])} "
        f"({res['gflop']:.2f} GFLOP)"
    ]
    lines += [_row(name, res[name]) for name in ROW_LABELS if name in res]
    m = res.get("memory")
    if m:
        train = m.get("train_extra_bytes")
        lines.append(
            f"  {'memory':<27} conv forward extra {_mb(m['extra_bytes'])}"
            + (f", kernel gradient extra {_mb(train)}" if train is not None else "")
            + f" (output {_mb(m['output_bytes'])}, one sample's output "
            f"{_mb(m['sample_output_bytes'])})" + (f"; CPU path {m['path']}" if "path" in m else "")
        )
    return "\n".join(lines)


def _row(name: str, r: dict[str, Any]) -> str:
    s = f"  {ROW_LABELS[name]:<27} ours {r['ours_median_ms']:8.2f} ms"
    if "torch_median_ms" in r:
        s += f"   torch {r['torch_median_ms']:8.2f} ms   ratio ours/torch {r['ratio']:.2f}"
    if "fraction_of_limit" in r:
        s += f"   {100 * r['fraction_of_limit']:.1f}% of arithmetic limit"
    return s


def _mb(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"
