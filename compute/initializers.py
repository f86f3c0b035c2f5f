"""Weight initializers with Keras 3 formulas, seeded, computed in NumPy float32 on the host.

Fans follow Keras's ``compute_fans``: for a kernel of shape ``(kd, kh, kw, a, b)`` the receptive field
is ``kd*kh*kw``, ``fan_in = a * rf`` and ``fan_out = b * rf``. For a transposed-convolution kernel
``(kd, kh, kw, n_filters, in_channels)`` Keras therefore uses ``fan_in = n_filters * rf`` - we do the
same, so weights match Keras for the same formula.

Constants (Keras defaults): random_normal and truncated_normal stddev 0.05, random_uniform
[-0.05, 0.05], truncated normals cut at two standard deviations, variance_scaling = scale 1, fan_in,
truncated normal, orthogonal gain 1, constant value given by the layer's ``constant_value``.
``identity`` on a 5-D kernel (Keras accepts only 2-D) is the Dirac kernel: ``eye(n_filters,
in_channels)`` at the centre tap, zeros elsewhere, so a stride-1 "same" layer passes its input through.
``identity`` and ``orthogonal`` need two or more dimensions and are not offered for biases.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import ParameterError

# Keras: stddev of a normal truncated at 2 stddev is 0.87962566103423978 of the untruncated one.
TRUNCATION_FACTOR = 0.87962566103423978

INITIALIZER_NAMES = (
    "constant",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "identity",
    "lecun_normal",
    "lecun_uniform",
    "ones",
    "orthogonal",
    "random_normal",
    "random_uniform",
    "truncated_normal",
    "variance_scaling",
    "zeros",
)
F32 = np.float32
REDRAW_CHUNK = 1 << 18  # elements checked for truncation at a time
NEEDS_MATRIX = ("identity", "orthogonal")
BIAS_INITIALIZER_NAMES = tuple(n for n in INITIALIZER_NAMES if n not in NEEDS_MATRIX)


def compute_fans(shape: tuple[int, ...]) -> tuple[float, float]:
    """Keras's fan computation."""
    if len(shape) == 0:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    if len(shape) == 2:
        return float(shape[0]), float(shape[1])
    rf = math.prod(shape[:-2])
    return float(shape[-2] * rf), float(shape[-1] * rf)


def _truncated_normal(
    rng: np.random.Generator, shape: tuple[int, ...], stddev: float
) -> np.ndarray:
    """Normal(0, stddev) redrawn outside two standard deviations (float32 throughout; the
    redraws go chunk by chunk, so the temporaries stay small whatever the shape)."""
    out = rng.standard_normal(shape, dtype=F32)
    flat = out.reshape(-1)
    for start in range(0, flat.size, REDRAW_CHUNK):
        part = flat[start : start + REDRAW_CHUNK]
        bad = np.abs(part) > 2
        while bad.any():
            part[bad] = rng.standard_normal(int(bad.sum()), dtype=F32)
            bad = np.abs(part) > 2
    out *= F32(stddev)
    return out


def _uniform(rng: np.random.Generator, shape: tuple[int, ...], limit: float) -> np.ndarray:
    """Uniform on [-limit, limit), drawn in float32."""
    out = rng.random(shape, dtype=F32)
    out *= F32(2 * limit)
    out -= F32(limit)
    return out


def _variance_scaling(
    rng: np.random.Generator, shape: tuple[int, ...], scale: float, mode: str, distribution: str
) -> np.ndarray:
    fan_in, fan_out = compute_fans(shape)
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    variance = scale / max(1.0, n)
    if distribution == "truncated_normal":
        return _truncated_normal(rng, shape, math.sqrt(variance) / TRUNCATION_FACTOR)
    return _uniform(rng, shape, math.sqrt(3 * variance))


def _orthogonal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    rows = math.prod(shape[:-1])
    cols = shape[-1]
    a = rng.standard_normal((max(rows, cols), min(rows, cols)), dtype=F32)
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return q.reshape(shape)


def _identity(shape: tuple[int, ...]) -> np.ndarray:
    if len(shape) == 2:
        return np.eye(*shape, dtype=F32)
    out = np.zeros(shape, F32)
    centre = tuple(k // 2 for k in shape[:-2])
    out[centre] = np.eye(shape[-2], shape[-1])
    return out


def initialize(
    name: str,
    shape: tuple[int, ...],
    seed: int | None,
    constant_value: float = 0.0,
    param: str = "filter_initializer",
) -> np.ndarray:
    """Return a float32 array of ``shape`` drawn by initializer ``name``; every draw is made in
    float32, so the peak memory is the weight itself (the memory guard counts 4 bytes each)."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in shape)
    if name in NEEDS_MATRIX and len(shape) < 2:
        raise ParameterError(
            f"Invalid value for `{param}`: expected an initializer for a {len(shape)}-D weight "
            f"({', '.join(BIAS_INITIALIZER_NAMES)}). Received: {param}={name!r}"
        )
    table = {
        "constant": lambda: np.full(shape, constant_value, F32),
        "zeros": lambda: np.zeros(shape, F32),
        "ones": lambda: np.ones(shape, F32),
        "random_normal": lambda: rng.standard_normal(shape, dtype=F32) * F32(0.05),
        "random_uniform": lambda: _uniform(rng, shape, 0.05),
        "truncated_normal": lambda: _truncated_normal(rng, shape, 0.05),
        "glorot_normal": lambda: _variance_scaling(rng, shape, 1.0, "fan_avg", "truncated_normal"),
        "glorot_uniform": lambda: _variance_scaling(rng, shape, 1.0, "fan_avg", "uniform"),
        "he_normal": lambda: _variance_scaling(rng, shape, 2.0, "fan_in", "truncated_normal"),
        "he_uniform": lambda: _variance_scaling(rng, shape, 2.0, "fan_in", "uniform"),
        "lecun_normal": lambda: _variance_scaling(rng, shape, 1.0, "fan_in", "truncated_normal"),
        "lecun_uniform": lambda: _variance_scaling(rng, shape, 1.0, "fan_in", "uniform"),
        "variance_scaling": lambda: _variance_scaling(
            rng, shape, 1.0, "fan_in", "truncated_normal"
        ),
        "orthogonal": lambda: _orthogonal(rng, shape),
        "identity": lambda: _identity(shape),
    }
    if name not in table:
        raise ParameterError(
            f"Invalid value for `{param}`: expected one of {', '.join(INITIALIZER_NAMES)}. "
            f"Received: {param}={name!r}"
        )
    return np.ascontiguousarray(table[name](), dtype=np.float32)
