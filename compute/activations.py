"""Activations with their derivatives, backend-generic.

Constants where Keras versions disagree (documented choices):
    leaky_relu        negative slope 0.3 (Keras 2's ``LeakyReLU`` default; Keras 3's function uses 0.2)
    thresholded_relu  theta 1.0 (Keras 2's ``ThresholdedReLU`` default): ``x if x > 1 else 0``
    softmax           over the channel axis of the layer's data format
    hard_sigmoid      Keras 3: ``relu6(x + 3) / 6`` (Keras 2 used ``0.2 x + 0.5``)
    gelu              exact, with erf (Keras 3's default ``approximate=False``)
    elu               alpha 1.0; selu with Keras's alpha and scale; swish = ``x * sigmoid(x)``
At kinks the derivative takes the value of the left piece (relu'(0) = 0), as TensorFlow does.

Each activation is ``(forward(b, z, axis) -> y, backward(b, z, y, dy, axis) -> dz)``, where ``b`` is
the :class:`~compute.backend.Backend`, ``z`` the pre-activation and ``y`` the output.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .backend import Array, ArrayModule, Backend

LEAKY_RELU_ALPHA = 0.3
THRESHOLDED_RELU_THETA = 1.0
ELU_ALPHA = 1.0
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


class Activation(NamedTuple):
    forward: Callable[[Backend, Array, int], Array]
    backward: Callable[[Backend, Array, Array, Array, int], Array]
    needs_input: bool  # backward needs z (otherwise y is enough)


def _sigmoid(xp: ArrayModule, z: Array) -> Array:
    # exp of a non-positive number only: no overflow
    e = xp.exp(-xp.abs(z))
    return xp.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype, copy=False)


def _linear(b: Backend, z: Array, axis: int) -> Array:
    return z


def _relu(b: Backend, z: Array, axis: int) -> Array:
    return b.xp.maximum(z, 0)


def _elu(b: Backend, z: Array, axis: int) -> Array:
    xp = b.xp
    return xp.where(z > 0, z, ELU_ALPHA * xp.expm1(xp.minimum(z, 0))).astype(z.dtype, copy=False)


def _selu(b: Backend, z: Array, axis: int) -> Array:
    return (SELU_SCALE * _elu_alpha(b.xp, z, SELU_ALPHA)).astype(z.dtype, copy=False)


def _elu_alpha(xp: ArrayModule, z: Array, alpha: float) -> Array:
    return xp.where(z > 0, z, alpha * xp.expm1(xp.minimum(z, 0)))


def _exponential(b: Backend, z: Array, axis: int) -> Array:
    with np.errstate(over="ignore"):  # inf past float32's range, as Keras gives, unannounced
        return b.xp.exp(z)


def _gelu(b: Backend, z: Array, axis: int) -> Array:
    return (0.5 * z * (1 + b.erf(z / math.sqrt(2)))).astype(z.dtype, copy=False)


def _hard_sigmoid(b: Backend, z: Array, axis: int) -> Array:
    return b.xp.clip(z / 6 + 0.5, 0, 1).astype(z.dtype, copy=False)


def _leaky_relu(b: Backend, z: Array, axis: int) -> Array:
    return b.xp.where(z > 0, z, LEAKY_RELU_ALPHA * z).astype(z.dtype, copy=False)


def _sigmoid_fwd(b: Backend, z: Array, axis: int) -> Array:
    return _sigmoid(b.xp, z)


def _softmax(b: Backend, z: Array, axis: int) -> Array:
    xp = b.xp
    e = xp.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _softplus(b: Backend, z: Array, axis: int) -> Array:
    return b.xp.logaddexp(z, 0).astype(z.dtype, copy=False)


def _softsign(b: Backend, z: Array, axis: int) -> Array:
    return z / (1 + b.xp.abs(z))


def _swish(b: Backend, z: Array, axis: int) -> Array:
    return z * _sigmoid(b.xp, z)


def _tanh(b: Backend, z: Array, axis: int) -> Array:
    return b.xp.tanh(z)


def _thresholded_relu(b: Backend, z: Array, axis: int) -> Array:
    return b.xp.where(z > THRESHOLDED_RELU_THETA, z, 0).astype(z.dtype, copy=False)


# ---------------------------------------------------------------------------- derivatives
def _d_linear(b: Backend, z: Array, y: Array, dy: Array, axis: int) -> Array:
    return dy


def _d_relu(b: Backend, z: Array, y: Array, dy: Array, axis: int) -> Array:
    return dy * (y > 0)


def _d_elu(b: Backend, z: Array, y: Array, dy: Array, axis: int) -> Array:
    return b.xp.where(z > 0, dy, dy * (y + ELU_ALPHA)).astype(dy.dtype, copy=False)


def _d_selu(b: Backend, z: Array, y: Array, dy: Array, axis: int) -> Array:
    xp = b.xp
    return xp.where(z > 0, SELU_SCALE * dy, dy * (y + SELU_SCALE * SELU_ALPHA)).astype(
        dy.dtype, copy=False
    )


def _d_exponential(b: Backend, z: Array, y: Array, dy: Array, axis: int) -> Array:
    return dy * y


def _d_gelu(b: Backend, z: Array, y: Array, dy: Array, axis: int) -> Array:
    xp = b.xp
    cdf = 0.5 * (1 + b.erf(z / math.sqrt(2)))
    pdf = xp.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return (dy * (cdf + z * pdf)).astype(dy.dtype, copy=False)


def _d_hard_sigmoid(b: Backend, z: Array, y: Array, dy: Array, axis: int) -> Array:
    return dy * ((z > -3) & (z < 3)) / 6


def _d_leaky_relu(b: Backend, z: Array, y: Array, dy: Array, axis: int) -> Array:
    return b.xp.where(z > 0, dy, LEAKY_RELU_ALPHA * dy).astype(dy.dtype, copy=False)


def _d_sigmoid(b: Backend, z: Array, y: Array, dy: Array, axis: int) -> Array:
    return dy * y * (1 - y)


def _d_softmax(b: Backend, z: Array, y: Array, dy: Array, axis: int) -> Array:
    return y * (dy - (dy * y).sum(axis=axis, keepdims=True))


def _d_softplus(b: Backend, z: Array, y: Array, dy: Array, axis: int) -> Array:
    return dy * _sigmoid(b.xp, z)


def _d_softsign(b: Backend, z: Array, y: Array, dy: Array, axis: int) -> Array:
    d = 1 + b.xp.abs(z)
    return dy / (d * d)


def _d_swish(b: Backend, z: Array, y: Array, dy: Array, axis: int) -> Array:
    s = _sigmoid(b.xp, z)
    return dy * (s + z * s * (1 - s))


def _d_tanh(b: Backend, z: Array, y: Array, dy: Array, axis: int) -> Array:
    return dy * (1 - y * y)


def _d_thresholded_relu(b: Backend, z: Array, y: Array, dy: Array, axis: int) -> Array:
    return dy * (z > THRESHOLDED_RELU_THETA)


ACTIVATIONS: dict[str, Activation] = {
    "elu": Activation(_elu, _d_elu, True),
    "exponential": Activation(_exponential, _d_exponential, False),
    "gelu": Activation(_gelu, _d_gelu, True),
    "hard_sigmoid": Activation(_hard_sigmoid, _d_hard_sigmoid, True),
    "leaky_relu": Activation(_leaky_relu, _d_leaky_relu, True),
    "linear": Activation(_linear, _d_linear, False),
    "relu": Activation(_relu, _d_relu, False),
    "selu": Activation(_selu, _d_selu, True),
    "sigmoid": Activation(_sigmoid_fwd, _d_sigmoid, False),
    "softmax": Activation(_softmax, _d_softmax, False),
    "softplus": Activation(_softplus, _d_softplus, True),
    "softsign": Activation(_softsign, _d_softsign, True),
    "swish": Activation(_swish, _d_swish, True),
    "tanh": Activation(_tanh, _d_tanh, False),
    "thresholded_relu": Activation(_thresholded_relu, _d_thresholded_relu, True),
}
ACTIVATION_NAMES = tuple(ACTIVATIONS)
