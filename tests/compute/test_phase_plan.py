"""The phase plan's named columns (``D_*`` of ``dims``, ``PH_*`` of ``ph``) hold what their names
say: the compiled kernels read the plan through these names only."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from conv3dt_studio.compute import conv3d_transpose_ops as ops

# (spatial in, size, stride, dilation, same): W1's family, W2's, and one mixed per axis
CASES = [
    ((5, 6, 3), (3, 3, 3), (1, 1, 1), (1, 1, 1), False),
    ((4, 3, 5), (3, 3, 3), (2, 2, 2), (1, 1, 1), True),
    ((3, 4, 5), (2, 3, 1), (3, 2, 1), (2, 1, 3), True),
]
C, F = 4, 7


def _plan(case):
    return ops.Geometry.of(*case), ops.phase_plan(ops.Geometry.of(*case), C, F)


def _columns(prefix):
    return [v for k, v in vars(ops).items() if k.startswith(prefix) and not k.endswith("_LEN")]


@pytest.mark.parametrize("prefix, width", [("D_", ops.DIMS_LEN), ("PH_", ops.PH_LEN)])
def test_column_names_name_each_column_once(prefix, width):
    assert sorted(_columns(prefix)) == list(range(width))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_dims_columns_hold_their_named_values(case):
    geom, plan = _plan(case)
    axes = [geom.axes[i] for i in plan.perm]
    d = plan.dims
    assert d.shape == (ops.DIMS_LEN,)
    assert (d[ops.D_C], d[ops.D_F]) == (C, F)
    assert list(d[ops.D_IN0 : ops.D_IN2 + 1]) == [a.in_len for a in axes]
    assert list(d[ops.D_OUT0 : ops.D_OUT2 + 1]) == [a.out_len for a in axes]
    assert list(d[ops.D_S0 : ops.D_S2 + 1]) == [a.stride for a in axes]
    assert d[ops.D_PLANE] % d[ops.D_G2] == 0
    assert d[ops.D_LEAD] == plan.toff.max()
    assert d[ops.D_XQ] == (d[ops.D_IN1] - 1) * d[ops.D_G2] + d[ops.D_IN2]
    assert d[ops.D_M0] == plan.ph[:, ops.PH_N0].max()


@pytest.mark.parametrize("case", CASES, ids=str)
def test_ph_columns_split_the_taps_by_residue(case):
    _, plan = _plan(case)
    ph = plan.ph
    assert ph.shape[1] == ops.PH_LEN
    strides = plan.dims[ops.D_S0 : ops.D_S2 + 1]
    residues = [tuple(row) for row in ph[:, ops.PH_R0 : ops.PH_R2 + 1]]
    assert residues == list(itertools.product(*(range(s) for s in strides)))
    for p, row in enumerate(ph):  # taps sorted by phase: each row names its own stretch
        taps = plan.tph[row[ops.PH_FIRST] : row[ops.PH_FIRST] + row[ops.PH_COUNT]]
        assert (taps == p).all() and len(taps) == np.count_nonzero(plan.tph == p)
