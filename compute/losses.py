"""Losses (Keras 3 definitions) with their derivatives w.r.t. the prediction.

Reduction is Keras's "sum over batch size": each loss is first reduced over the class axis as Keras
does (a mean for element-wise losses, a sum for the distribution losses), then averaged over every
remaining element. Keras reduces over the last axis; here the class axis is the channel axis of the
layer's data format (the last axis for ``channels_last``, so that case matches Keras exactly).
``epsilon`` is Keras's 1e-7. ``hinge`` and ``squared_hinge`` map 0/1 labels to -1/+1 as Keras does.
Parameters: ``huber`` takes ``delta`` (1.0).

Each entry is ``(value(xp, y_true, y_pred, axis, **p) -> scalar, grad(...) -> dL/dy_pred)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from .backend import Array, ArrayModule
from .errors import ParameterError, ShapeError
from .params import Param, Schema

EPSILON = 1e-7


class Loss(NamedTuple):
    value: Callable[..., Array]  # (xp, y_true, y_pred, axis, **params) -> scalar array
    grad: Callable[..., Array]  # the same arguments -> dLoss/dy_pred
    per_class: bool  # reduced by a sum over the class axis (else a mean over all elements)
    # the same arguments -> (value, grad) sharing their temporaries (training's hot path)
    both: Callable[..., tuple[Array, Array]] | None = None


LOSS_PARAMS = Schema(
    (
        Param(
            "delta",
            "float",
            1.0,
            "Huber loss: where the quadratic part turns linear.",
            group="loss",
            minimum=0.0,
            exclusive_minimum=True,
        ),
    )
)


def _n_rest(y: Array, axis: int) -> int:
    return y.size // y.shape[axis]


# ---------------------------------------------------------------- element-wise (mean over all)
def _mse(xp: ArrayModule, t: Array, p: Array, axis: int, **k: float) -> Array:
    return ((p - t) ** 2).mean()


def _d_mse(xp: ArrayModule, t: Array, p: Array, axis: int, **k: float) -> Array:
    return 2 * (p - t) / p.size


def _mse_both(xp: ArrayModule, t: Array, p: Array, axis: int, **k: float) -> tuple[Array, Array]:
    """:func:`_mse` and :func:`_d_mse` from one difference (4 passes over the data, not 7); with
    the compiled CPU kernels, in one pass on their threads (:func:`_mse_compiled`)."""
    if xp is np:
        from . import cpu_kernels  # (it loads Numba: on first use)

        if cpu_kernels.takes_in_place(t, p):
            return _mse_compiled(t, p)
    d = p - t
    value = (d * d).mean()
    d *= d.dtype.type(2.0 / d.size)
    return value, d


# Elements per block of the compiled MSE (fixed blocks, their float64 sums added in order: the
# same value on any number of threads).
MSE_BLOCK = 2**16


def _mse_compiled(t: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_mse_both` for C-contiguous float32 NumPy arrays: the gradient's bits are the
    NumPy path's; the value is summed in float64 by blocks of :data:`MSE_BLOCK` elements."""
    from . import cpu_kernels

    pf, tf = p.reshape(-1), t.reshape(-1)
    g = np.empty_like(p)
    blocks = -(-pf.size // MSE_BLOCK)
    bounds = np.minimum(np.arange(blocks + 1, dtype=np.int64) * MSE_BLOCK, pf.size)
    sums = np.empty(blocks, np.float64)
    scale = float(np.float32(2.0 / pf.size))
    cpu_kernels.run_chunks(
        cpu_kernels.mse_grad,
        blocks,
        cpu_kernels.ranges_for(blocks),
        lambda k, a, b: (pf, tf, g.reshape(-1), scale, sums, bounds, a, b),
    )
    return np.float32(sums.sum() / pf.size), g


def _mae(xp: ArrayModule, t: Array, p: Array, axis: int, **k: float) -> Array:
    return xp.abs(p - t).mean()


def _d_mae(xp: ArrayModule, t: Array, p: Array, axis: int, **k: float) -> Array:
    return xp.sign(p - t) / p.size


def _mape(xp: ArrayModule, t: Array, p: Array, axis: int, **k: float) -> Array:
    return 100 * (xp.abs(t - p) / xp.maximum(xp.abs(t), EPSILON)).mean()


def _d_mape(xp: ArrayModule, t: Array, p: Array, axis: int, **k: float) -> Array:
    return 100 * xp.sign(p - t) / xp.maximum(xp.abs(t), EPSILON) / p.size


def _msle_logs(xp: ArrayModule, t: Array, p: Array) -> tuple[Array, Array]:
    return xp.log(xp.maximum(p, EPSILON) + 1), xp.log(xp.maximum(t, EPSILON) + 1)


def _msle(xp: ArrayModule, t: Array, p: Array, axis: int, **k: float) -> Array:
    a, b = _msle_logs(xp, t, p)
    return ((a - b) ** 2).mean()


def _d_msle(xp: ArrayModule, t: Array, p: Array, axis: int, **k: float) -> Array:
    a, b = _msle_logs(xp, t, p)
    return 2 * (a - b) / (xp.maximum(p, EPSILON) + 1) * (p > EPSILON) / p.size


def _huber(xp: ArrayModule, t: Array, p: Array, axis: int, delta: float = 1.0, **k: float) -> Array:
    e = xp.abs(p - t)
    return xp.where(e <= delta, 0.5 * e * e, delta * e - 0.5 * delta * delta).mean()


def _d_huber(
    xp: ArrayModule, t: Array, p: Array, axis: int, delta: float = 1.0, **k: float
) -> Array:
    return xp.clip(p - t, -delta, delta) / p.size


def _log_cosh(xp: ArrayModule, t: Array, p: Array, axis: int, **k: float) -> Array:
    x = p - t
    return (x + xp.logaddexp(-2 * x, 0) - math.log(2)).mean()


def _d_log_cosh(xp: ArrayModule, t: Array, p: Array, axis: int, **k: float) -> Array:
    return xp.tanh(p - t) / p.size


def _bce(xp: ArrayModule, t: Array, p: Array, axis: int, **k: float) -> Array:
    pc = xp.clip(p, EPSILON, 1 - EPSILON)
    return -(t * xp.log(pc) + (1 - t) * xp.log(1 - pc)).mean()


def _d_bce(xp: ArrayModule, t: Array, p: Array, axis: int, **k: float) -> Array:
    pc = xp.clip(p, EPSILON, 1 - EPSILON)
    inside = (p > EPSILON) & (p < 1 - EPSILON)
    return -(t / pc - (1 - t) / (1 - pc)) * inside / p.size


def _poisson(xp: ArrayModule, t: Array, p: Array, axis: int, **k: float) -> Array:
    return (p - t * xp.log(p + EPSILON)).mean()


def _d_poisson(xp: ArrayModule, t: Array, p: Array, axis: int, **k: float) -> Array:
    return (1 - t / (p + EPSILON)) / p.size


def _hinge_labels(xp: ArrayModule, t: Array) -> Array:
    if bool(((t == 0) | (t == 1)).all()):
        return 2 * t - 1
    return t


def _hinge(xp: ArrayModule, t: Array, p: Array, axis: int, **k: float) -> Array:
    return xp.maximum(1 - _hinge_labels(xp, t) * p, 0).mean()


def _d_hinge(xp: ArrayModule, t: Array, p: Array, axis: int, **k: float) -> Array:
    y = _hinge_labels(xp, t)
    return -y * (1 - y * p > 0) / p.size


def _squared_hinge(xp: ArrayModule, t: Array, p: Array, axis: int, **k: float) -> Array:
    return (xp.maximum(1 - _hinge_labels(xp, t) * p, 0) ** 2).mean()


def _d_squared_hinge(xp: ArrayModule, t: Array, p: Array, axis: int, **k: float) -> Array:
    y = _hinge_labels(xp, t)
    return -2 * y * xp.maximum(1 - y * p, 0) / p.size


# ---------------------------------------------------------------- per class axis (sum, then mean)
def _cce_parts(xp: ArrayModule, p: Array, axis: int) -> tuple[Array, Array, Array]:
    s = p.sum(axis=axis, keepdims=True)
    q = p / s
    return s, q, xp.clip(q, EPSILON, 1 - EPSILON)


def _cce(xp: ArrayModule, t: Array, p: Array, axis: int, **k: float) -> Array:
    _, _, qc = _cce_parts(xp, p, axis)
    return -(t * xp.log(qc)).sum() / _n_rest(p, axis)


def _d_cce(xp: ArrayModule, t: Array, p: Array, axis: int, **k: float) -> Array:
    s, q, qc = _cce_parts(xp, p, axis)
    g = -t / qc * ((q > EPSILON) & (q < 1 - EPSILON))
    return (g - (g * q).sum(axis=axis, keepdims=True)) / s / _n_rest(p, axis)


def _kl(xp: ArrayModule, t: Array, p: Array, axis: int, **k: float) -> Array:
    tc, pc = xp.clip(t, EPSILON, 1), xp.clip(p, EPSILON, 1)
    return (tc * xp.log(tc / pc)).sum() / _n_rest(p, axis)


def _d_kl(xp: ArrayModule, t: Array, p: Array, axis: int, **k: float) -> Array:
    tc, pc = xp.clip(t, EPSILON, 1), xp.clip(p, EPSILON, 1)
    return -tc / pc * ((p > EPSILON) & (p < 1)) / _n_rest(p, axis)


def _cat_hinge_parts(xp: ArrayModule, t: Array, p: Array, axis: int) -> tuple[Array, Array, Array]:
    pos = (t * p).sum(axis=axis, keepdims=True)
    negs = (1 - t) * p
    neg = negs.max(axis=axis, keepdims=True)
    return pos, negs, neg


def _cat_hinge(xp: ArrayModule, t: Array, p: Array, axis: int, **k: float) -> Array:
    pos, _, neg = _cat_hinge_parts(xp, t, p, axis)
    return xp.maximum(neg - pos + 1, 0).sum() / _n_rest(p, axis)


def _d_cat_hinge(xp: ArrayModule, t: Array, p: Array, axis: int, **k: float) -> Array:
    pos, negs, neg = _cat_hinge_parts(xp, t, p, axis)
    active = (neg - pos + 1) > 0
    idx = xp.expand_dims(negs.argmax(axis=axis), axis)
    arange = xp.arange(p.shape[axis]).reshape(
        [-1 if i == axis % p.ndim else 1 for i in range(p.ndim)]
    )
    onehot = arange == idx
    return active * (onehot * (1 - t) - t) / _n_rest(p, axis)


def _cos_parts(xp: ArrayModule, t: Array, p: Array, axis: int) -> tuple[Array, Array, Array]:
    nt = xp.sqrt((t * t).sum(axis=axis, keepdims=True))
    np_ = xp.sqrt((p * p).sum(axis=axis, keepdims=True))
    return t / xp.maximum(nt, EPSILON), np_, p / xp.maximum(np_, EPSILON)


def _cosine(xp: ArrayModule, t: Array, p: Array, axis: int, **k: float) -> Array:
    tn, _, pn = _cos_parts(xp, t, p, axis)
    return -(tn * pn).sum() / _n_rest(p, axis)


def _d_cosine(xp: ArrayModule, t: Array, p: Array, axis: int, **k: float) -> Array:
    tn, n, pn = _cos_parts(xp, t, p, axis)
    big = n > EPSILON
    d = xp.where(
        big,
        (tn - pn * (tn * pn).sum(axis=axis, keepdims=True)) / xp.maximum(n, EPSILON),
        tn / EPSILON,
    )
    return -d / _n_rest(p, axis)


LOSSES: dict[str, Loss] = {
    "mean_squared_error": Loss(_mse, _d_mse, False, _mse_both),
    "mean_absolute_error": Loss(_mae, _d_mae, False),
    "mean_absolute_percentage_error": Loss(_mape, _d_mape, False),
    "mean_squared_logarithmic_error": Loss(_msle, _d_msle, False),
    "huber": Loss(_huber, _d_huber, False),
    "log_cosh": Loss(_log_cosh, _d_log_cosh, False),
    "binary_crossentropy": Loss(_bce, _d_bce, False),
    "categorical_crossentropy": Loss(_cce, _d_cce, True),
    "kl_divergence": Loss(_kl, _d_kl, True),
    "poisson": Loss(_poisson, _d_poisson, False),
    "hinge": Loss(_hinge, _d_hinge, False),
    "squared_hinge": Loss(_squared_hinge, _d_squared_hinge, False),
    "categorical_hinge": Loss(_cat_hinge, _d_cat_hinge, True),
    "cosine_similarity": Loss(_cosine, _d_cosine, True),
}
LOSS_NAMES = tuple(LOSSES)


def get_loss(name: str) -> Loss:
    if name not in LOSSES:
        raise ParameterError(
            f"Invalid value for `loss`: expected one of {', '.join(LOSS_NAMES)}. "
            f"Received: loss={name!r}"
        )
    return LOSSES[name]


def loss_value_and_grad(
    xp: ArrayModule,
    name: str,
    y_true: Array,
    y_pred: Array,
    axis: int = -1,
    params: dict[str, Any] | None = None,
) -> tuple[float, Array]:
    """``(loss as float, dLoss/dy_pred)`` for arrays of the same shape."""
    loss = get_loss(name)
    if tuple(y_true.shape) != tuple(y_pred.shape):
        raise ShapeError(
            f"Loss `{name}`: target shape must equal prediction shape {tuple(y_pred.shape)}. "
            f"Received: target shape {tuple(y_true.shape)}"
        )
    if y_pred.size == 0:
        raise ShapeError(
            f"Loss `{name}`: expected non-empty data. Received: shape {tuple(y_pred.shape)}"
        )
    p = LOSS_PARAMS.validate(params, where="loss parameters")
    if loss.both is not None:
        v, grad = loss.both(xp, y_true, y_pred, axis, **p)
        value = float(v)
    else:
        value = float(loss.value(xp, y_true, y_pred, axis, **p))
        grad = loss.grad(xp, y_true, y_pred, axis, **p)
    return value, grad.astype(y_pred.dtype, copy=False)
