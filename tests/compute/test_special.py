"""The error function without SciPy: both paths against the C library's erf in float64, and the
exact GELU built on it against its float64 form."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conv3dt_studio.compute import activations
from conv3dt_studio.compute.backend import NUMPY
from conv3dt_studio.compute.special import erf, erf_numpy

GRID = np.concatenate(
    [np.linspace(-40.0, 40.0, 20001), np.geomspace(1e-30, 10.0, 2001), [0.0, -0.0, 1e300, -1e300]]
)


def _exact(values: np.ndarray) -> np.ndarray:
    return np.array([math.erf(v) for v in values])


def test_numpy_erf_matches_the_c_library_to_2e_12():
    assert np.abs(erf_numpy(GRID) - _exact(GRID)).max() < 2e-12


def test_numpy_erf_is_odd_and_saturates():
    assert erf_numpy(np.array([0.0]))[0] == 0.0
    np.testing.assert_array_equal(erf_numpy(-GRID), -erf_numpy(GRID))
    assert erf_numpy(np.array([np.inf]))[0] == 1.0 and erf_numpy(np.array([-np.inf]))[0] == -1.0


def test_the_check_can_fail():
    """A plausible wrong erf (the tanh approximation) is caught by the same tolerance."""
    wrong = np.tanh(GRID * 2 / math.sqrt(math.pi))
    assert np.abs(wrong - _exact(GRID)).max() > 2e-12


@pytest.mark.parametrize("path", ["compiled", "numpy"])
def test_float32_erf_is_the_rounded_exact_value(monkeypatch, path):
    from conv3dt_studio.compute import cpu_kernels

    if path == "numpy":
        monkeypatch.setattr(cpu_kernels, "AVAILABLE", False)
    x = GRID[np.abs(GRID) < 1e30].astype(np.float32)
    got = erf(x)
    assert got.dtype == np.float32
    exact = _exact(x.astype(np.float64))
    assert np.abs(got - exact).max() <= 1.2e-7  # one float32 rounding of a value of size <= 1


@pytest.mark.parametrize("path", ["compiled", "numpy"])
def test_gelu_within_1e_6_of_the_float64_erf_form(monkeypatch, path):
    from conv3dt_studio.compute import cpu_kernels

    if path == "numpy":
        monkeypatch.setattr(cpu_kernels, "AVAILABLE", False)
    z = np.random.default_rng(0).uniform(-12, 12, 100_000).astype(np.float32)
    got = activations.ACTIVATIONS["gelu"].forward(NUMPY, z, 1)
    z64 = z.astype(np.float64)
    exact = 0.5 * z64 * (1 + np.array([math.erf(v / math.sqrt(2)) for v in z64]))
    assert np.abs(got - exact).max() <= 1e-6 * np.maximum(1.0, np.abs(exact)).max()


def test_exponential_past_float32_is_inf_without_a_warning():
    """exp past float32's range is inf, as Keras gives, and no RuntimeWarning reaches the
    editor's or the API's stderr (the CLI turned it into a line of its own)."""
    import warnings

    z = np.array([0.0, 88.0, 89.0, 1e4], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = activations.ACTIVATIONS["exponential"].forward(NUMPY, z, 0)
    np.testing.assert_array_equal(got, np.exp(z.astype(np.float64)).astype(np.float32))
    assert np.isinf(got[2:]).all()
