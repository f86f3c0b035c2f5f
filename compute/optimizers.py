"""Optimizers: the textbook / Keras 3 update rules, one instance (and state) per layer.

Rules, with ``t`` the 1-based step, ``g`` the gradient, ``lr`` the learning rate:
    sgd       w -= lr g
    inertia   (momentum) m = momentum m - lr g;  w += m
    nesterov  m = momentum m - lr g;  w += momentum m - lr g
    adagrad   a += g^2 (a starts at 0.1, Keras);  w -= lr g / sqrt(a + eps)
    adadelta  (rho 0.95, Keras) a = rho a + (1-rho) g^2;  d = -sqrt(u + eps)/sqrt(a + eps) g;
              u = rho u + (1-rho) d^2;  w += lr d
    rmsprop   (rho 0.9, Keras) v = rho v + (1-rho) g^2;  w -= lr g / sqrt(v + eps)
    adam      (Keras 3) m += (1-b1)(g-m); v += (1-b2)(g^2-v);
              w -= lr sqrt(1-b2^t)/(1-b1^t) m / (sqrt(v) + eps)
    adamax    m += (1-b1)(g-m); u = max(b2 u, |g|); w -= lr m / ((1-b1^t)(u + eps))
    nadam     (Keras 3) mu_t = b1 (1 - 0.5 0.96^t), prod_t = prod_{i<=t} mu_i;
              m, v as adam; m_hat = mu_{t+1} m/(1-prod_{t+1}) + (1-mu_t) g/(1-prod_t);
              w -= lr m_hat / (sqrt(v/(1-b2^t)) + eps)
"""

from __future__ import annotations

import math
from typing import Any

from .params import Param, Schema

ALGORITHMS = (
    "adadelta",
    "adagrad",
    "adam",
    "adamax",
    "inertia",
    "nadam",
    "nesterov",
    "rmsprop",
    "sgd",
)
ADAGRAD_INITIAL_ACCUMULATOR = 0.1
ADADELTA_RHO = 0.95
RMSPROP_RHO = 0.9

OPTIMIZER_SCHEMA = Schema(
    (
        Param(
            "algorithm",
            "choice",
            "adam",
            "Update rule of this layer's weights.",
            group="optimizer",
            choices=ALGORITHMS,
        ),
        Param(
            "learning_rate",
            "float",
            0.001,
            "Step size of each update.",
            group="optimizer",
            minimum=0.0,
        ),
        Param(
            "beta_1",
            "float",
            0.9,
            "Decay of the first-moment average (adam, adamax, nadam).",
            group="optimizer",
            minimum=0.0,
            maximum=1.0,
        ),
        Param(
            "beta_2",
            "float",
            0.999,
            "Decay of the second-moment average (adam, adamax, nadam).",
            group="optimizer",
            minimum=0.0,
            maximum=1.0,
        ),
        Param(
            "epsilon",
            "float",
            1e-7,
            "Small constant for numerical stability.",
            group="optimizer",
            minimum=0.0,
            exclusive_minimum=True,
        ),
        Param(
            "momentum",
            "float",
            0.9,
            "Velocity decay (inertia, nesterov).",
            group="optimizer",
            minimum=0.0,
            maximum=1.0,
        ),
    )
)

# Slots of state each algorithm keeps per weight, with their initial value.
_SLOTS: dict[str, tuple[tuple[str, float], ...]] = {
    "sgd": (),
    "inertia": (("velocity", 0.0),),
    "nesterov": (("velocity", 0.0),),
    "adagrad": (("accumulator", ADAGRAD_INITIAL_ACCUMULATOR),),
    "adadelta": (("accumulated_grad", 0.0), ("accumulated_delta", 0.0)),
    "rmsprop": (("velocity", 0.0),),
    "adam": (("m", 0.0), ("v", 0.0)),
    "adamax": (("m", 0.0), ("u", 0.0)),
    "nadam": (("m", 0.0), ("v", 0.0)),
}


class Optimizer:
    """Applies one algorithm to a fixed list of weights; owns the state (slots and step count)."""

    def __init__(self, config: dict[str, Any] | None, backend) -> None:
        self.config = OPTIMIZER_SCHEMA.validate(config, where="optimizer")
        self.backend = backend
        self.iterations = 0
        self.u_product = 1.0  # nadam's running product of momentum coefficients
        self.slots: list[dict[str, Any]] | None = None

    @property
    def algorithm(self) -> str:
        return self.config["algorithm"]

    def _ensure_slots(self, weights) -> None:
        if self.slots is None:
            xp = self.backend.xp
            self.slots = [
                {
                    name: xp.full(w.shape, init, dtype=w.dtype)
                    for name, init in _SLOTS[self.algorithm]
                }
                for w in weights
            ]

    def apply(self, weights: list, grads: list) -> None:
        """Update ``weights`` in place from ``grads`` (same order every call)."""
        self._ensure_slots(weights)
        c = self.config
        t = self.iterations + 1
        algo = self.algorithm
        step_const: dict[str, float] = {}
        if algo == "nadam":
            b1 = c["beta_1"]
            mu_t = b1 * (1.0 - 0.5 * 0.96**t)
            mu_next = b1 * (1.0 - 0.5 * 0.96 ** (t + 1))
            prod_t = self.u_product * mu_t
            step_const = {
                "mu_t": mu_t,
                "mu_next": mu_next,
                "prod_t": prod_t,
                "prod_next": prod_t * mu_next,
            }
            self.u_product = prod_t
        for w, g, slots in zip(weights, grads, self.slots):
            getattr(self, "_" + algo)(w, g, slots, t, step_const)
        self.iterations = t

    # Each rule updates w and its slots in place.
    def _sgd(self, w, g, s, t, k):
        w -= self.config["learning_rate"] * g

    def _inertia(self, w, g, s, t, k):
        v = s["velocity"]
        v *= self.config["momentum"]
        v -= self.config["learning_rate"] * g
        w += v

    def _nesterov(self, w, g, s, t, k):
        v = s["velocity"]
        lr, mom = self.config["learning_rate"], self.config["momentum"]
        v *= mom
        v -= lr * g
        w += mom * v - lr * g

    def _adagrad(self, w, g, s, t, k):
        a = s["accumulator"]
        a += g * g
        w -= self.config["learning_rate"] * g / self.backend.xp.sqrt(a + self.config["epsilon"])

    def _adadelta(self, w, g, s, t, k):
        xp, eps, rho = self.backend.xp, self.config["epsilon"], ADADELTA_RHO
        a, u = s["accumulated_grad"], s["accumulated_delta"]
        a *= rho
        a += (1 - rho) * g * g
        delta = -xp.sqrt(u + eps) / xp.sqrt(a + eps) * g
        u *= rho
        u += (1 - rho) * delta * delta
        w += self.config["learning_rate"] * delta

    def _rmsprop(self, w, g, s, t, k):
        v, rho = s["velocity"], RMSPROP_RHO
        v *= rho
        v += (1 - rho) * g * g
        w -= self.config["learning_rate"] * g / self.backend.xp.sqrt(v + self.config["epsilon"])

    def _adam(self, w, g, s, t, k):
        c = self.config
        m, v = s["m"], s["v"]
        alpha = c["learning_rate"] * math.sqrt(1 - c["beta_2"] ** t) / (1 - c["beta_1"] ** t)
        m += (g - m) * (1 - c["beta_1"])
        v += (g * g - v) * (1 - c["beta_2"])
        w -= alpha * m / (self.backend.xp.sqrt(v) + c["epsilon"])

    def _adamax(self, w, g, s, t, k):
        c, xp = self.config, self.backend.xp
        m, u = s["m"], s["u"]
        m += (g - m) * (1 - c["beta_1"])
        xp.maximum(c["beta_2"] * u, xp.abs(g), out=u)
        w -= c["learning_rate"] * m / ((1 - c["beta_1"] ** t) * (u + c["epsilon"]))

    def _nadam(self, w, g, s, t, k):
        c, xp = self.config, self.backend.xp
        m, v = s["m"], s["v"]
        m += (g - m) * (1 - c["beta_1"])
        v += (g * g - v) * (1 - c["beta_2"])
        m_hat = k["mu_next"] * m / (1 - k["prod_next"]) + (1 - k["mu_t"]) * g / (1 - k["prod_t"])
        v_hat = v / (1 - c["beta_2"] ** t)
        w -= c["learning_rate"] * m_hat / (xp.sqrt(v_hat) + c["epsilon"])

    # ------------------------------------------------------------------ state
    def get_state(self) -> dict[str, Any]:
        """Plain state: step count, nadam's product and each weight's slots as NumPy arrays."""
        state: dict[str, Any] = {"iterations": self.iterations, "u_product": self.u_product}
        for i, slots in enumerate(self.slots or []):
            for name, arr in slots.items():
                state[f"{i}/{name}"] = self.backend.to_numpy(arr).copy()
        return state

    def set_state(self, state: dict[str, Any], weights: list) -> None:
        self.iterations = int(state["iterations"])
        self.u_product = float(state["u_product"])
        self.slots = None
        if any(k for k in state if "/" in k):
            self._ensure_slots(weights)
            for i, slots in enumerate(self.slots):
                for name in slots:
                    slots[name][...] = self.backend.asarray(state[f"{i}/{name}"])
