"""The error function, for the exact GELU, without SciPy.

NumPy has no ``erf``. With Numba (:mod:`conv3dt_studio.compute.cpu_kernels`) each element goes
through the C library's ``erf``, compiled. Without it, a Chebyshev form evaluated in float64:

    erfc(z) = t * exp(-z**2 + P(2t - 1)),   t = 2 / (2 + z),   z = |x| >= 0,
    erf(x)  = sign(x) * (1 - erfc(|x|))

(below |x| = 0.5 the Maclaurin series instead, so that small arguments keep their relative
precision), where ``P`` is the degree-18 Chebyshev interpolant of ``log(erfc(z) / t) + z**2`` (a smooth
function of ``u = 2t - 1`` on (-1, 1], finite as z grows) at the 19 Chebyshev nodes, computed with
mpmath at 40 digits; its absolute error in ``erf`` is below 2e-12 everywhere
(tests/compute/test_special.py checks it against ``math.erf``).
"""

from __future__ import annotations

import math

import numpy as np

from .backend import DTYPE

SERIES_BELOW = 0.5
_CHEBYSHEV = np.array(
    [
        -0.6513268598908546,
        0.6419697923564903,
        0.019476473204185833,
        -0.0095615147868084,
        -0.000946595344481846,
        0.00036683949785298544,
        4.252332480705386e-05,
        -2.0278578112439408e-05,
        -1.6242900048719444e-06,
        1.3036558356290773e-06,
        1.562644190835092e-08,
        -8.523809556424433e-08,
        6.5290546861517675e-09,
        5.059343533170394e-09,
        -9.91362316971587e-10,
        -2.2737190428088864e-10,
        9.64679161606681e-11,
        2.5067903825032478e-12,
        -7.199500506824685e-12,
    ]
)


def erf_numpy(x: np.ndarray) -> np.ndarray:
    """``erf`` of any real array, in float64, with NumPy alone."""
    x = np.asarray(x, dtype=np.float64)
    z = np.abs(x)
    zc = np.minimum(z, 27.0)  # erfc(27) underflows to 0: no overflow in zc**2 beyond it
    t = 2.0 / (2.0 + zc)
    u = 2.0 * t - 1.0
    # Clenshaw's recurrence for sum(c_k T_k(u))
    b1 = np.zeros_like(u)
    b2 = np.zeros_like(u)
    for c in _CHEBYSHEV[:0:-1]:
        b1, b2 = 2.0 * u * b1 - b2 + c, b1
    series = u * b1 - b2 + _CHEBYSHEV[0]
    large = 1.0 - t * np.exp(series - zc * zc)
    # erf(z) = 2/sqrt(pi) * sum((-1)**n z**(2n+1) / (n! (2n+1))): 12 terms reach 1e-17 at 0.5
    s = np.minimum(z, SERIES_BELOW)
    s2 = s * s
    term = s.copy()
    small = s.copy()
    for n in range(1, 13):
        term *= -s2 / n
        small += term / (2 * n + 1)
    small *= 2.0 / math.sqrt(math.pi)
    return np.copysign(np.where(z < SERIES_BELOW, small, large), x)


def erf(x: np.ndarray) -> np.ndarray:
    """``erf`` of a NumPy array as float32: the compiled kernel where Numba runs, else
    :func:`erf_numpy`."""
    from . import cpu_kernels  # noqa: PLC0415 - importing Numba takes a while: on first use

    if cpu_kernels.AVAILABLE:
        return cpu_kernels.erf(np.asarray(x, dtype=DTYPE))
    return erf_numpy(x).astype(DTYPE)
