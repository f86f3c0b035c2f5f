"""Options for the whole suite."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from small_graphs import small_doc


def pytest_addoption(parser):
    parser.addoption(
        "--emulated-gpu",
        action="store_true",
        help="where no GPU answers, run the gpu-marked tests on the CPU emulation of our CUDA "
        "kernels (tests/compute/fake_cupy.py) instead of skipping them",
    )


@pytest.fixture(scope="session", autouse=True)
def _emulated_gpu(request, tmp_path_factory):
    """With --emulated-gpu and no working CuPy, ``get_backend("cupy")`` returns the stand-in."""
    from conv3dt_studio.compute import backend

    if not request.config.getoption("--emulated-gpu") or isinstance(
        backend._cupy_backend(), backend.Backend
    ):
        yield
        return
    sys.path.insert(0, str(Path(__file__).parent / "compute"))
    from fake_cupy import emulated_gpu

    real = backend._cupy_backend
    with emulated_gpu(tmp_path_factory.mktemp("emulated_gpu")) as fake:
        backend._cupy_backend = lambda: fake
        try:
            yield
        finally:
            backend._cupy_backend = real


@pytest.fixture
def make_doc():
    """``make_doc(conv=None, batch=2, **data_params)`` -> a small toolkit graph."""
    return small_doc
