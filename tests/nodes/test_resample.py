"""The Resample node: crop/pad then integer shrink by mean or stride, on the data path of runs and
trainings (Data -> Resample -> Input, Data -> Resample -> Loss target), and the upsample_2x
example learning better than the nearest-neighbour baseline."""

from __future__ import annotations

import numpy as np
import pytest

from conv3dt_studio import nodes
from conv3dt_studio.nodes import resample
from conv3dt_studio.nodes.examples import upsample_2x
from conv3dt_studio.nodes.runner import load_data
from conv3dt_studio.nodes.training import nearest_baseline, train_document, train_plan


def _params(**kw):
    return nodes.NODE_TYPES["resample"].schema.validate(kw)


X = np.arange(2 * 1 * 4 * 4 * 5, dtype=np.float32).reshape(2, 1, 1, 4, 4, 5)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            {"factors": [1, 1, 2, 2, 2], "method": "mean"},
            X[..., :4].reshape(2, 1, 1, 2, 2, 2, 2, 2, 2).mean(axis=(4, 6, 8)),
        ),
        ({"factors": [1, 1, 2, 2, 2], "method": "stride"}, X[:, :, :, ::2, ::2, ::2]),
        (
            {"factors": [1, 1, 1, 1, 1], "crop_pad": True, "shape": [1, 1, 3, 4, 6]},
            np.pad(X[:, :, :, :3], [(0, 0)] * 5 + [(0, 1)]),
        ),
    ],
)
def test_resample_values(params, expected):
    p = _params(**params)
    y = resample.resample(p, X)
    np.testing.assert_allclose(y, expected)
    assert y.shape == resample.resampled_shape(p, X.shape)


def test_nearest_upsampling_undoes_a_stride_shrink_of_repeated_values():
    x = np.random.default_rng(0).random((1, 2, 1, 3, 3, 3), dtype=np.float32)
    up = resample.nearest_upsampled(x, (1, 1, 2, 2, 2))
    assert up.shape == (1, 2, 1, 6, 6, 6)
    np.testing.assert_array_equal(resample.resample(_params(method="stride"), up), x)


def _resampled_doc(**resample_params):
    doc = upsample_2x()
    doc.nodes["data"].params["batch_size"] = 8
    doc.nodes["resample"].params.update(resample_params)
    return doc


@pytest.mark.parametrize(
    ("params", "param", "message"),
    [
        ({"factors": [2, 2, 2]}, "factors", "expected 5 integers, one per sample axis"),
        ({"crop_pad": True, "shape": [4, 1, 16]}, "shape", "expected 5 integers"),
        ({"factors": [1, 1, 32, 2, 2]}, "factors", "at most its axis's length"),
    ],
)
def test_factors_and_shape_must_fit_the_data(params, param, message):
    problems = nodes.validate(_resampled_doc(**params)).problems_of("resample")
    assert [p.param for p in problems] == [param] and message in problems[0].message


def test_a_teacher_target_cannot_be_resampled():
    doc = _resampled_doc()
    doc.add_node("target", {"source": "teacher"})
    doc.add_node("resample", {}, node_id="resample_2")
    doc.connect("target", "data", "resample_2", "x")
    problems = nodes.validate(doc).problems_of("resample_2")
    assert [p.param for p in problems] == ["x"] and "teacher" in problems[0].message


def test_the_input_and_the_target_come_from_one_source_through_the_resample():
    doc = _resampled_doc()
    tp = train_plan(doc)
    assert (tp.run.data_node, tp.run.transforms, tp.target_node) == ("data", ["resample"], "data")
    original = load_data(doc, "data")
    np.testing.assert_allclose(
        load_data(doc, "resample"), resample.resample(doc.params("resample"), original)
    )
    assert tp.run.input_shape == (8, 4, 1, 8, 8, 8) and tp.run.source_shape == original.shape


def test_upsample_2x_learns_below_the_nearest_neighbour_baseline():
    result = train_document(upsample_2x(), backend="numpy", epochs=30)
    assert result.baseline is not None
    assert result.history["val_loss"][-1] < 0.6 * result.baseline


def test_the_baseline_is_the_loss_of_repeating_each_voxel():
    doc = _resampled_doc()
    tp = train_plan(doc)
    y = load_data(doc, "data")
    x = load_data(doc, "resample")
    up = resample.nearest_upsampled(x, (1, 1, 2, 2, 2))
    expected = float(np.mean((up[6:] - y[6:]) ** 2, dtype=np.float64))
    assert nearest_baseline(doc, tp, x, y, 0.25) == pytest.approx(expected, rel=1e-5)


def test_no_baseline_without_a_resample():
    from conv3dt_studio.nodes.examples import teacher_student

    result = train_document(teacher_student(), backend="numpy", epochs=1)
    assert result.baseline is None


def test_given_data_replaces_the_source_before_the_resample():
    doc = _resampled_doc()
    data = np.ones((4, 4, 1, 16, 16, 16), np.float32)
    result = train_document(doc, backend="numpy", epochs=1, data=data)
    assert result.baseline == pytest.approx(0.0)  # a constant is upsampled exactly
