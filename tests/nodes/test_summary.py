"""The model summary: parameter counts against PyTorch's ConvTranspose3d, multiply-adds and
activation memory counted by hand, totals, and problems."""

from __future__ import annotations

import math

import pytest
import torch  # in the test extra: a missing torch fails, never skips
from small_graphs import SMALL_SAMPLE, small_doc

from conv3dt_studio.nodes import DocumentProblems
from conv3dt_studio.nodes.summary import model_summary, summary_text

CONVS = [
    {},
    {"n_filters": 4, "size": [2, 3, 1], "use_bias": False},
    {"n_filters": 2, "stride": [2, 2, 2], "padding": True},
    {"n_filters": 5, "dilation_rate": [2, 1, 2], "data_format": "channels_last"},
]


def _torch_params(in_channels: int, conv: dict) -> int:
    layer = torch.nn.ConvTranspose3d(
        in_channels,
        conv.get("n_filters", 3),
        tuple(conv.get("size", [3, 3, 3])),
        bias=conv.get("use_bias", True),
    )
    return sum(p.numel() for p in layer.parameters())


@pytest.mark.parametrize("conv", CONVS)
def test_parameters_match_pytorchs_conv_transpose_3d(conv):
    summary = model_summary(small_doc(conv))
    cf = conv.get("data_format", "channels_first") == "channels_first"
    channels = SMALL_SAMPLE[1] if cf else SMALL_SAMPLE[-1]
    assert summary.rows[1].params == _torch_params(channels, conv)
    assert summary.total_params == summary.rows[1].params  # the Input has none


def test_multiply_adds_are_input_elements_times_taps_times_filters():
    # batch 2, time 2, 2 channels, 8x8x3 voxels; 3 filters of 3x3x3 taps
    assert model_summary(small_doc()).rows[1].macs == (2 * 2 * 2 * 8 * 8 * 3) * 27 * 3


def test_for_stride_1_same_they_are_output_voxels_times_taps_times_in_channels():
    summary = model_summary(small_doc({"padding": True, "n_filters": 4}))
    out = summary.rows[1].output_shape  # (2, 2, 4, 8, 8, 3)
    assert out == (2, 2, 4, 8, 8, 3)
    assert summary.rows[1].macs == math.prod(out) * 27 * 2


def test_activation_memory_is_each_float32_output():
    summary = model_summary(small_doc())
    assert [r.activation_bytes for r in summary.rows] == [
        4 * 2 * math.prod(SMALL_SAMPLE),
        4 * 2 * 2 * 3 * 10 * 10 * 5,
    ]
    assert summary.activation_bytes == sum(r.activation_bytes for r in summary.rows)


def test_a_chain_of_two_layers_sums_them_and_counts_frozen_ones_apart():
    doc = small_doc()
    doc.add_node("conv3d_transpose", {"n_filters": 2, "update": False}, node_id="conv_2")
    doc.add_node("time_distributed", {}, node_id="td_2")
    doc.disconnect("time_distributed", "y", "prediction_6d", "x")
    doc.connect("time_distributed", "y", "td_2", "x")
    doc.connect("conv_2", "layer", "td_2", "layer")
    doc.connect("td_2", "y", "prediction_6d", "x")
    summary = model_summary(doc)
    assert [r.node for r in summary.rows] == ["input", "time_distributed", "td_2"]
    second = _torch_params(3, {"n_filters": 2})
    assert summary.rows[2].params == second and not summary.rows[2].trainable
    assert summary.non_trainable_params == second
    assert summary.trainable_params == _torch_params(2, {})
    assert summary.rows[2].macs == math.prod(summary.rows[1].output_shape) * 27 * 2


def test_the_text_is_a_keras_style_table():
    text = summary_text(model_summary(small_doc()))
    lines = text.splitlines()
    assert lines[0] == 'Model: "prediction_6d"'
    assert " ".join(lines[2].split()) == "Layer (type) Output shape Param # Mult-adds Activations"
    assert "conv3d_transpose (TimeDistributed(Conv3DTranspose))" in text
    assert "Total params: 165 (660 B)" in text  # 27 * 2 * 3 + 3


def test_a_chain_with_problems_is_refused_with_them():
    doc = small_doc()
    doc.disconnect("input", "y", "time_distributed", "x")
    with pytest.raises(DocumentProblems) as info:
        model_summary(doc)
    assert any(p.node == "time_distributed" for p in info.value.problems)
