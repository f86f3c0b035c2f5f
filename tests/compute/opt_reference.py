"""Float64 reference of the Keras 3 update rules, written independently of ``compute``."""

from __future__ import annotations

import math

import numpy as np

DEFAULTS = {
    "algorithm": "adam",
    "learning_rate": 0.001,
    "beta_1": 0.9,
    "beta_2": 0.999,
    "epsilon": 1e-7,
    "momentum": 0.9,
}


class RefOptimizer:
    """One weight list; ``step(weights, grads)`` returns new float64 weights."""

    def __init__(self, config: dict):
        self.c = {**DEFAULTS, **config}
        self.t = 0
        self.prod = 1.0
        self.state: list[dict] | None = None

    def _init(self, weights):
        algo = self.c["algorithm"]
        self.state = []
        for w in weights:
            z = np.zeros(np.shape(w))
            s = {
                "sgd": {},
                "inertia": {"v": z.copy()},
                "nesterov": {"v": z.copy()},
                "adagrad": {"a": np.full(np.shape(w), 0.1)},
                "adadelta": {"a": z.copy(), "u": z.copy()},
                "rmsprop": {"v": z.copy()},
                "adam": {"m": z.copy(), "v": z.copy()},
                "adamax": {"m": z.copy(), "u": z.copy()},
                "nadam": {"m": z.copy(), "v": z.copy()},
            }[algo]
            self.state.append(s)

    def step(self, weights, grads):
        if self.state is None:
            self._init(weights)
        c = self.c
        lr, b1, b2, eps, mom = (
            c["learning_rate"],
            c["beta_1"],
            c["beta_2"],
            c["epsilon"],
            c["momentum"],
        )
        self.t += 1
        t = self.t
        algo = c["algorithm"]

        def mu(step):
            return b1 * (1.0 - 0.5 * 0.96**step)  # Keras 3; Keras 2 had 0.96 ** (0.004 * step)

        if algo == "nadam":
            mu_t, mu_n = mu(t), mu(t + 1)
            prod_t = self.prod * mu_t
            prod_n = prod_t * mu_n
            self.prod = prod_t
        out = []
        for w, g, s in zip(weights, grads, self.state):
            w = np.array(w, dtype=np.float64)
            g = np.asarray(g, dtype=np.float64)
            if algo == "sgd":
                w = w - lr * g
            elif algo == "inertia":
                s["v"] = mom * s["v"] - lr * g
                w = w + s["v"]
            elif algo == "nesterov":
                s["v"] = mom * s["v"] - lr * g
                w = w + mom * s["v"] - lr * g
            elif algo == "adagrad":
                s["a"] = s["a"] + g**2
                w = w - lr * g / np.sqrt(s["a"] + eps)
            elif algo == "adadelta":
                rho = 0.95
                s["a"] = rho * s["a"] + (1 - rho) * g**2
                d = -np.sqrt(s["u"] + eps) / np.sqrt(s["a"] + eps) * g
                s["u"] = rho * s["u"] + (1 - rho) * d**2
                w = w + lr * d
            elif algo == "rmsprop":
                rho = 0.9
                s["v"] = rho * s["v"] + (1 - rho) * g**2
                w = w - lr * g / np.sqrt(s["v"] + eps)
            elif algo == "adam":
                s["m"] = b1 * s["m"] + (1 - b1) * g
                s["v"] = b2 * s["v"] + (1 - b2) * g**2
                alpha = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
                w = w - alpha * s["m"] / (np.sqrt(s["v"]) + eps)
            elif algo == "adamax":
                s["m"] = b1 * s["m"] + (1 - b1) * g
                s["u"] = np.maximum(b2 * s["u"], np.abs(g))
                w = w - lr * s["m"] / ((1 - b1**t) * (s["u"] + eps))
            elif algo == "nadam":
                s["m"] = b1 * s["m"] + (1 - b1) * g
                s["v"] = b2 * s["v"] + (1 - b2) * g**2
                m_hat = mu_n * s["m"] / (1 - prod_n) + (1 - mu_t) * g / (1 - prod_t)
                v_hat = s["v"] / (1 - b2**t)
                w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
            else:  # pragma: no cover - unknown algorithm in a test table
                raise AssertionError(algo)
            out.append(w)
        return out


def assert_close_update(new, ref, old, rel=2e-3):
    """float32 weights ``new`` equal the float64 ``ref`` up to float32 rounding, judged against the
    size of the step taken (so a wrong step size cannot hide in the weights' magnitude)."""
    new = np.asarray(new, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    old = np.asarray(old, dtype=np.float64)
    step = np.abs(ref - old).max()
    assert step > 0, "reference step is zero: the test would not detect anything"
    err = np.abs(new - ref).max()
    tol = rel * step + 4 * np.finfo(np.float32).eps * max(1.0, np.abs(ref).max())
    assert err <= tol, f"max error {err:.3g} > {tol:.3g} (step {step:.3g})"
