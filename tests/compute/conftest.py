"""Fixtures and import paths for the compute tests."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
for p in (str(ROOT), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)


@pytest.fixture
def rng():
    return np.random.default_rng(20261124)


def pytest_terminal_summary(terminalreporter):
    import reference

    if reference.TORCH_ERRORS:
        err, rel, i = max(reference.TORCH_ERRORS)
        worst_rel = max(r for _, r, _ in reference.TORCH_ERRORS)
        terminalreporter.write_line(
            f"PyTorch oracle: {len(reference.TORCH_ERRORS)} configs, max abs error {err:.3g} "
            f"(config {i}), max relative error {worst_rel:.3g}"
        )


@pytest.fixture(params=["compiled", "flat"])
def cpu_path(request, monkeypatch):
    """Run a test on the compiled CPU kernels (when Numba is there) and on the array-module path."""
    from conv3dt_studio.compute import cpu_kernels

    if request.param == "flat":
        monkeypatch.setattr(cpu_kernels, "AVAILABLE", False)
    return request.param


@pytest.fixture
def flat_path(monkeypatch):
    """The array-module path only (dtype-generic: float64 works)."""
    from conv3dt_studio.compute import cpu_kernels

    monkeypatch.setattr(cpu_kernels, "AVAILABLE", False)
