"""The whole ``cupy`` code path, run on the CPU through :mod:`fake_cupy` (CuPy's array semantics,
our CUDA kernels under the CPU emulation of :mod:`cuda_emulation`).

A Graph on that backend must give what the same Graph gives on NumPy: predictions, training
(forward, backward through the CUDA kernels, the fused optimizer update), ``fit`` and the state
round trip; and no device array may leak to where NumPy is expected. The ``gpu``-marked tests run
the same path on a real GPU when one answers.
"""

from __future__ import annotations

import fake_cupy
import numpy as np
import pytest

from conv3dt_studio.compute import Conv3DTranspose, Graph, Input, TimeDistributed
from conv3dt_studio.compute.backend import NUMPY

# Small shapes: the emulation runs every CUDA thread on the CPU.
SHAPE = (2, 2, 2, 3, 2, 3)  # batch, time, channels, d1, d2, d3 (channels_first)

CONFIGS = [
    {
        "n_filters": 2,
        "activation": "relu",
        "optimizer": {"algorithm": "adam", "learning_rate": 0.05},
    },
    {
        "n_filters": 3,
        "size": [2, 3, 2],
        "stride": [2, 1, 2],
        "padding": True,
        "activation": "gelu",  # the backend's erf (cupyx.scipy.special on CuPy)
        "optimizer": {"algorithm": "nadam", "learning_rate": 0.05},
    },
    {
        "n_filters": 1,
        "dilation_rate": [2, 1, 1],
        "data_format": "channels_last",
        "use_bias": False,
        "activation": "tanh",
        "optimizer": {"algorithm": "rmsprop", "learning_rate": 0.01},
    },
]


@pytest.fixture(scope="module")
def fake_gpu(tmp_path_factory):
    with fake_cupy.emulated_gpu(tmp_path_factory.mktemp("fake_cupy")) as backend:
        yield backend


def _data(config, seed=0):
    rng = np.random.default_rng(seed)
    shape = SHAPE
    if config.get("data_format") == "channels_last":
        shape = SHAPE[:2] + SHAPE[3:] + SHAPE[2:3]
    return rng.standard_normal(shape, dtype=np.float32)


def _graph(backend, config):
    shape = _data(config).shape[1:]
    return Graph([Input(shape=shape), TimeDistributed(Conv3DTranspose(**config))], backend, seed=5)


def _close(got, want):
    assert (
        isinstance(got, np.ndarray) and got.dtype == np.float32
    )  # NumPy out, never a device array
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_fake_device_arrays_refuse_implicit_conversion(fake_gpu):
    a = fake_gpu.asarray(np.ones(3))
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    assert type(a + 1) is type(a) and type(fake_gpu.xp.sum(a)) is type(a)
    assert isinstance(fake_gpu.to_numpy(a * 2), np.ndarray)


@pytest.mark.parametrize("config", CONFIGS, ids=["adam", "stride-same-gelu-nadam", "last-rmsprop"])
def test_graph_on_the_cupy_path_equals_numpy(fake_gpu, config):
    x = _data(config)
    launches = fake_gpu.xp.launches
    launches.clear()
    on_cpu, on_gpu = _graph(NUMPY, config), _graph(fake_gpu, config)
    info_cpu, y_cpu = on_cpu.predict(x)
    info_gpu, y_gpu = on_gpu.predict(x)
    assert (info_gpu.index, info_gpu.shape) == (info_cpu.index, info_cpu.shape)
    _close(y_gpu, y_cpu)
    target = np.random.default_rng(1).standard_normal(y_cpu.shape, dtype=np.float32)
    for _ in range(2):
        loss_cpu = on_cpu.train_step(x, target, loss="mean_squared_error")
        loss_gpu = on_gpu.train_step(x, target, loss="mean_squared_error")
        assert isinstance(loss_gpu, float)
        np.testing.assert_allclose(loss_gpu, loss_cpu, rtol=1e-5)
    for got, want in zip(on_gpu.layers[1].get_weights(), on_cpu.layers[1].get_weights()):
        _close(got, want)
    _close(on_gpu.forward(x), on_cpu.forward(x))
    _close(on_gpu.backward(target), on_cpu.backward(target))
    algorithm = config["optimizer"]["algorithm"]
    # The CUDA kernels did the work: 4 forwards, 3 backwards, 3 updates; the training steps need
    # no gradient at the Input, Graph.backward returns one.
    assert launches == {
        "conv3dt_forward": 4,
        "conv3dt_backward_input": 1,
        "conv3dt_backward_kernel": 3,
        f"update_{algorithm}": 3,
    }


def test_fit_and_state_round_trip_on_the_cupy_path(fake_gpu):
    config = CONFIGS[0]
    x = _data(config)
    on_cpu, on_gpu = _graph(NUMPY, config), _graph(fake_gpu, config)
    target = np.zeros_like(on_cpu.predict(x)[1])
    kwargs = {"epochs": 2, "batch_size": 1, "loss": "mean_absolute_error", "validation_split": 0.5}
    hist_cpu = on_cpu.fit(x, target, **kwargs)
    hist_gpu = on_gpu.fit(x, target, **kwargs)
    for key in hist_cpu:
        np.testing.assert_allclose(hist_gpu[key], hist_cpu[key], rtol=1e-5)
    layer_gpu, layer_cpu = on_gpu.layers[1].layer, on_cpu.layers[1].layer
    state = layer_gpu.optimizer.get_state()  # host arrays, as saved to .npz
    assert all(isinstance(v, (np.ndarray, int, float, str)) for v in state.values())
    resumed = _graph(fake_gpu, config)
    conv = resumed.layers[1].layer
    conv.set_weights(layer_gpu.get_weights())
    conv.optimizer.set_state(state, conv._weights())
    on_cpu.train_step(x, target, loss="mean_absolute_error")
    resumed.train_step(x, target, loss="mean_absolute_error")
    for got, want in zip(conv.get_weights(), layer_cpu.get_weights()):
        _close(got, want)


def test_benchmark_on_the_cupy_path_times_host_and_device_rows(fake_gpu):
    from conv3dt_studio.app.cli.bench import report  # the table printed by `bench`
    from conv3dt_studio.compute import benchmark

    tiny = benchmark.Workload("T", "tiny", (1, 2, 2, 3, 2, 3), 2, 1, False)
    res = benchmark.run_workload(tiny, fake_gpu, None, rounds=1, warmup=0, peak_gflops=None)
    rows = ("forward", "train_step", "forward_on_device", "train_step_on_device")
    assert all(res[row]["ours_median_ms"] > 0 for row in rows)
    text = report(res)
    assert "train step, data on the GPU" in text and "arithmetic limit" not in text
    assert "memory" not in res  # traced on the CPU path only


def test_device_arrays_are_taken_as_they_are(fake_gpu):
    config = CONFIGS[0]
    x = _data(config)
    g = _graph(fake_gpu, config)
    _, from_host = g.predict(x)
    _, from_device = g.predict(fake_gpu.asarray(x))
    _close(from_device, from_host)
    target = fake_gpu.asarray(np.zeros_like(from_host))
    assert g.train_step(fake_gpu.asarray(x), target) == pytest.approx(float((from_host**2).mean()))


def test_a_layer_whose_taps_reach_no_output_on_the_cupy_path(fake_gpu):
    """Stride 3 and dilation 3 with output_padding 1 on a 1-long axis: the one output position
    lies between the dilated taps, so the output is the bias and the input gradient zero."""
    config = {
        "n_filters": 2,
        "size": [1, 1, 2],
        "stride": [1, 1, 3],
        "dilation_rate": [1, 1, 3],
        "output_padding": [0, 0, 1],
        "padding": True,
        "activation": "linear",
        "bias_initializer": "ones",
    }
    x = np.random.default_rng(0).standard_normal((2, 1, 2, 3, 3, 1), dtype=np.float32)

    def graph(backend):
        return Graph(
            [Input(shape=x.shape[1:]), TimeDistributed(Conv3DTranspose(**config))], backend, seed=5
        )

    on_cpu, on_gpu = graph(NUMPY), graph(fake_gpu)
    y = on_cpu.predict(x)[1]
    assert y.shape == (2, 1, 2, 3, 3, 1) and np.all(y == 1.0)
    _close(on_gpu.predict(x)[1], y)
    _close(on_gpu.forward(x), on_cpu.forward(x))
    dx = on_gpu.backward(np.ones_like(y))
    _close(dx, on_cpu.backward(np.ones_like(y)))
    assert np.all(dx == 0.0)
