"""Property-based check of the compiled CPU kernels against the plain "flat offset" reference on
random layers: any spatial size (rows shorter and longer than a vector), kernel size, stride,
dilation, padding, channel and filter counts (partial filter groups and channel vectors, the
channels-last kernel gradient from 12 channels), batch (shared samples between threads), both
data layouts, bias and relu. Forward, input gradient, kernel gradient and relu's backward fused
with the bias gradient."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conv3dt_studio.compute import conv3d_transpose_ops as ops
from conv3dt_studio.compute import cpu_kernels

pytestmark = pytest.mark.skipif(not cpu_kernels.AVAILABLE, reason="the compiled kernels")

axis = st.tuples(
    st.integers(1, 19),  # input length: rows of one vector or more, and shorter
    st.integers(1, 4),  # kernel size
    st.integers(1, 3),  # stride
    st.integers(1, 2),  # dilation
)
layers = st.fixed_dictionaries(
    {
        "axes": st.tuples(axis, axis, axis),
        "same": st.booleans(),
        "n": st.integers(1, 3),
        "c": st.sampled_from([1, 3, 5, 12, 16, 17, 24, 33]),
        "f": st.sampled_from([1, 2, 4, 5, 8, 9, 16, 19]),
        "channels_last": st.booleans(),
        "seed": st.integers(0, 2**16),
    }
)


def _close(got, want):
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=3e-6 * scale)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layers)
def test_compiled_kernels_equal_the_reference_on_random_layers(layer):
    ins, sizes, strides, dilations = zip(*layer["axes"])
    if np.prod(ins) * layer["c"] * layer["n"] > 60_000:  # keep each example quick
        ins = tuple(min(i, 6) for i in ins)
    geom = ops.Geometry.of(ins, sizes, strides, dilations, layer["same"])
    n, c, f = layer["n"], layer["c"], layer["f"]
    rng = np.random.default_rng(layer["seed"])
    x = rng.standard_normal((n, c, *ins), dtype=np.float32)
    kernel = rng.standard_normal((*sizes, f, c), dtype=np.float32)
    bias = rng.standard_normal(f).astype(np.float32)
    dy = rng.standard_normal((n, f, *geom.out_shape), dtype=np.float32)

    want = np.maximum(ops._flat_forward(np, x, kernel, geom) + bias.reshape(-1, 1, 1, 1), 0)
    got = ops._compiled_forward(x, kernel, geom, layer["channels_last"], bias, relu=True)
    _close(got, want)
    _close(
        ops._compiled_backward_input(dy, kernel, geom),
        ops._flat_backward_input(np, dy, kernel, geom),
    )
    _close(
        ops._compiled_backward_kernel(x, dy, geom, kernel.shape),
        ops._flat_backward_kernel(np, x, dy, geom, kernel.shape),
    )
    dz, db = ops.relu_backward(np, want, dy, True, True)
    _close(dz, dy * (want > 0))
    _close(db, (dy * (want > 0)).astype(np.float64).sum(axis=(0, 2, 3, 4)))  # exact-ish sums
