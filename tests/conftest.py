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


@pytest.fixture(autouse=True)
def _collect_on_the_main_thread():
    """Once an editor window exists, automatic garbage collection is off (the editor collects on
    the GUI thread, from a timer that fires only in an event loop): after each test, collect
    what is due on the main thread, so garbage does not pile up over tests that run no loop."""
    yield
    gui_gc = sys.modules.get("conv3dt_studio.app.editor.gui_gc")
    if gui_gc is not None:
        gui_gc.collect_due()


@pytest.fixture
def make_doc():
    """``make_doc(conv=None, batch=2, **data_params)`` -> a small toolkit graph."""
    return small_doc
