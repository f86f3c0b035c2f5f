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
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import cuda_kernels
from .backend import Array, Backend
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
            exclusive_maximum=True,  # 1 divides by zero in the bias correction
        ),
        Param(
            "beta_2",
            "float",
            0.999,
            "Decay of the second-moment average (adam, adamax, nadam).",
            group="optimizer",
            minimum=0.0,
            maximum=1.0,
            exclusive_maximum=True,  # 1 divides by zero in the bias correction
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


# The same rules in CUDA C for the fused GPU update (:func:`compute.cuda_kernels.fused_update`):
# statements on the floats ``w`` and the slots (named as in _SLOTS) from ``g`` and the constants of
# Optimizer.constants, in the NumPy rules' order of operations.
CUDA_RULES: dict[str, str] = {
    "sgd": "w -= lr * g;",
    "inertia": "velocity = velocity * momentum; velocity -= lr * g; w += velocity;",
    "nesterov": "velocity = velocity * momentum; velocity -= lr * g; "
    "w += momentum * velocity - lr * g;",
    "adagrad": "accumulator += g * g; w -= lr * g / sqrtf(accumulator + epsilon);",
    "adadelta": "accumulated_grad = accumulated_grad * rho + one_minus_rho * g * g; "
    "float delta = -sqrtf(accumulated_delta + epsilon) / sqrtf(accumulated_grad + epsilon) * g; "
    "accumulated_delta = accumulated_delta * rho + one_minus_rho * delta * delta; "
    "w += lr * delta;",
    "rmsprop": "velocity = velocity * rho + one_minus_rho * g * g; "
    "w -= lr * g / sqrtf(velocity + epsilon);",
    "adam": "m += (g - m) * one_minus_beta_1; v += (g * g - v) * one_minus_beta_2; "
    "w -= alpha * m / (sqrtf(v) + epsilon);",
    "adamax": "m += (g - m) * one_minus_beta_1; u = fmaxf(beta_2 * u, fabsf(g)); "
    "w -= lr * m / (bias_1 * (u + epsilon));",
    "nadam": "m += (g - m) * one_minus_beta_1; v += (g * g - v) * one_minus_beta_2; "
    "float m_hat = mu_next * m / one_minus_prod_next + one_minus_mu_t * g / one_minus_prod_t; "
    "float v_hat = v / bias_2; w -= lr * m_hat / (sqrtf(v_hat) + epsilon);",
}


# Elements per range of the compiled Adam update on the threads (any split gives the same bits).
UPDATE_BLOCK = 2**15


def _compiled_adam(w: Array, g: Array, m: Array, v: Array, k: dict[str, float]) -> bool:
    """Adam's update in one compiled pass on the threads (:func:`compute.cpu_kernels.
    adam_update`, the bits of the NumPy rule) where it applies: compiled kernels, and NumPy
    float32 arrays, C-contiguous, of one shape. False elsewhere (the NumPy rule runs)."""
    from . import cpu_kernels

    arrays = (w, g, m, v)
    if not cpu_kernels.takes_in_place(*arrays) or not w.flags.writeable:
        return False
    flat = [a.reshape(-1) for a in arrays]
    c = (k["one_minus_beta_1"], k["one_minus_beta_2"], k["alpha"], k["epsilon"])
    n = w.size
    cpu_kernels.run_chunks(
        cpu_kernels.adam_update,
        n,
        cpu_kernels.ranges_for(-(-n // UPDATE_BLOCK)),
        lambda j, a, b: (*flat, *c, a, b),
    )
    return True


class Optimizer:
    """Applies one algorithm to a fixed list of weights; owns the state (slots and step count).

    On the ``cupy`` backend a step is one fused kernel launch over all the weights; elsewhere the
    NumPy rules below run per weight. Both read the step's scalars from :meth:`constants`."""

    def __init__(self, config: dict[str, Any] | None, backend: Backend) -> None:
        self.config = OPTIMIZER_SCHEMA.validate(config, where="optimizer")
        self.backend = backend
        self.iterations = 0
        self.u_product = 1.0  # nadam's running product of momentum coefficients
        self.slots: list[dict[str, Array]] | None = None  # per weight, made on the first step

    @property
    def algorithm(self) -> str:
        return self.config["algorithm"]

    def _ensure_slots(self, weights: Sequence[Array]) -> list[dict[str, Array]]:
        """The slots, made now (at their initial values) for ``weights`` if there are none."""
        if self.slots is None:
            xp = self.backend.xp
            self.slots = [
                {
                    name: xp.full(w.shape, init, dtype=w.dtype)
                    for name, init in _SLOTS[self.algorithm]
                }
                for w in weights
            ]
        return self.slots

    def constants(self, t: int) -> dict[str, float]:
        """The scalars of step ``t`` (1-based), in float64; nadam's also need ``u_product`` (the
        product of its momentum coefficients up to step ``t - 1``)."""
        c = self.config
        b1, b2 = c["beta_1"], c["beta_2"]
        rho = ADADELTA_RHO if self.algorithm == "adadelta" else RMSPROP_RHO
        mu_t = b1 * (1.0 - 0.5 * 0.96**t)
        mu_next = b1 * (1.0 - 0.5 * 0.96 ** (t + 1))
        prod_t = self.u_product * mu_t
        return {
            "lr": c["learning_rate"],
            "momentum": c["momentum"],
            "epsilon": c["epsilon"],
            "rho": rho,
            "one_minus_rho": 1 - rho,
            "beta_2": b2,
            "one_minus_beta_1": 1 - b1,
            "one_minus_beta_2": 1 - b2,
            "bias_1": 1 - b1**t,
            "bias_2": 1 - b2**t,
            "alpha": c["learning_rate"] * math.sqrt(1 - b2**t) / (1 - b1**t),
            "one_minus_mu_t": 1 - mu_t,
            "mu_next": mu_next,
            "one_minus_prod_t": 1 - prod_t,
            "one_minus_prod_next": 1 - prod_t * mu_next,
            "prod_t": prod_t,
        }

    def apply(self, weights: Sequence[Array], grads: Sequence[Array]) -> None:
        """Update ``weights`` in place from ``grads`` (same order every call)."""
        slots = self._ensure_slots(weights)
        t = self.iterations + 1
        algo = self.algorithm
        k = self.constants(t)
        if self.backend.name == "cupy":
            groups = [(w, g, *s.values()) for w, g, s in zip(weights, grads, slots)]
            names = tuple(name for name, _ in _SLOTS[algo])
            cuda_kernels.fused_update(
                self.backend.xp, f"update_{algo}", CUDA_RULES[algo], names, k, groups
            )
        else:
            for w, g, s in zip(weights, grads, slots):
                getattr(self, "_" + algo)(w, g, s, k)
        if algo == "nadam":
            self.u_product = k["prod_t"]
        self.iterations = t

    # Each rule updates w and its slots in place; k holds the step's constants.
    def _sgd(self, w: Array, g: Array, s: dict[str, Array], k: dict[str, float]) -> None:
        w -= k["lr"] * g

    def _inertia(self, w: Array, g: Array, s: dict[str, Array], k: dict[str, float]) -> None:
        v = s["velocity"]
        v *= k["momentum"]
        v -= k["lr"] * g
        w += v

    def _nesterov(self, w: Array, g: Array, s: dict[str, Array], k: dict[str, float]) -> None:
        v = s["velocity"]
        v *= k["momentum"]
        v -= k["lr"] * g
        w += k["momentum"] * v - k["lr"] * g

    def _adagrad(self, w: Array, g: Array, s: dict[str, Array], k: dict[str, float]) -> None:
        a = s["accumulator"]
        a += g * g
        w -= k["lr"] * g / self.backend.xp.sqrt(a + k["epsilon"])

    def _adadelta(self, w: Array, g: Array, s: dict[str, Array], k: dict[str, float]) -> None:
        xp, eps = self.backend.xp, k["epsilon"]
        a, u = s["accumulated_grad"], s["accumulated_delta"]
        a *= k["rho"]
        a += k["one_minus_rho"] * g * g
        delta = -xp.sqrt(u + eps) / xp.sqrt(a + eps) * g
        u *= k["rho"]
        u += k["one_minus_rho"] * delta * delta
        w += k["lr"] * delta

    def _rmsprop(self, w: Array, g: Array, s: dict[str, Array], k: dict[str, float]) -> None:
        v = s["velocity"]
        v *= k["rho"]
        v += k["one_minus_rho"] * g * g
        w -= k["lr"] * g / self.backend.xp.sqrt(v + k["epsilon"])

    def _adam(self, w: Array, g: Array, s: dict[str, Array], k: dict[str, float]) -> None:
        m, v = s["m"], s["v"]
        if _compiled_adam(w, g, m, v, k):
            return
        m += (g - m) * k["one_minus_beta_1"]
        v += (g * g - v) * k["one_minus_beta_2"]
        w -= k["alpha"] * m / (self.backend.xp.sqrt(v) + k["epsilon"])

    def _adamax(self, w: Array, g: Array, s: dict[str, Array], k: dict[str, float]) -> None:
        xp = self.backend.xp
        m, u = s["m"], s["u"]
        m += (g - m) * k["one_minus_beta_1"]
        xp.maximum(k["beta_2"] * u, xp.abs(g), out=u)
        w -= k["lr"] * m / (k["bias_1"] * (u + k["epsilon"]))

    def _nadam(self, w: Array, g: Array, s: dict[str, Array], k: dict[str, float]) -> None:
        m, v = s["m"], s["v"]
        m += (g - m) * k["one_minus_beta_1"]
        v += (g * g - v) * k["one_minus_beta_2"]
        m_hat = (
            k["mu_next"] * m / k["one_minus_prod_next"]
            + k["one_minus_mu_t"] * g / k["one_minus_prod_t"]
        )
        v_hat = v / k["bias_2"]
        w -= k["lr"] * m_hat / (self.backend.xp.sqrt(v_hat) + k["epsilon"])

    # ------------------------------------------------------------------ state
    def _check_unrecorded(self, state: dict[str, Any]) -> None:
        """A state saved before the algorithm was recorded: where slot names are shared, refuse
        what this algorithm could not have produced (ValueError)."""
        velocity = [v for k, v in state.items() if k.endswith("/velocity")]
        if self.algorithm == "rmsprop" and any((np.asarray(v) < 0).any() for v in velocity):
            raise ValueError("a negative velocity is momentum's, not rmsprop's mean square")
        steps, product = int(state["iterations"]), float(state["u_product"])
        if self.algorithm == "nadam" and steps > 0 and product == 1.0:
            raise ValueError("nadam's momentum product is still 1 after steps: adam's state")
        if self.algorithm == "adam" and product != 1.0:
            raise ValueError("a momentum product other than 1 is nadam's, not adam's")

    def get_state(self) -> dict[str, Any]:
        """Plain state: step count, nadam's product and each weight's slots as NumPy arrays."""
        state: dict[str, Any] = {
            "algorithm": self.algorithm,
            "iterations": self.iterations,
            "u_product": self.u_product,
        }
        for i, slots in enumerate(self.slots or []):
            for name, arr in slots.items():
                state[f"{i}/{name}"] = self.backend.to_numpy(arr).copy()
        return state

    def set_state(self, state: dict[str, Any], weights: Sequence[Array]) -> None:
        """Resume from :meth:`get_state`; a state saved by another algorithm (``algorithm``
        differs, even where slot names agree: momentum's velocity is no mean square) raises
        ValueError. States saved before the algorithm was recorded are checked by slot names."""
        saved = state.get("algorithm")
        if saved is not None and str(saved) != self.algorithm:
            raise ValueError(f"optimizer state of `{saved}`, this layer uses `{self.algorithm}`")
        if saved is None:
            self._check_unrecorded(state)
        self.iterations = int(state["iterations"])
        self.u_product = float(state["u_product"])
        self.slots = None
        if any(k for k in state if "/" in k):
            for i, slots in enumerate(self._ensure_slots(weights)):
                for name in slots:
                    slots[name][...] = self.backend.asarray(state[f"{i}/{name}"])
