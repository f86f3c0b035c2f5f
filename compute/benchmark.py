"""The compute core timed side by side with PyTorch, in one process: workloads and measurements.

Each workload is a ``Graph([Input, TimeDistributed(Conv3DTranspose)])``. Per round, ours and
PyTorch (when installed) run alternately, after warm-up, so both see the same machine state;
:func:`run_workload` returns plain data (a JSON-ready dict): the per-round times, their medians, the
median of the per-round ratios ours / PyTorch, the fraction of the arithmetic limit reached and the
peak extra memory of our transposed convolution; :func:`machine` describes where it ran.

PyTorch runs in its fastest formulation: ``conv_transpose3d`` without its fused bias (the bias is
added outside, which is faster on these shapes), the Keras crop as a slice, 2 threads on CPU.

No options, printing or files here: ``conv3dt-studio bench`` (``conv3dt_studio.app.cli.bench``)
parses and checks the options, prints the tables and writes the JSON.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from . import conv3d_transpose_ops as ops
from .backend import Backend, get_backend
from .conv3d_transpose import Conv3DTranspose
from .graph import Graph
from .layers import Input, TimeDistributed

# Peak float32 throughput of the 2-core development machine (AMD EPYC, Zen 4: one 16-float fused
# multiply-add per cycle and core), GFLOP/s: a loop of independent register FMAs measures 112-116
# per core there. `bench --peak-gflops` overrides it.
PEAK_GFLOPS = 230.0
TORCH_CPU_THREADS = 2
Timed = Callable[[], Any]  # one call to time


@dataclass(frozen=True)
class Workload:
    """One reference layer and its input: ``x_shape`` is (batch, time, ...) in ``data_format``;
    ``filters`` output channels, a cubic kernel of ``size``, ``stride`` on every axis, "same"
    padding when ``same``."""

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
        d, h, w = self.x_shape[3:6] if self.channels_first else self.x_shape[2:5]
        return d, h, w

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
# The decoder layers of issue 13: (name, channels, filters, kernel, stride, same, edge of the
# cubic input, samples N = batch x time, data format).
_DECODERS = (
    ("D1", 64, 32, 4, 2, True, 16, 2, "channels_first"),
    ("D2", 32, 16, 3, 2, True, 16, 4, "channels_first"),
    ("D3", 128, 64, 4, 2, True, 8, 4, "channels_first"),
    ("D4", 16, 16, 3, 1, False, 16, 8, "channels_first"),
    ("D5", 64, 32, 4, 2, True, 16, 2, "channels_last"),
    ("D6", 16, 8, 2, 1, False, 16, 8, "channels_first"),
    ("D7", 16, 8, 3, 1, False, 8, 32, "channels_first"),
)


def _decoder(
    name: str, c: int, f: int, k: int, s: int, same: bool, edge: int, n: int, data_format: str
) -> Workload:
    """One row of :data:`_DECODERS` as a :class:`Workload` (N samples as batch N, time 1)."""
    spatial = (edge, edge, edge)
    x_shape = (n, 1, c, *spatial) if data_format == "channels_first" else (n, 1, *spatial, c)
    what = f"{c}->{f} ch, {k}^3, stride {s}, {'same' if same else 'valid'}, {edge}^3, N={n}"
    if data_format == "channels_last":
        what += ", channels_last"
    return Workload(name, what, x_shape, f, s, same, data_format, k)


WORKLOADS.update((row[0], _decoder(*row)) for row in _DECODERS)
# Named groups for `bench --workload`: the toolkit's examples, the decoder layers of issue 13
# (W4 among them), everything.
GROUPS = {
    "toolkit": ("W1", "W2", "W3", "W4"),
    "decoders": ("D1", "D2", "D3", "D4", "W4", "D5", "D6", "D7"),
    "all": tuple(WORKLOADS),
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
    wrapper = g.layers[-1]
    assert isinstance(wrapper, TimeDistributed) and isinstance(wrapper.layer, Conv3DTranspose)
    return wrapper.layer


def traced_peak(fn: Timed) -> int:
    """Peak bytes allocated while ``fn`` runs, traced by tracemalloc (which also sees the
    compiled kernels' scratch: Numba allocates through Python's allocator)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def peak_extra_bytes(w: Workload, x: np.ndarray, g: Graph) -> dict[str, int]:
    """Peak memory our transposed convolution allocates beyond its input and output, W's whole
    batch at once: the forward (bias and relu included, in the layer's layout), and the
    training step's kernel gradient (beside its output gradient and the kernel-sized result;
    the first layer computes no input gradient)."""
    layer = _conv_layer(g)
    xf = x.reshape((-1, *x.shape[2:]))
    xcf = xf if w.channels_first else np.moveaxis(xf, -1, 1)
    geom = w.geometry()
    kernel = layer.backend.to_numpy(layer.kernel)
    bias = layer.backend.to_numpy(layer.bias)
    out = 4 * xf.shape[0] * w.filters * math.prod(geom.out_shape)
    cl = not w.channels_first
    forward = traced_peak(lambda: ops.forward(np, xcf, kernel, geom, bias, True, cl))
    dy = ops.forward(np, xcf, kernel, geom, bias, True, cl)
    train = traced_peak(lambda: ops.backward_kernel(np, xcf, dy, geom, kernel.shape))
    return {
        "output_bytes": out,
        "sample_output_bytes": out // xf.shape[0],
        "extra_bytes": max(0, forward - out),
        "train_extra_bytes": max(0, train - kernel.nbytes),
        "path": _cpu_path(geom, w.channels, w.filters),
    }


def _cpu_path(geom: ops.Geometry, c: int, f: int) -> str:
    """The CPU path a layer takes: ``gemm``, or the compiled loops with the way their forward
    and kernel gradient run (e.g. ``loops (forward by rows, kernel gradient by channels)``)."""
    if ops.use_gemm(geom, c, f):
        return "gemm"
    forward, gradient = ops.forward_path(geom, c, f), ops.kernel_gradient_path(geom, c, f)
    return f"loops (forward by {forward}, kernel gradient by {gradient})"


# ----------------------------------------------------------------------------- PyTorch


def import_torch() -> ModuleType | None:
    """The ``torch`` module, or None when PyTorch is not installed (or fails to load)."""
    try:
        import torch  # noqa: PLC0415 - optional, benchmark only
    except Exception:
        return None
    return torch


class TorchModel:
    """The same layer in PyTorch, same weights, for CPU or CUDA."""

    def __init__(
        self, torch: ModuleType, w: Workload, weights: list[np.ndarray], device: str
    ) -> None:
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

    def tensor(self, a: np.ndarray) -> Any:
        return self.t.from_numpy(np.ascontiguousarray(a)).to(self.device)

    def forward(self, x: Any) -> Any:
        """``x``: (batch, time, ...) tensor in the workload's data format."""
        t, w = self.t, self.w
        b, tt = x.shape[:2]
        xf = x.reshape((b * tt, *x.shape[2:]))
        if not w.channels_first:
            xf = xf.permute(0, 4, 1, 2, 3)  # a channels_last_3d view, no copy
        z = t.nn.functional.conv_transpose3d(xf, self.kernel, stride=w.stride)
        z = z[(slice(None), slice(None)) + self.crop]
        z = t.relu(z + self.bias.view(-1, 1, 1, 1))
        if not w.channels_first:
            z = z.permute(0, 2, 3, 4, 1)
        return z.reshape((b, tt, *z.shape[1:]))

    def predict(self, x: Any) -> Any:
        with self.t.inference_mode():
            return self.forward(x)

    def train_step(self, x: Any, y_true: Any) -> Any:
        self.opt.zero_grad(set_to_none=True)
        loss = self.t.nn.functional.mse_loss(self.forward(x), y_true)
        loss.backward()
        self.opt.step()
        return loss


# ----------------------------------------------------------------------------- timing


def _sync(backend: Backend, torch: ModuleType | None, device: str) -> None:
    backend.synchronize()
    if torch is not None and device == "cuda":
        torch.cuda.synchronize()


# Untimed calls of a side before its timed one, at least this long (libgomp's workers spin for
# up to ~20 ms after PyTorch's calls: measured 5-20 ms on the development machine).
SWITCH_MS = 25.0


def _time(fn: Timed, sync: Callable[[], None]) -> float:
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return (time.perf_counter() - t0) * 1e3


def _alternate(
    ours: Timed, theirs: Timed | None, rounds: int, warmup: int, sync: Callable[[], None]
) -> dict[str, Any]:
    """Warm-up, then ``rounds`` rounds timing both sides. In each round each side first runs
    untimed for at least :data:`SWITCH_MS`, then once timed: the untimed calls pay for the
    switch (PyTorch's OpenMP workers keep spinning for several milliseconds after its calls and
    take a core from whatever runs next; a side whose threads went idle wakes them), so each
    side is timed in the state it has when called again and again, as in a loop over batches.
    Which side goes first alternates from round to round."""
    for _ in range(warmup):
        ours()
        if theirs is not None:
            theirs()
    a: list[float] = []
    b: list[float] = []
    for i in range(rounds):
        sides = [(ours, a)] if theirs is None else [(ours, a), (theirs, b)]
        for fn, times in sides[::-1] if i % 2 else sides:
            spent = _time(fn, sync)
            while spent < SWITCH_MS:
                spent += _time(fn, sync)
            times.append(_time(fn, sync))
    res: dict[str, Any] = {"ours_ms": a, "ours_median_ms": statistics.median(a)}
    if b:
        res["torch_ms"] = b
        res["torch_median_ms"] = statistics.median(b)
        res["ratio"] = statistics.median(x / y for x, y in zip(a, b))
    return res


def run_workload(
    w: Workload,
    backend_name: str | Backend,
    torch: ModuleType | None,
    rounds: int,
    warmup: int,
    peak_gflops: float | None,
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
    sync = lambda: _sync(backend, torch, device)  # noqa: E731
    res: dict[str, Any] = {
        "workload": w.name,
        "description": w.description,
        "x_shape": list(w.x_shape),
        "y_shape": list(y_shape),
        "gflop": w.flops() / 1e9,
    }
    rows = _rows(g, tm, backend, x, y_true)
    for name, (ours, theirs) in rows.items():
        res[name] = _alternate(ours, theirs, rounds, warmup, sync)
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


def _rows(
    g: Graph, tm: TorchModel | None, backend: Backend, x: np.ndarray, y_true: np.ndarray
) -> dict[str, tuple[Timed, Timed | None]]:
    """Row name -> (ours, PyTorch's or None), each a call to time. On a GPU, ``forward`` and
    ``train_step`` take and return host arrays on both sides; the ``*_on_device`` rows keep the
    data on the device."""
    ours: dict[str, Timed] = {
        "forward": lambda: g.predict(x),
        "train_step": lambda: g.train_step(x, y_true),
    }
    on_gpu = backend.name == "cupy"
    if on_gpu:
        xd, yd = backend.asarray(x), backend.asarray(y_true)
        ours["forward_on_device"] = lambda: g.layers[-1].forward(xd, False)
        ours["train_step_on_device"] = lambda: g.train_step(xd, yd)
    theirs = {} if tm is None else _torch_rows(tm, x, y_true, on_gpu)
    return {name: (fn, theirs.get(name)) for name, fn in ours.items()}


def _torch_rows(
    tm: TorchModel, x: np.ndarray, y_true: np.ndarray, on_gpu: bool
) -> dict[str, Timed]:
    """PyTorch's calls for the rows of :func:`_rows`."""
    xt, yt = tm.tensor(x), tm.tensor(y_true)  # zero-copy views on CPU
    if not on_gpu:
        return {"forward": lambda: tm.predict(xt), "train_step": lambda: tm.train_step(xt, yt)}
    return {
        "forward": lambda: tm.predict(tm.tensor(x)).cpu(),
        "train_step": lambda: tm.train_step(tm.tensor(x), tm.tensor(y_true)),
        "forward_on_device": lambda: tm.predict(xt),
        "train_step_on_device": lambda: tm.train_step(xt, yt),
    }


# ----------------------------------------------------------------------------- machine


def default_peak_gflops(backend_name: str) -> float | None:
    """The arithmetic limit reported against when none is given: the reference machine's on the
    CPU (``numpy``); none on a GPU, whose peak varies too much to guess."""
    return PEAK_GFLOPS if backend_name == "numpy" else None


def machine(backend_name: str, torch: ModuleType | None) -> dict[str, Any]:
    """Where the timings ran: Python, platform, CPU cores, NumPy, backend and device, the CPU
    kernels, PyTorch's version (None without ``torch``)."""
    from . import cpu_kernels  # imports Numba: only when benchmarking

    b = get_backend(backend_name)
    info = {
        "cpu_model": cpu_model(),
        "vector_isa": vector_isa(),
        "blas": _blas(),
        "openblas_env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")},
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


def _cpuinfo() -> dict[str, str]:
    """The first processor's entries of /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            text = fh.read().split("\n\n")[0]
    except OSError:
        return {}
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def cpu_model() -> str:
    """The CPU's model name, as lscpu prints it (the platform's processor string elsewhere)."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def vector_isa(flags: str | None = None) -> str:
    """The widest float vector instructions the CPU has (from /proc/cpuinfo's flags, or
    ``flags``): "AVX-512 (FMA)", "AVX2 (FMA)", "AVX", "SSE4.2", or "unknown"."""
    have = set((flags if flags is not None else _cpuinfo().get("flags", "")).split())
    fma = " (FMA)" if "fma" in have else ""
    for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX")):
        if flag in have:
            return name + fma
    return "SSE4.2" if "sse4_2" in have else "unknown"


def _blas() -> str:
    """NumPy's BLAS as its build configuration names it (e.g. scipy-openblas 0.3.31)."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:  # pragma: no cover - an unusual NumPy build
        return "unknown"
    return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
