"""Independent references for the Conv3DTranspose tests.

Written from the Keras 3 rules (not from ``compute``): a naive float64 loop implementation of the
full transposed convolution, the Keras crop / zero-pad per axis, bias and the 15 activations, plus a
PyTorch oracle (``conv_transpose3d`` on the full result, then the same crop).

Conventions: kernel in Keras layout ``(kd, kh, kw, n_filters, in_channels)``; the layer's data is
6-D, ``(batch, time, channels, d1, d2, d3)`` for channels_first and ``(batch, time, d1, d2, d3,
channels)`` for channels_last.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

# ----------------------------------------------------------------------------- geometry (own code)


def keff(size: int, dilation: int) -> int:
    return dilation * (size - 1) + 1


def axis_out_and_crop(
    n_in: int, size: int, stride: int, dilation: int, same: bool, output_padding: int | None
) -> tuple[int, int]:
    """(output length, crop start) of one spatial axis, Keras 3 rules."""
    k = keff(size, dilation)
    if output_padding is None:
        if same:
            out = n_in * stride
            start = max(0, (k - stride) // 2)
        else:
            out = (n_in - 1) * stride + max(k, stride)
            start = 0
        return out, start
    op = output_padding
    if same:
        pad_len = k + k % 2 - 2 + op
        start = k - 1 - min(math.ceil(pad_len / 2), k - 1)
        out = (n_in - 1) * stride + k % 2 + op
    else:
        out = (n_in - 1) * stride + k + op
        start = 0
    return out, start


def _triple(v):
    if v is None:
        return (None, None, None)
    if isinstance(v, int):
        return (v, v, v)
    v = tuple(v)
    return v * 3 if len(v) == 1 else v


def ref_output_spatial(spatial, size, stride, dilation, same, output_padding=None):
    size, stride, dilation, op = map(_triple, (size, stride, dilation, output_padding))
    return tuple(
        axis_out_and_crop(n, k, s, d, same, p)[0]
        for n, k, s, d, p in zip(spatial, size, stride, dilation, op)
    )


# ----------------------------------------------------------------------------- convolution


def naive_full(x: np.ndarray, kernel: np.ndarray, stride, dilation) -> np.ndarray:
    """Full transposed convolution by scatter. ``x`` (N, C, D, H, W) -> (N, F, *full)."""
    stride, dilation = _triple(stride), _triple(dilation)
    x = np.asarray(x, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    n, c = x.shape[:2]
    ksz = kernel.shape[:3]
    f = kernel.shape[3]
    assert kernel.shape[4] == c
    full = [(x.shape[2 + a] - 1) * stride[a] + keff(ksz[a], dilation[a]) for a in range(3)]
    y = np.zeros((n, f, *full))
    for b in range(n):
        for i in itertools.product(*(range(s) for s in x.shape[2:])):
            xv = x[(b, slice(None)) + i]  # (C,)
            for j in itertools.product(*(range(k) for k in ksz)):
                pos = tuple(i[a] * stride[a] + j[a] * dilation[a] for a in range(3))
                w = kernel[j]  # (F, C)
                for fi in range(f):
                    acc = 0.0
                    for ci in range(c):
                        acc += w[fi, ci] * xv[ci]
                    y[(b, fi) + pos] += acc
    return y


def crop_to_layer(full: np.ndarray, spatial_in, size, stride, dilation, same, output_padding=None):
    """Keras window of a full result (N, F, *full): crop at the start, zero-pad at the end."""
    size, stride, dilation, op = map(_triple, (size, stride, dilation, output_padding))
    outs, starts = [], []
    for a in range(3):
        o, s = axis_out_and_crop(spatial_in[a], size[a], stride[a], dilation[a], same, op[a])
        outs.append(o)
        starts.append(s)
    y = np.zeros(full.shape[:2] + tuple(outs), dtype=full.dtype)
    src = []
    dst = []
    for a in range(3):
        stop = min(full.shape[2 + a], starts[a] + outs[a])
        length = max(0, stop - starts[a])
        src.append(slice(starts[a], starts[a] + length))
        dst.append(slice(0, length))
    y[(slice(None), slice(None), *dst)] = full[(slice(None), slice(None), *src)]
    return y


def uncrop(
    g: np.ndarray, full_spatial, spatial_in, size, stride, dilation, same, output_padding=None
) -> np.ndarray:
    """Adjoint of :func:`crop_to_layer`: place an output gradient (N, F, *out) on the full grid
    (the zero-padded part beyond the full result is dropped)."""
    size, stride, dilation, op = map(_triple, (size, stride, dilation, output_padding))
    gf = np.zeros(g.shape[:2] + tuple(full_spatial), dtype=np.float64)
    src, dst = [], []
    for a in range(3):
        o, s = axis_out_and_crop(spatial_in[a], size[a], stride[a], dilation[a], same, op[a])
        length = max(0, min(full_spatial[a], s + o) - s)
        dst.append(slice(s, s + length))
        src.append(slice(0, length))
    gf[(slice(None), slice(None), *dst)] = g[(slice(None), slice(None), *src)]
    return gf


def naive_backward(x: np.ndarray, kernel: np.ndarray, gfull: np.ndarray, stride, dilation):
    """Gradients of sum(full(x, kernel) * gfull): (dx (N, C, ...), dkernel (Keras layout))."""
    stride, dilation = _triple(stride), _triple(dilation)
    x = np.asarray(x, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    dx = np.zeros_like(x)
    dk = np.zeros_like(kernel)
    ksz = kernel.shape[:3]
    for b in range(x.shape[0]):
        for i in itertools.product(*(range(s) for s in x.shape[2:])):
            for j in itertools.product(*(range(k) for k in ksz)):
                pos = tuple(i[a] * stride[a] + j[a] * dilation[a] for a in range(3))
                gv = gfull[(b, slice(None)) + pos]  # (F,)
                for fi in range(kernel.shape[3]):
                    for ci in range(kernel.shape[4]):
                        dx[(b, ci) + i] += kernel[j + (fi, ci)] * gv[fi]
                        dk[j + (fi, ci)] += gv[fi] * x[(b, ci) + i]
    return dx, dk


# ----------------------------------------------------------------------------- activations


def _erf(v: float) -> float:
    return math.erf(v)


def _sig(v: float) -> float:
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

_SCALAR = {
    "linear": lambda v: v,
    "relu": lambda v: v if v > 0 else 0.0,
    "elu": lambda v: v if v > 0 else math.exp(v) - 1.0,
    "selu": lambda v: SELU_SCALE * (v if v > 0 else SELU_ALPHA * (math.exp(v) - 1.0)),
    "exponential": lambda v: math.exp(v),
    "gelu": lambda v: 0.5 * v * (1.0 + _erf(v / math.sqrt(2.0))),
    "hard_sigmoid": lambda v: min(1.0, max(0.0, v / 6.0 + 0.5)),
    "leaky_relu": lambda v: v if v > 0 else 0.3 * v,
    "sigmoid": _sig,
    "softplus": lambda v: math.log1p(math.exp(-abs(v))) + max(v, 0.0),
    "softsign": lambda v: v / (1.0 + abs(v)),
    "swish": lambda v: v * _sig(v),
    "tanh": math.tanh,
    "thresholded_relu": lambda v: v if v > 1.0 else 0.0,
}

ACTIVATION_NAMES = (*sorted(_SCALAR), "softmax")
# Points where a piecewise activation has a kink or jump (keep FD probes away from them).
KINKS = {
    "relu": (0.0,),
    "elu": (0.0,),
    "selu": (0.0,),
    "leaky_relu": (0.0,),
    "hard_sigmoid": (-3.0, 3.0),
    "thresholded_relu": (1.0,),
    "softsign": (0.0,),
}


def ref_activation(z: np.ndarray, name: str, channel_axis: int) -> np.ndarray:
    """Naive float64 activation; softmax over ``channel_axis``."""
    z = np.asarray(z, dtype=np.float64)
    if name == "softmax":
        zm = np.moveaxis(z, channel_axis, -1)
        out = np.empty_like(zm)
        for idx in np.ndindex(zm.shape[:-1]):
            row = zm[idx]
            m = max(row)
            ex = [math.exp(v - m) for v in row]
            s = sum(ex)
            out[idx] = [e / s for e in ex]
        return np.moveaxis(out, -1, channel_axis)
    fn = _SCALAR[name]
    out = np.empty_like(z)
    for idx in np.ndindex(z.shape):
        out[idx] = fn(float(z[idx]))
    return out


# ----------------------------------------------------------------------------- the layer


def to_cf(x6: np.ndarray, data_format: str) -> np.ndarray:
    """6-D layer data -> (N*T, C, D, H, W)."""
    x6 = np.asarray(x6)
    if data_format == "channels_last":
        x6 = np.moveaxis(x6, -1, 2)
    n, t = x6.shape[:2]
    return x6.reshape((n * t,) + x6.shape[2:])


def from_cf(y5: np.ndarray, n: int, t: int, data_format: str) -> np.ndarray:
    y6 = y5.reshape((n, t) + y5.shape[1:])
    if data_format == "channels_last":
        y6 = np.moveaxis(y6, 2, -1)
    return y6


def ref_layer_pre(
    x6,
    kernel,
    bias=None,
    *,
    stride=1,
    dilation=1,
    same=False,
    output_padding=None,
    data_format="channels_first",
    oracle="naive",
):
    """Pre-activation output of TimeDistributed(Conv3DTranspose) in float64 (6-D, data format
    of the input)."""
    n, t = np.shape(x6)[:2]
    x5 = to_cf(np.asarray(x6, dtype=np.float64), data_format)
    size = kernel.shape[:3]
    if oracle == "naive":
        full = naive_full(x5, kernel, stride, dilation)
    else:
        full = torch_full(x5, kernel, stride, dilation)
    y = crop_to_layer(full, x5.shape[2:], size, stride, dilation, same, output_padding)
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64)[None, :, None, None, None]
    return from_cf(y, n, t, data_format)


def ref_activation_backward(z: np.ndarray, dy: np.ndarray, name: str, channel_axis: int):
    """dLoss/dz from dLoss/dy: softmax by its Jacobian, the others by central differences of
    the naive scalar formulas (float64; callers keep z away from kinks)."""
    z = np.asarray(z, dtype=np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    if name == "softmax":
        y = ref_activation(z, name, channel_axis)
        return y * (dy - (dy * y).sum(axis=channel_axis, keepdims=True))
    h = 1e-6
    d = ref_activation(z + h, name, channel_axis) - ref_activation(z - h, name, channel_axis)
    return dy * d / (2 * h)


def ref_layer_grads(
    x6,
    kernel,
    bias,
    dy6,
    *,
    activation="linear",
    stride=1,
    dilation=1,
    same=False,
    output_padding=None,
    data_format="channels_first",
):
    """Reference (dx, dkernel, dbias) of sum(layer(x) * dy6), float64."""
    n, t = np.shape(x6)[:2]
    kw = dict(stride=stride, dilation=dilation, same=same, output_padding=output_padding)
    z6 = ref_layer_pre(x6, kernel, bias, data_format=data_format, **kw)
    axis = 2 if data_format == "channels_first" else -1
    dz6 = ref_activation_backward(z6, dy6, activation, axis)
    x5 = to_cf(np.asarray(x6, dtype=np.float64), data_format)
    dz5 = to_cf(dz6, data_format)
    size = kernel.shape[:3]
    st, dl = _triple(stride), _triple(dilation)
    full = [(x5.shape[2 + a] - 1) * st[a] + keff(size[a], dl[a]) for a in range(3)]
    gfull = uncrop(dz5, full, x5.shape[2:], size, stride, dilation, same, output_padding)
    dx5, dk = naive_backward(x5, kernel, gfull, stride, dilation)
    db = dz5.sum(axis=(0, 2, 3, 4))
    return from_cf(dx5, n, t, data_format), dk, db, z6


def ref_layer(x6, kernel, bias=None, *, activation="linear", data_format="channels_first", **kw):
    z = ref_layer_pre(x6, kernel, bias, data_format=data_format, **kw)
    axis = 2 if data_format == "channels_first" else -1
    return ref_activation(z, activation, axis)


# ----------------------------------------------------------------------------- PyTorch oracle

# (max abs error, relative error, config index) of every oracle comparison in this run.
TORCH_ERRORS: list[tuple[float, float, int]] = []


def torch_full(x5: np.ndarray, kernel: np.ndarray, stride, dilation) -> np.ndarray:
    """Full transposed convolution by ``torch.nn.functional.conv_transpose3d`` (float64)."""
    import torch

    w = np.ascontiguousarray(np.asarray(kernel, dtype=np.float64).transpose(4, 3, 0, 1, 2))
    out = torch.nn.functional.conv_transpose3d(
        torch.from_numpy(np.ascontiguousarray(x5, dtype=np.float64)),
        torch.from_numpy(w),
        stride=_triple(stride),
        dilation=_triple(dilation),
    )
    return out.numpy()


def torch_layer(x6, kernel, bias=None, **kw):
    """The layer (pre-activation unless ``activation`` given) with the PyTorch oracle."""
    return ref_layer(x6, kernel, bias, oracle="torch", **kw)
