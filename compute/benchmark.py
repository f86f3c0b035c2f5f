"""``conv3dt-studio bench``: our compute core side by side with PyTorch, in one process.

Each workload is a ``Graph([Input, TimeDistributed(Conv3DTranspose)])``. Per round, ours and
PyTorch (when installed) run alternately, after warm-up, so both see the same machine state; the
report gives medians, the median of the per-round ratios ours / PyTorch, the peak extra memory of
our transposed convolution and the fraction of the arithmetic limit reached.

PyTorch runs in its fastest formulation: ``conv_transpose3d`` without its fused bias (the bias is
added outside, which is faster on these shapes), the Keras crop as a slice, 2 threads on CPU.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import conv3d_transpose_ops as ops
from .backend import Backend, get_backend
from .conv3d_transpose import Conv3DTranspose
from .errors import BackendError
from .graph import Graph
from .layers import Input, TimeDistributed

# Peak float32 throughput of the reference machine (2 AMD EPYC cores, AVX2 FMA), GFLOP/s; the
# issue's "about 2 ms for W1's 0.6 GFLOP". Override with --peak-gflops.
PEAK_GFLOPS = 300.0
TORCH_CPU_THREADS = 2


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    x_shape: tuple[int, ...]  # (batch, time, ...) in the layer's data format
    filters: int
    stride: int
    same: bool
    data_format: str = "channels_first"
    size: int = 3

    @property
    def channels_first(self) -> bool:
        return self.data_format == "channels_first"

    @property
    def spatial(self) -> tuple[int, int, int]:
        return self.x_shape[3:] if self.channels_first else self.x_shape[2:5]

    @property
    def channels(self) -> int:
        return self.x_shape[2] if self.channels_first else self.x_shape[5]

    def geometry(self) -> ops.Geometry:
        k = (self.size,) * 3
        return ops.Geometry.of(self.spatial, k, (self.stride,) * 3, (1, 1, 1), self.same)

    def flops(self) -> float:
        """Useful multiply-adds x 2 of the convolution (every input voxel times every tap)."""
        n = self.x_shape[0] * self.x_shape[1]
        return 2.0 * n * math.prod(self.spatial) * self.size**3 * self.channels * self.filters


WORKLOADS = {
    w.name: w
    for w in (
        Workload(
            "W1",
            "toolkit example: 5->3 ch, 64x64x3, 3^3, stride 1, valid",
            (10, 6, 5, 64, 64, 3),
            3,
            1,
            False,
        ),
        Workload(
            "W2",
            "W1 with stride 2, padding same (128x128x6 out)",
            (10, 6, 5, 64, 64, 3),
            3,
            2,
            True,
        ),
        Workload("W3", "W1 channels_last", (10, 6, 64, 64, 3, 5), 3, 1, False, "channels_last"),
        Workload(
            "W4",
            "scaling: 16->8 ch, 32^3, 3^3, stride 1, valid",
            (2, 2, 16, 32, 32, 32),
            8,
            1,
            False,
        ),
    )
}


# ----------------------------------------------------------------------------- ours


def build_graph(w: Workload, backend: str | Backend, seed: int = 0) -> Graph:
    conv = Conv3DTranspose(
        n_filters=w.filters,
        size=(w.size,) * 3,
        stride=(w.stride,) * 3,
        padding=w.same,
        activation="relu",
        use_bias=True,
        data_format=w.data_format,
        bias_initializer="random_uniform",
    )
    return Graph([Input(w.x_shape[1:]), TimeDistributed(conv)], backend=backend, seed=seed)


def _conv_layer(g: Graph) -> Conv3DTranspose:
    return g.layers[-1].layer


def peak_extra_bytes(w: Workload, x: np.ndarray, g: Graph) -> dict[str, int]:
    """Peak memory our transposed convolution allocates beyond its input and output, W's whole
    batch at once, traced by tracemalloc (which also sees the compiled kernels' scratch: Numba
    allocates through Python's allocator)."""
    layer = _conv_layer(g)
    xf = x.reshape((-1, *x.shape[2:]))
    xcf = xf if w.channels_first else np.moveaxis(xf, -1, 1)
    geom = w.geometry()
    tracemalloc.start()
    tracemalloc.reset_peak()
    y = ops.forward(np, xcf, layer.backend.to_numpy(layer.kernel), geom)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out = y.nbytes
    return {
        "output_bytes": out,
        "sample_output_bytes": out // xf.shape[0],
        "extra_bytes": max(0, peak - out),
    }


# ----------------------------------------------------------------------------- PyTorch


def _torch():
    try:
        import torch  # noqa: PLC0415 - optional, benchmark only
    except Exception:
        return None
    return torch


class TorchModel:
    """The same layer in PyTorch, same weights, for CPU or CUDA."""

    def __init__(self, torch, w: Workload, weights: list[np.ndarray], device: str) -> None:
        self.t, self.w, self.device = torch, w, device
        k, b = weights
        # Keras (kd, kh, kw, F, C) -> PyTorch conv_transpose weight (C, F, kd, kh, kw).
        kt = np.ascontiguousarray(k.transpose(4, 3, 0, 1, 2))
        self.kernel = torch.tensor(kt, device=device, requires_grad=True)
        self.bias = torch.tensor(b, device=device, requires_grad=True)
        self.opt = torch.optim.Adam([self.kernel, self.bias], lr=1e-3, eps=1e-7)
        geom = w.geometry()
        self.crop = tuple(slice(a.crop_start, a.crop_start + a.out_len) for a in geom.axes)
        for a in geom.axes:
            if a.crop_start + a.out_len > a.full_len:
                raise ValueError("workload needs zero padding beyond the full result")

    def tensor(self, a: np.ndarray):
        return self.t.from_numpy(np.ascontiguousarray(a)).to(self.device)

    def forward(self, x):
        """``x``: (batch, time, ...) tensor in the workload's data format."""
        t, w = self.t, self.w
        b, tt = x.shape[:2]
        xf = x.reshape((b * tt, *x.shape[2:]))
        if not w.channels_first:
            xf = xf.permute(0, 4, 1, 2, 3)  # a channels_last_3d view, no copy
        z = t.nn.functional.conv_transpose3d(xf, self.kernel, stride=w.stride)
        z = z[(slice(None), slice(None), *self.crop)]
        z = t.relu(z + self.bias.view(-1, 1, 1, 1))
        if not w.channels_first:
            z = z.permute(0, 2, 3, 4, 1)
        return z.reshape((b, tt, *z.shape[1:]))

    def predict(self, x):
        with self.t.inference_mode():
            return self.forward(x)

    def train_step(self, x, y_true) -> float:
        self.opt.zero_grad(set_to_none=True)
        loss = self.t.nn.functional.mse_loss(self.forward(x), y_true)
        loss.backward()
        self.opt.step()
        return loss


# ----------------------------------------------------------------------------- timing


def _sync(backend, torch, device: str) -> None:
    backend.synchronize()
    if torch is not None and device == "cuda":
        torch.cuda.synchronize()


def _time(fn: Callable[[], Any], sync: Callable[[], None]) -> float:
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return (time.perf_counter() - t0) * 1e3


def _alternate(ours, theirs, rounds: int, warmup: int, sync) -> dict[str, Any]:
    for _ in range(warmup):
        ours()
        if theirs is not None:
            theirs()
    a, b = [], []
    for _ in range(rounds):
        a.append(_time(ours, sync))
        if theirs is not None:
            b.append(_time(theirs, sync))
    res: dict[str, Any] = {"ours_ms": a, "ours_median_ms": statistics.median(a)}
    if b:
        res["torch_ms"] = b
        res["torch_median_ms"] = statistics.median(b)
        res["ratio"] = statistics.median(x / y for x, y in zip(a, b))
    return res


def run_workload(
    w: Workload, backend_name, torch, rounds: int, warmup: int, peak_gflops: float | None
) -> dict[str, Any]:
    """Time ``w`` on the backend (a name or a Backend) and, with ``torch``, PyTorch on the same
    device. Rows ``forward`` and ``train_step`` take and return host arrays on both sides; on a GPU
    the ``*_on_device`` rows keep data on the device (ours given CuPy arrays, PyTorch CUDA
    tensors), which is the kernels' own speed. ``peak_gflops`` (None: not reported) gives the
    fraction of the arithmetic limit."""
    backend = get_backend(backend_name)
    if backend.name == "numpy":
        ops.warm_up()  # load (or compile) the CPU kernels before any timed or warm-up round
    rng = np.random.default_rng(1)
    x = rng.standard_normal(w.x_shape, dtype=np.float32)
    g = build_graph(w, backend)
    y_shape = g.compute_output_shape(x.shape)
    y_true = rng.random(y_shape, dtype=np.float32)
    device = "cuda" if backend.name == "cupy" else "cpu"
    tm = None
    if torch is not None:
        if device == "cpu":
            torch.set_num_threads(TORCH_CPU_THREADS)
        else:
            torch.backends.cudnn.benchmark = True  # PyTorch's fastest algorithm for these shapes
        tm = TorchModel(torch, w, g.layers[-1].get_weights(), device)
        xt, yt = tm.tensor(x), tm.tensor(y_true)  # zero-copy views on CPU
    sync = lambda: _sync(backend, torch, device)  # noqa: E731
    res: dict[str, Any] = {
        "workload": w.name,
        "description": w.description,
        "x_shape": list(w.x_shape),
        "y_shape": list(y_shape),
        "gflop": w.flops() / 1e9,
    }
    rows: dict[str, tuple[Callable, Callable | None]] = {}
    if device == "cpu":
        rows["forward"] = (lambda: g.predict(x), tm and (lambda: tm.predict(xt)))
        rows["train_step"] = (
            lambda: g.train_step(x, y_true),
            tm and (lambda: tm.train_step(xt, yt)),
        )
    else:  # host arrays in and out on both sides, then data kept on the device
        xd, yd = backend.asarray(x), backend.asarray(y_true)
        rows["forward"] = (
            lambda: g.predict(x),
            tm and (lambda: tm.predict(tm.tensor(x)).cpu()),
        )
        rows["train_step"] = (
            lambda: g.train_step(x, y_true),
            tm and (lambda: tm.train_step(tm.tensor(x), tm.tensor(y_true))),
        )
        rows["forward_on_device"] = (
            lambda: g.layers[-1].forward(xd, False),
            tm and (lambda: tm.predict(xt)),
        )
        rows["train_step_on_device"] = (
            lambda: g.train_step(xd, yd),
            tm and (lambda: tm.train_step(xt, yt)),
        )
    for name, (ours, theirs) in rows.items():
        res[name] = _alternate(ours, theirs or None, rounds, warmup, sync)
    limit_ms = w.flops() / (peak_gflops * 1e9) * 1e3 if peak_gflops else None
    res["arithmetic_limit_ms"] = limit_ms
    for name in rows:
        # a training step convolves twice: forward and kernel gradient (the first layer computes
        # no input gradient, as in PyTorch)
        passes = 2 if name.startswith("train_step") else 1
        if limit_ms:
            res[name]["fraction_of_limit"] = passes * limit_ms / res[name]["ours_median_ms"]
    if backend.name == "numpy":
        res["memory"] = peak_extra_bytes(w, x, g)
    return res


# ----------------------------------------------------------------------------- report


def _mb(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


ROW_LABELS = {
    "forward": "forward",
    "train_step": "train step",
    "forward_on_device": "forward, data on the GPU",
    "train_step_on_device": "train step, data on the GPU",
}


def _row(name: str, r: dict[str, Any]) -> str:
    s = f"  {ROW_LABELS[name]:<27} ours {r['ours_median_ms']:8.2f} ms"
    if "torch_median_ms" in r:
        s += f"   torch {r['torch_median_ms']:8.2f} ms   ratio ours/torch {r['ratio']:.2f}"
    if "fraction_of_limit" in r:
        s += f"   {100 * r['fraction_of_limit']:.1f}% of arithmetic limit"
    return s


def report(res: dict[str, Any]) -> str:
    lines = [
        f"{res['workload']}: {res['description']}  x{tuple(res['x_shape'])} "
        f"({res['gflop']:.2f} GFLOP)"
    ]
    lines += [_row(name, res[name]) for name in ROW_LABELS if name in res]
    m = res.get("memory")
    if m:
        lines.append(
            f"  {'memory':<27} conv forward extra {_mb(m['extra_bytes'])} "
            f"(output {_mb(m['output_bytes'])}, one sample's output {_mb(m['sample_output_bytes'])})"
        )
    return "\n".join(lines)


def machine(backend_name: str, torch) -> dict[str, Any]:
    from . import cpu_kernels  # imports Numba: only when benchmarking

    b = get_backend(backend_name)
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": _cpu_count(),
        "numpy": np.__version__,
        "backend": b.name,
        "device": b.device_name,
        "cpu_kernels": "numba " + cpu_kernels.numba.__version__
        if cpu_kernels.AVAILABLE
        else "numpy (Numba absent)",
        "cpu_threads": cpu_kernels.threads(),
        "torch": getattr(torch, "__version__", None),
    }
    return info


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def parser(parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser):
    """The ``bench`` options; the CLI passes its own parser class (one-line usage errors)."""
    p = parser_class(
        prog="conv3dt-studio bench",
        description="Time the compute core on reference workloads, side by side with PyTorch.",
    )
    p.add_argument("--workload", default="all", choices=[*WORKLOADS, "all"])
    p.add_argument(
        "--vs",
        choices=["torch", "none"],
        default="none",
        help="also time PyTorch, alternately, in this process",
    )
    p.add_argument("--backend", default="auto", choices=["auto", "numpy", "cupy"])
    p.add_argument("--rounds", type=int, default=7, help="timed rounds per measurement")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    p.add_argument(
        "--peak-gflops",
        type=float,
        default=None,
        help="the machine's arithmetic limit, for the fraction reported (default on the CPU: "
        f"{PEAK_GFLOPS:g}, the 2-core reference machine; on a GPU, none unless given)",
    )
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    p.add_argument("--force", action="store_true", help="let --json replace an existing file")
    return p


def _json_problem(name: str, force: bool) -> str | None:
    """Why ``--json name`` cannot be written, checked before any timing; None when it can."""
    if not name.strip():
        return "--json: give a file name. Received: an empty name"
    path = Path(name)
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        return f"--json: `{folder}` is a file, not a folder"
    if not folder.is_dir():
        return f"--json: folder `{folder}` does not exist"
    if path.is_dir():
        return f"--json: `{name}` is a folder; give a file name"
    if (path.exists() or path.is_symlink()) and not force:
        return f"--json: `{name}` already exists: choose another file or add --force"
    try:  # a trial file: permissions alone do not tell (root, read-only or virtual file systems)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return f"--json: cannot write in folder `{folder}` ({exc.strerror or exc})"
    return None


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def main(
    argv: list[str] | None = None,
    parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser,
    write_text: Callable[[str, str], None] = _write_text,
) -> int:
    """Entry point; the CLI passes its parser class (one-line usage errors) and an atomic
    ``write_text`` for ``--json``."""
    args = parser(parser_class).parse_args(argv)
    problem = None
    if args.rounds < 1 or args.warmup < 0:
        problem = "--rounds must be >= 1 and --warmup >= 0"
    elif args.peak_gflops is not None and not 0 < args.peak_gflops < float("inf"):
        problem = f"--peak-gflops must be a positive number. Received: {args.peak_gflops}"
    elif args.json is not None:
        problem = _json_problem(args.json, args.force)
    else:
        try:
            get_backend(args.backend)
        except BackendError as exc:
            problem = str(exc)
    if problem:
        print(f"conv3dt-studio: error: {problem}", file=sys.stderr)
        return 2
    torch = _torch() if args.vs == "torch" else None
    if args.vs == "torch" and torch is None:
        print("PyTorch is not installed: timing ours only.")
    info = machine(args.backend, torch)
    peak = args.peak_gflops
    if peak is None and info["backend"] == "numpy":
        peak = PEAK_GFLOPS
    print(
        f"machine: {info['cpu_count']} CPU cores, backend {info['backend']} ({info['device']}), "
        f"kernels {info['cpu_kernels']}, torch {info['torch'] or '-'}"
    )
    names = list(WORKLOADS) if args.workload == "all" else [args.workload]
    results = []
    for name in names:
        r = run_workload(WORKLOADS[name], args.backend, torch, args.rounds, args.warmup, peak)
        print(report(r), flush=True)
        results.append(r)
    if args.json:
        write_text(args.json, json.dumps({"machine": info, "results": results}, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
