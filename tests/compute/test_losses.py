"""Losses: value against an independent float64 Keras 3 formula ("sum over batch size" reduction,
epsilon 1e-7), derivative against central finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conv3dt_studio.compute.errors import ParameterError, ShapeError
from conv3dt_studio.compute.losses import LOSS_NAMES, LOSSES, loss_value_and_grad

EPS = 1e-7

EXPECTED = {
    "mean_squared_error",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
    "mean_squared_logarithmic_error",
    "huber",
    "log_cosh",
    "binary_crossentropy",
    "categorical_crossentropy",
    "kl_divergence",
    "poisson",
    "hinge",
    "squared_hinge",
    "categorical_hinge",
    "cosine_similarity",
}


def _per_sample(name, t, p, axis, delta=1.0):
    """Keras 3 per-sample loss (class axis reduced); the caller averages the rest."""

    def mean(a):
        return a.mean(axis=axis)

    def sum_(a):
        return a.sum(axis=axis)

    if name == "mean_squared_error":
        return mean((t - p) ** 2)
    if name == "mean_absolute_error":
        return mean(np.abs(t - p))
    if name == "mean_absolute_percentage_error":
        return 100.0 * mean(np.abs((t - p) / np.maximum(np.abs(t), EPS)))
    if name == "mean_squared_logarithmic_error":
        return mean((np.log(np.maximum(p, EPS) + 1.0) - np.log(np.maximum(t, EPS) + 1.0)) ** 2)
    if name == "huber":
        e = np.abs(p - t)
        return mean(np.where(e <= delta, 0.5 * e**2, delta * e - 0.5 * delta**2))
    if name == "log_cosh":
        return mean(np.log(np.cosh(p - t)))
    if name == "binary_crossentropy":
        q = np.clip(p, EPS, 1 - EPS)
        return mean(-(t * np.log(q) + (1 - t) * np.log(1 - q)))
    if name == "poisson":
        return mean(p - t * np.log(p + EPS))
    if name in ("hinge", "squared_hinge"):
        lab = 2 * t - 1 if np.all((t == 0) | (t == 1)) else t
        h = np.maximum(1 - lab * p, 0)
        return mean(h if name == "hinge" else h**2)
    if name == "categorical_crossentropy":
        q = p / p.sum(axis=axis, keepdims=True)
        q = np.clip(q, EPS, 1 - EPS)
        return -sum_(t * np.log(q))
    if name == "kl_divergence":
        tc, pc = np.clip(t, EPS, 1), np.clip(p, EPS, 1)
        return sum_(tc * np.log(tc / pc))
    if name == "categorical_hinge":
        pos = sum_(t * p)
        neg = ((1 - t) * p).max(axis=axis)
        return np.maximum(neg - pos + 1, 0)
    if name == "cosine_similarity":
        tn = t / np.maximum(np.sqrt((t**2).sum(axis=axis, keepdims=True)), EPS)
        pn = p / np.maximum(np.sqrt((p**2).sum(axis=axis, keepdims=True)), EPS)
        return -sum_(tn * pn)
    raise AssertionError(name)


def ref_loss(name, t, p, axis, **params):
    return float(
        _per_sample(name, t.astype(np.float64), p.astype(np.float64), axis, **params).mean()
    )


def _data(name, shape, axis, seed):
    """(y_true, y_pred) in each loss's domain, away from kinks and clipping edges."""
    rng = np.random.default_rng(seed)
    n_cls = shape[axis]
    if name in ("binary_crossentropy",):
        return rng.uniform(0, 1, shape), rng.uniform(0.05, 0.95, shape)
    if name in ("categorical_crossentropy", "kl_divergence"):
        t = rng.uniform(0.1, 1, shape)
        t /= t.sum(axis=axis, keepdims=True)
        p = rng.uniform(0.1, 1, shape)
        if name == "kl_divergence":
            p /= p.sum(axis=axis, keepdims=True)
        return t, p
    if name == "categorical_hinge":
        idx = rng.integers(0, n_cls, np.delete(np.array(shape), axis % len(shape)))
        t = np.moveaxis(np.eye(n_cls)[idx], -1, axis)
        return t, rng.uniform(-1, 1, shape)
    if name in ("hinge", "squared_hinge"):
        t = rng.integers(0, 2, shape).astype(np.float64)
        p = rng.uniform(-2, 2, shape)
        # keep 1 - y p away from 0
        lab = 2 * t - 1
        bad = np.abs(1 - lab * p) < 0.05
        p[bad] += 0.2
        return t, p
    if name in ("mean_squared_logarithmic_error", "poisson"):
        return rng.uniform(0, 3, shape), rng.uniform(0.1, 3, shape)
    if name == "mean_absolute_percentage_error":
        t = rng.uniform(0.5, 2, shape) * rng.choice([-1, 1], shape)
        return t, t + rng.uniform(0.1, 1, shape) * rng.choice([-1, 1], shape)
    t = rng.standard_normal(shape)
    p = t + rng.uniform(0.05, 2.0, shape) * rng.choice([-1, 1], shape)
    if name == "huber":
        e = np.abs(p - t)
        p[np.abs(e - 1.0) < 0.05] += 0.2
    return t, p


CASES = [((2, 3, 4), -1), ((2, 4, 3, 2), 1), ((3, 5), 1)]


def test_loss_names():
    assert set(LOSS_NAMES) == EXPECTED
    assert set(LOSSES) == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("case", range(len(CASES)))
def test_value_against_keras_formula(name, case):
    shape, axis = CASES[case]
    t, p = _data(name, shape, axis, seed=10 * sorted(EXPECTED).index(name) + case)
    value, grad = loss_value_and_grad(np, name, t.astype(np.float32), p.astype(np.float32), axis)
    expected = ref_loss(name, t.astype(np.float32), p.astype(np.float32), axis)
    assert isinstance(value, float)
    assert value == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert grad.shape == p.shape
    assert grad.dtype == np.float32


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("case", range(len(CASES)))
def test_gradient_against_finite_differences(name, case):
    shape, axis = CASES[case]
    t, p = _data(name, shape, axis, seed=1000 + case)
    _, grad = loss_value_and_grad(np, name, t, p, axis)  # float64 in, float64 out
    h = 1e-6
    fd = np.zeros_like(p)
    for idx in np.ndindex(p.shape):
        pp, pm = p.copy(), p.copy()
        pp[idx] += h
        pm[idx] -= h
        fd[idx] = (ref_loss(name, t, pp, axis) - ref_loss(name, t, pm, axis)) / (2 * h)
    scale = max(np.abs(fd).max(), 1e-12)
    np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize("delta", [0.5, 2.0])
def test_huber_delta(delta):
    rng = np.random.default_rng(3)
    t = rng.standard_normal((2, 5))
    p = t + rng.uniform(-3, 3, (2, 5))
    value, grad = loss_value_and_grad(np, "huber", t, p, -1, {"delta": delta})
    assert value == pytest.approx(ref_loss("huber", t, p, -1, delta=delta), rel=1e-10)
    np.testing.assert_allclose(grad, np.clip(p - t, -delta, delta) / p.size, rtol=1e-10)


def test_hinge_keeps_signed_labels():
    """Labels already in {-1, 1} are used as they are."""
    rng = np.random.default_rng(4)
    t = rng.choice([-1.0, 1.0], (3, 4))
    p = rng.uniform(-2, 2, (3, 4))
    value, _ = loss_value_and_grad(np, "hinge", t, p, -1)
    assert value == pytest.approx(np.maximum(1 - t * p, 0).mean(), rel=1e-12)


def test_class_axis_matters_for_per_class_losses():
    rng = np.random.default_rng(5)
    t = rng.uniform(0.1, 1, (2, 3, 4))
    p = rng.uniform(0.1, 1, (2, 3, 4))
    a, _ = loss_value_and_grad(np, "categorical_crossentropy", t, p, 1)
    b, _ = loss_value_and_grad(np, "categorical_crossentropy", t, p, -1)
    assert a == pytest.approx(ref_loss("categorical_crossentropy", t, p, 1), rel=1e-10)
    assert b == pytest.approx(ref_loss("categorical_crossentropy", t, p, -1), rel=1e-10)
    assert not math.isclose(a, b)


def test_unknown_loss_error():
    with pytest.raises(ParameterError) as err:
        loss_value_and_grad(np, "mse", np.zeros(3), np.zeros(3))
    assert "`loss`" in str(err.value)
    assert "Received: loss='mse'" in str(err.value)


def test_shape_mismatch_error():
    with pytest.raises(ShapeError) as err:
        loss_value_and_grad(np, "mean_squared_error", np.zeros((2, 3)), np.zeros((2, 4)))
    assert "(2, 3)" in str(err.value)
    assert "(2, 4)" in str(err.value)


def test_bad_loss_param():
    with pytest.raises(ParameterError, match="`delta`"):
        loss_value_and_grad(np, "huber", np.zeros(3), np.ones(3), -1, {"delta": 0.0})


@pytest.mark.parametrize("shape", [(1, 1, 1, 2, 3, 4), (2, 3, 5, 7, 11, 13), (3, 1, 16, 32, 32, 9)])
def test_compiled_mse_equals_numpy(monkeypatch, shape):
    """The compiled MSE (one pass, blocks on the threads; several blocks and a short last one
    here): the NumPy path's gradient bit for bit, its value within float32 rounding of the
    float64 mean, and the same value on one thread as on several."""
    from conv3dt_studio.compute import cpu_kernels, losses

    rng = np.random.default_rng(3)
    p = rng.standard_normal(shape, dtype=np.float32)
    t = rng.standard_normal(shape, dtype=np.float32)
    monkeypatch.setattr(losses, "MSE_BLOCK", 1000)
    value, grad = loss_value_and_grad(np, "mean_squared_error", t, p)
    d = p - t
    np.testing.assert_array_equal(grad, d * np.float32(2.0 / d.size))
    exact = float(np.mean(d.astype(np.float64) ** 2))
    assert value == pytest.approx(exact, rel=1e-6)
    assert cpu_kernels.takes_in_place(t, p) is cpu_kernels.AVAILABLE
    monkeypatch.setattr(cpu_kernels, "THREADS", 1)
    assert loss_value_and_grad(np, "mean_squared_error", t, p)[0] == value


def test_mse_keeps_nan_and_takes_any_layout():
    """A NaN in the prediction gives a NaN loss (training stops on it); a non-contiguous view
    takes the NumPy path, with the same numbers."""
    rng = np.random.default_rng(4)
    p = rng.standard_normal((2, 3, 4, 5, 6), dtype=np.float32)
    t = rng.standard_normal((2, 3, 4, 5, 6), dtype=np.float32)
    view_p, view_t = p.transpose(0, 2, 1, 3, 4), t.transpose(0, 2, 1, 3, 4)
    value, grad = loss_value_and_grad(np, "mean_squared_error", view_t, view_p)
    want, want_grad = loss_value_and_grad(np, "mean_squared_error", t, p)
    assert value == pytest.approx(want, rel=1e-6)
    np.testing.assert_array_equal(grad, want_grad.transpose(0, 2, 1, 3, 4))
    p[1, 2, 3, 4, 5] = np.nan
    value, grad = loss_value_and_grad(np, "mean_squared_error", t, p)
    assert math.isnan(value) and np.isnan(grad[1, 2, 3, 4, 5])


def test_compiled_mse_overflows_as_numpy_does():
    """Squares are taken in float32 on both paths: a difference whose square overflows gives an
    infinite loss (training stops on it) whichever path runs."""
    p = np.zeros((2, 1, 1, 4, 4, 4), dtype=np.float32)
    p[1, 0, 0, 2, 3, 1] = 3e19  # its square overflows float32; the mean of the squares would not
    t = np.zeros_like(p)
    value, grad = loss_value_and_grad(np, "mean_squared_error", t, p)
    assert math.isinf(value)
    np.testing.assert_array_equal(grad, p * np.float32(2.0 / p.size))
