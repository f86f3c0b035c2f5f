"""Initializers: shapes, dtype, seeding and Keras statistics (fans computed here, Keras-style)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conv3dt_studio.compute.errors import ParameterError
from conv3dt_studio.compute.initializers import INITIALIZER_NAMES, compute_fans, initialize

# A transposed-convolution kernel (kd, kh, kw, n_filters, in_channels), big enough for statistics.
KSHAPE = (5, 5, 5, 12, 10)
RF = 5 * 5 * 5
FAN_IN = 12 * RF  # Keras: fan_in = shape[-2] * receptive field = n_filters * rf
FAN_OUT = 10 * RF  # fan_out = in_channels * rf
TRUNC = 0.87962566103423978

DETERMINISTIC = ("constant", "zeros", "ones", "identity")
RANDOM = tuple(n for n in INITIALIZER_NAMES if n not in DETERMINISTIC)

EXPECTED_NAMES = {
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
}


def test_names_are_the_fifteen_keras_initializers():
    assert set(INITIALIZER_NAMES) == EXPECTED_NAMES
    assert len(INITIALIZER_NAMES) == 15


@pytest.mark.parametrize(
    "shape, expected",
    [
        ((3, 3, 3, 4, 2), (4 * 27, 2 * 27)),
        ((1, 2, 3, 5, 7), (5 * 6, 7 * 6)),
        ((4, 6), (4, 6)),
        ((9,), (9, 9)),
    ],
)
def test_compute_fans_keras_style(shape, expected):
    assert compute_fans(shape) == pytest.approx(expected)


@pytest.mark.parametrize("name", INITIALIZER_NAMES)
@pytest.mark.parametrize("shape", [(3, 3, 3, 4, 2), (1, 2, 3, 2, 5)])
def test_shape_dtype_and_contiguity(name, shape):
    w = initialize(name, shape, seed=1, constant_value=0.25)
    assert w.shape == shape
    assert w.dtype == np.float32
    assert w.flags.c_contiguous
    assert np.all(np.isfinite(w))


@pytest.mark.parametrize("name", INITIALIZER_NAMES)
def test_same_seed_same_values(name):
    a = initialize(name, (3, 2, 3, 4, 3), seed=123, constant_value=0.5)
    b = initialize(name, (3, 2, 3, 4, 3), seed=123, constant_value=0.5)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", RANDOM)
def test_different_seeds_differ(name):
    a = initialize(name, (3, 2, 3, 4, 3), seed=1)
    b = initialize(name, (3, 2, 3, 4, 3), seed=2)
    assert not np.array_equal(a, b)
    # and values are not all equal inside one draw
    assert np.unique(a).size > a.size // 2


@pytest.mark.parametrize("name", [n for n in RANDOM if n != "orthogonal"])
def test_random_bias_shape(name):
    b = initialize(name, (7,), seed=3, param="bias_initializer")
    assert b.shape == (7,)
    assert b.dtype == np.float32


def _std_and_bound(name):
    """Keras's target standard deviation and hard bound (None when unbounded)."""
    fan_avg = (FAN_IN + FAN_OUT) / 2
    if name == "random_normal":
        return 0.05, None
    if name == "random_uniform":
        return 0.1 / math.sqrt(12), 0.05
    if name == "truncated_normal":
        return 0.05 * TRUNC, 0.1
    variance = {
        "glorot_normal": 1 / fan_avg,
        "glorot_uniform": 1 / fan_avg,
        "he_normal": 2 / FAN_IN,
        "he_uniform": 2 / FAN_IN,
        "lecun_normal": 1 / FAN_IN,
        "lecun_uniform": 1 / FAN_IN,
        "variance_scaling": 1 / FAN_IN,
    }[name]
    if name.endswith("uniform"):
        limit = math.sqrt(3 * variance)
        return limit / math.sqrt(3), limit
    # truncated normal of stddev sqrt(variance)/TRUNC, cut at two of those stddevs
    stddev = math.sqrt(variance) / TRUNC
    return math.sqrt(variance), 2 * stddev


@pytest.mark.parametrize(
    "name",
    [
        "random_normal",
        "random_uniform",
        "truncated_normal",
        "glorot_normal",
        "glorot_uniform",
        "he_normal",
        "he_uniform",
        "lecun_normal",
        "lecun_uniform",
        "variance_scaling",
    ],
)
def test_statistics_match_keras_formulas(name):
    w = initialize(name, KSHAPE, seed=7).astype(np.float64)
    std, bound = _std_and_bound(name)
    n = w.size
    assert abs(w.mean()) < 5 * std / math.sqrt(n)
    assert w.std() == pytest.approx(std, rel=0.03)
    if bound is not None:
        assert np.abs(w).max() <= bound * (1 + 1e-6)
        # the bound is approached (not e.g. a narrower distribution)
        assert np.abs(w).max() >= 0.9 * bound
    if name.endswith("uniform"):
        # flat histogram: each quarter of [-limit, limit] holds about a quarter of the values
        counts, _ = np.histogram(w, bins=4, range=(-bound, bound))
        np.testing.assert_allclose(counts / n, 0.25, atol=0.02)


@pytest.mark.parametrize("shape", [(3, 3, 3, 4, 2), (1, 1, 1, 2, 5), (2, 2, 1, 3, 6), (6, 4)])
def test_orthogonal_is_orthonormal(shape):
    w = initialize("orthogonal", shape, seed=11).astype(np.float64)
    cols = shape[-1]
    rows = math.prod(shape[:-1])
    m = w.reshape(rows, cols)
    if rows >= cols:
        np.testing.assert_allclose(m.T @ m, np.eye(cols), atol=1e-5)
    else:
        np.testing.assert_allclose(m @ m.T, np.eye(rows), atol=1e-5)


@pytest.mark.parametrize(
    "shape", [(3, 3, 3, 4, 2), (3, 3, 3, 3, 3), (2, 4, 1, 2, 5), (1, 1, 1, 3, 3)]
)
def test_identity_is_dirac_kernel(shape):
    w = initialize("identity", shape, seed=0)
    centre = tuple(k // 2 for k in shape[:3])
    expected = np.zeros(shape)
    for i in range(min(shape[3], shape[4])):
        expected[centre + (i, i)] = 1.0
    np.testing.assert_array_equal(w, expected)


def test_identity_2d_is_eye():
    np.testing.assert_array_equal(initialize("identity", (3, 4), seed=0), np.eye(3, 4))


@pytest.mark.parametrize("value", [0.0, 0.37, -2.5])
def test_constant_zeros_ones(value):
    shape = (2, 3, 1, 4, 2)
    np.testing.assert_array_equal(
        initialize("constant", shape, 0, constant_value=value),
        np.full(shape, value, dtype=np.float32),
    )
    np.testing.assert_array_equal(initialize("zeros", shape, 0), np.zeros(shape))
    np.testing.assert_array_equal(initialize("ones", shape, 0), np.ones(shape))


@pytest.mark.parametrize("name", ["identity", "orthogonal"])
def test_bias_refuses_matrix_initializers(name):
    with pytest.raises(ParameterError) as err:
        initialize(name, (4,), seed=0, param="bias_initializer")
    msg = str(err.value)
    assert "`bias_initializer`" in msg
    assert repr(name) in msg


def test_unknown_initializer_names_parameter_and_value():
    with pytest.raises(ParameterError) as err:
        initialize("glorot", (3, 3, 3, 2, 2), seed=0)
    msg = str(err.value)
    assert "`filter_initializer`" in msg
    assert "Received: filter_initializer='glorot'" in msg


@pytest.mark.parametrize(
    "name", ["glorot_uniform", "he_normal", "random_normal", "random_uniform", "orthogonal"]
)
def test_initializers_draw_in_float32_without_a_float64_copy(name):
    """The memory guard counts 4 bytes per weight: drawing must not need 8 (plus 4). The
    orthogonal initializer's QR factorisation needs a few copies of its (small) matrix."""
    import tracemalloc

    shape = (16, 16, 16, 8, 64) if name != "orthogonal" else (4, 4, 4, 64, 64)
    nbytes = 4 * int(np.prod(shape))
    tracemalloc.start()
    try:
        out = initialize(name, shape, seed=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.dtype == np.float32 and out.shape == shape
    assert peak < (7 if name == "orthogonal" else 1.6) * nbytes, (peak, nbytes)
