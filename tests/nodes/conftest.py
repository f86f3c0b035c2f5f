"""Fixtures for the nodes tests: small graphs that run in milliseconds."""

from __future__ import annotations

import pytest

from conv3dt_studio.nodes.examples import toolkit_example  # noqa: E402

SMALL_SAMPLE = (2, 2, 8, 8, 3)  # (time, channels, d1, d2, d3), channels_first


def small_doc(conv: dict | None = None, batch: int = 2, **data):
    """The toolkit graph with tiny shapes: Data (batch, 2, 2, 8, 8, 3)."""
    return toolkit_example(
        conv,
        data={"batch_size": batch, "sample_shape": list(SMALL_SAMPLE), **data},
        input_shape=SMALL_SAMPLE,
    )


@pytest.fixture
def make_doc():
    """``make_doc(conv=None, batch=2, **data_params)`` -> a small toolkit graph."""
    return small_doc


@pytest.fixture
def doc():
    return small_doc()
