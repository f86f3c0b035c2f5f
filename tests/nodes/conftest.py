"""Fixtures for the nodes tests: small graphs that run in milliseconds."""

from __future__ import annotations

import pytest
from small_graphs import SMALL_SAMPLE, small_doc  # noqa: F401 - shared with the app tests


@pytest.fixture
def doc():
    return small_doc()
