"""The executable Graph: predict / forward / backward / train_step / fit, building styles,
backends and shape errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
import reference as ref

from conv3dt_studio.compute import (
    BackendError,
    Conv3DTranspose,
    Graph,
    Input,
    Layer,
    ParameterError,
    ShapeError,
    StateError,
    TimeDistributed,
    get_backend,
)

X_SHAPE = (4, 2, 2, 2, 3, 2)  # (batch, time, channels, d1, d2, d3)


def _layer(**params):
    base = dict(
        n_filters=2,
        size=(2, 1, 2),
        stride=(1, 2, 1),
        activation="tanh",
        optimizer={"algorithm": "sgd", "learning_rate": 0.05},
    )
    base.update(params)
    return Conv3DTranspose(**base)


def _graph(seed=0, **params):
    layer = _layer(**params)
    td = TimeDistributed(layer, name="td")
    graph = Graph([Input(shape=X_SHAPE[1:], name="data"), td], backend="numpy", seed=seed)
    return layer, td, graph


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(X_SHAPE).astype(np.float32)
    y = rng.uniform(-0.5, 0.5, (4, 2, 2, 3, 6, 3)).astype(np.float32)
    return x, y


def test_predict_returns_info_and_inference_output():
    layer, td, graph = _graph()
    x, _ = _data()
    info, y = graph.predict(x)
    assert info.name == "td"
    assert info.index == 1
    assert info.shape == y.shape == (4, 2, 2, 3, 6, 3)
    assert y.dtype == np.float32
    k, b = layer.get_weights()
    expected = ref.ref_layer(x, k, b, activation="tanh", stride=(1, 2, 1))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_predict_caches_nothing():
    _, _, graph = _graph()
    x, _ = _data()
    graph.predict(x)
    with pytest.raises(StateError):
        graph.backward(np.ones((4, 2, 2, 3, 6, 3), np.float32))


def test_predict_in_batches_equals_all_at_once():
    _, _, graph = _graph()
    x, _ = _data()
    _, y_all = graph.predict(x)
    seen = []
    _, y_b = graph.predict(x, batch_size=3, progress=lambda f, m: seen.append(f))
    np.testing.assert_array_equal(y_all, y_b)
    assert seen == [0.5, 1.0]


def test_predict_does_not_change_weights():
    layer, _, graph = _graph()
    x, _ = _data()
    w0 = layer.get_weights()
    graph.predict(x)
    for a, b in zip(w0, layer.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_forward_backward_returns_input_gradient():
    layer, td, graph = _graph(store=True, update=False)
    x, _ = _data()
    y = graph.forward(x)
    _, yp = graph.predict(x)
    np.testing.assert_array_equal(y, yp)
    graph.forward(x)
    dy = np.random.default_rng(3).standard_normal(y.shape).astype(np.float32)
    dx = graph.backward(dy)
    assert dx.shape == x.shape
    k, b = layer.get_weights()
    rdx, rdk, rdb, _ = ref.ref_layer_grads(x, k, b, dy, activation="tanh", stride=(1, 2, 1))
    np.testing.assert_allclose(dx, rdx, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(td.get_gradients()["kernel"], rdk, rtol=1e-4, atol=1e-4)


def test_train_step_loss_and_sgd_update():
    lr = 0.05
    layer, td, graph = _graph(store=True)
    x, y_true = _data()
    k0, b0 = layer.get_weights()
    _, y0 = graph.predict(x)
    loss = graph.train_step(x, y_true, loss="mean_squared_error")
    expected = float(((y0.astype(np.float64) - y_true) ** 2).mean())
    assert loss == pytest.approx(expected, rel=1e-5)
    # the update is sgd on the gradients of that loss
    dy = 2 * (y0.astype(np.float64) - y_true) / y0.size
    _, rdk, rdb, _ = ref.ref_layer_grads(x, k0, b0, dy, activation="tanh", stride=(1, 2, 1))
    k1, b1 = layer.get_weights()
    np.testing.assert_allclose(k1, k0 - lr * rdk, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(b1, b0 - lr * rdb, rtol=1e-4, atol=1e-6)


def test_train_step_per_class_loss_uses_channel_axis():
    _, _, graph = _graph(activation="softmax")
    x, _ = _data()
    rng = np.random.default_rng(1)
    t = rng.uniform(0.1, 1, (4, 2, 2, 3, 6, 3)).astype(np.float32)
    t /= t.sum(axis=2, keepdims=True)
    _, p = graph.predict(x)
    loss = graph.train_step(x, t, loss="categorical_crossentropy")
    q = np.clip(p / p.sum(axis=2, keepdims=True), 1e-7, 1 - 1e-7)
    expected = float(-(t * np.log(q)).sum(axis=2).mean())
    assert loss == pytest.approx(expected, rel=1e-5)


def test_training_reduces_the_loss():
    """Learn a target made by the same architecture with other weights."""
    x, _ = _data()
    _, _, teacher = _graph(seed=11)
    _, y_true = teacher.predict(x)
    _, _, graph = _graph(optimizer={"algorithm": "adam", "learning_rate": 0.05})
    losses = [graph.train_step(x, y_true) for _ in range(20)]
    assert losses[-1] < 0.5 * losses[0]


def test_fit_history_and_first_epoch_value():
    _, _, graph = _graph()
    x, y_true = _data()
    _, y0 = graph.predict(x)
    hist = graph.fit(x, y_true, epochs=3, batch_size=4, loss="mean_squared_error")
    assert set(hist) == {"loss"}
    assert len(hist["loss"]) == 3
    # one batch per epoch: the first epoch's loss is the loss before any update
    assert hist["loss"][0] == pytest.approx(float(((y0 - y_true) ** 2).mean()), rel=1e-5)
    assert hist["loss"][2] < hist["loss"][0]


def test_fit_epoch_loss_is_the_mean_over_batches():
    _, _, g1 = _graph(seed=3)
    _, _, g2 = _graph(seed=3)
    x, y_true = _data()
    hist = g1.fit(x, y_true, epochs=1, batch_size=2, shuffle=False)
    a = g2.train_step(x[:2], y_true[:2])
    b = g2.train_step(x[2:], y_true[2:])
    assert hist["loss"][0] == pytest.approx((a + b) / 2, rel=1e-6)


def test_fit_same_seed_reproducible_other_seed_differs():
    x, y_true = _data()
    runs = []
    for seed in (7, 7, 8):
        layer, _, graph = _graph(seed=seed, optimizer={"algorithm": "adam", "learning_rate": 0.01})
        hist = graph.fit(x, y_true, epochs=3, batch_size=3)
        runs.append((hist["loss"], layer.get_weights()))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)
    assert runs[0][0] != runs[2][0]


def test_add_style_equals_list_style():
    x, _ = _data()
    _, _, listed = _graph(seed=5)
    g = Graph(backend="numpy", seed=5)
    assert g.add(Input(shape=X_SHAPE[1:])) is g
    g.add(TimeDistributed(_layer()))
    _, y1 = listed.predict(x)
    info, y2 = g.predict(x)
    np.testing.assert_array_equal(y1, y2)
    assert info.index == 1


def test_backend_name():
    _, _, graph = _graph()
    assert graph.backend.name == "numpy"
    assert get_backend("numpy").name == "numpy"
    assert get_backend("auto").name in ("numpy", "cupy")


def test_bad_backend_name():
    with pytest.raises(ParameterError) as err:
        Graph(backend="tensorflow")
    assert "`backend`" in str(err.value)
    assert "Received: backend='tensorflow'" in str(err.value)


def test_cupy_backend_works_or_says_why():
    try:
        b = get_backend("cupy")
    except BackendError as exc:
        assert "cupy" in str(exc).lower()
    else:
        assert b.name == "cupy"


@pytest.mark.parametrize(
    "bad_shape",
    [(4, 2, 2, 2, 3, 3), (4, 2, 2, 2, 3), (4, 3, 2, 2, 3, 2, 1), (4, 2, 3, 2, 3, 2)],
)
def test_input_shape_mismatch_names_layer_and_both_shapes(bad_shape):
    _, _, graph = _graph()
    x = np.zeros(bad_shape, np.float32)
    with pytest.raises(ShapeError) as err:
        graph.predict(x)
    msg = str(err.value)
    assert "`data`" in msg
    assert "(None, 2, 2, 2, 3, 2)" in msg
    assert "(" + ", ".join(map(str, bad_shape)) + ")" in msg
    with pytest.raises(ShapeError):
        graph.forward(x)


def test_target_shape_mismatch():
    _, _, graph = _graph()
    x, y = _data()
    with pytest.raises(ShapeError) as err:
        graph.train_step(x, y[:, :, :1])
    assert "(4, 2, 1, 3, 6, 3)" in str(err.value)


def test_partial_optimizer_dict_keeps_defaults():
    layer = Conv3DTranspose(
        n_filters=3,
        size=3,
        activation="relu",
        padding=False,
        optimizer={"algorithm": "sgd", "learning_rate": 0.01},
    )
    graph = Graph([Input(shape=(2, 5, 4, 4, 3)), TimeDistributed(layer)], backend="numpy", seed=0)
    assert layer.config["optimizer"]["beta_1"] == 0.9
    assert graph.compute_output_shape((1, 2, 5, 4, 4, 3)) == (1, 2, 3, 6, 6, 5)


@pytest.mark.parametrize(
    "kwargs, name", [({"epochs": 0}, "epochs"), ({"batch_size": 0}, "batch_size")]
)
def test_fit_bad_arguments(kwargs, name):
    _, _, graph = _graph()
    x, y = _data()
    with pytest.raises(ParameterError, match=f"`{name}`"):
        graph.fit(x, y, **kwargs)


def test_bad_loss_name():
    _, _, graph = _graph()
    x, y = _data()
    with pytest.raises(ParameterError, match="`loss`"):
        graph.train_step(x, y, loss="mse")


def test_bad_seed():
    with pytest.raises(ParameterError, match="`seed`"):
        Graph(backend="numpy", seed=-1)


def test_input_must_be_first_and_names_unique():
    g = Graph(backend="numpy")
    g.add(Input(shape=X_SHAPE[1:], name="in_a"))
    with pytest.raises(ParameterError, match="in_b"):
        g.add(Input(shape=X_SHAPE[1:], name="in_b"))
    g.add(TimeDistributed(_layer(), name="same_name"))
    with pytest.raises(ParameterError, match="same_name"):
        g.add(TimeDistributed(_layer(), name="same_name"))


def test_set_weights_wrong_shape_names_layer_and_shape():
    layer, _, _ = _graph()
    k, b = layer.get_weights()
    with pytest.raises(ShapeError) as err:
        layer.set_weights([k[:1], b])
    assert f"`{layer.name}`" in str(err.value)
    assert str(k[:1].shape) in str(err.value)
    with pytest.raises(ShapeError):
        layer.set_weights([k])
    with pytest.raises(ShapeError):
        layer.set_weights([k, np.zeros(5, np.float32)])


def test_automatic_names_are_unique():
    a, b = Conv3DTranspose(), Conv3DTranspose()
    assert a.name != b.name
    assert a.name.startswith("conv3d_transpose")


def test_time_distributed_needs_time_axis():
    layer = _layer()
    with pytest.raises(ShapeError):
        Graph([Input(shape=(2, 2, 3, 2)), TimeDistributed(layer)], backend="numpy")


def test_per_class_loss_uses_last_axis_for_channels_last():
    layer = Conv3DTranspose(
        n_filters=3, size=(2, 1, 2), activation="softmax", data_format="channels_last"
    )
    graph = Graph([Input(shape=(2, 2, 3, 2, 2)), TimeDistributed(layer)], backend="numpy", seed=1)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 2, 2, 3, 2, 2)).astype(np.float32)
    _, p = graph.predict(x)
    assert p.shape == (2, 2, 3, 3, 3, 3)
    t = rng.uniform(0.1, 1, p.shape).astype(np.float32)
    t /= t.sum(axis=-1, keepdims=True)
    loss = graph.train_step(x, t, loss="categorical_crossentropy")
    q = np.clip(p / p.sum(axis=-1, keepdims=True), 1e-7, 1 - 1e-7)
    assert loss == pytest.approx(float(-(t * np.log(q)).sum(axis=-1).mean()), rel=1e-5)


def test_a_refused_layer_leaves_the_graph_usable():
    import pytest as _pytest

    from conv3dt_studio.compute import Conv3DTranspose, Graph, Input, ShapeError, TimeDistributed

    g = Graph([Input((2, 3, 4, 4, 4))], backend="numpy")
    with _pytest.raises(ShapeError):
        g.add(Conv3DTranspose())  # 6-D data needs TimeDistributed
    assert len(g.layers) == 1
    g.add(TimeDistributed(Conv3DTranspose()))
    assert g.compute_output_shape((1, 2, 3, 4, 4, 4)) == (1, 2, 3, 6, 6, 6)


def test_predict_refuses_empty_data_and_fractional_batches():
    import numpy as _np
    import pytest as _pytest

    from conv3dt_studio.compute import (
        Conv3DTranspose,
        Graph,
        Input,
        ParameterError,
        ShapeError,
        TimeDistributed,
    )

    g = Graph([Input((1, 2, 3, 3, 3)), TimeDistributed(Conv3DTranspose())], backend="numpy")
    with _pytest.raises(ShapeError, match="at least one sample"):
        g.predict(_np.zeros((0, 1, 2, 3, 3, 3), _np.float32))
    with _pytest.raises(ParameterError, match="batch_size"):
        g.predict(_np.zeros((2, 1, 2, 3, 3, 3), _np.float32), batch_size=1.5)


def test_set_weights_needs_a_list():
    import pytest as _pytest

    from conv3dt_studio.compute import Conv3DTranspose, ShapeError

    layer = Conv3DTranspose()
    for bad in (None, {"kernel": 1}):
        with _pytest.raises(ShapeError, match=r"expected a list of weight arrays \(\[kernel, bias"):
            layer.set_weights(bad)


def _count_input_gradients(monkeypatch):
    from conv3dt_studio.compute import conv3d_transpose_ops as ops

    calls = []
    real = ops.backward_input
    monkeypatch.setattr(ops, "backward_input", lambda *a: calls.append(1) or real(*a))
    return calls


def test_train_step_skips_the_gradient_nobody_needs(monkeypatch):
    # The Input learns nothing: a training step computes no input gradient for the first layer
    # (PyTorch neither); the weights move exactly as through forward + backward.
    calls = _count_input_gradients(monkeypatch)
    x, y_true = _data()
    layer_a, _, skipping = _graph()
    layer_b, _, full = _graph()
    skipping.train_step(x, y_true)
    assert calls == []
    dy = 2 * (full.forward(x) - y_true) / y_true.size  # mean squared error's gradient
    full.backward(dy)
    assert len(calls) == 1
    for a, b in zip(layer_a.get_weights(), layer_b.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_train_step_input_gradient_still_flows_between_layers_and_to_store(monkeypatch):
    calls = _count_input_gradients(monkeypatch)
    x, _ = _data()
    first = _layer(n_filters=2)
    second = _layer(n_filters=1, stride=1, size=1)
    graph = Graph(
        [Input(shape=X_SHAPE[1:]), TimeDistributed(first), TimeDistributed(second)], seed=0
    )
    k0 = first.get_weights()[0]
    graph.train_step(x, np.zeros(graph.compute_output_shape(x.shape), np.float32))
    assert len(calls) == 1  # the second layer's, which the first layer learns from
    assert not np.array_equal(first.get_weights()[0], k0)
    stored, _, g = _graph(store=True)
    g.train_step(*_data())
    assert stored.get_gradients()["input"].shape == (X_SHAPE[0] * X_SHAPE[1], *X_SHAPE[2:])


def test_a_graph_without_input_layer_still_trains():
    layer = _layer(activation="linear")
    graph = Graph([TimeDistributed(layer)], backend="numpy", seed=0)
    x, _ = _data()
    target = np.zeros(graph.compute_output_shape(x.shape), np.float32)
    losses = [graph.train_step(x, target) for _ in range(3)]
    assert losses[2] < losses[1] < losses[0]


class _Doubler(Layer):
    """A user layer written against the older ``backward(self, dy)``."""

    def forward(self, x, training=False):
        return 2 * x

    def backward(self, dy):
        return 2 * dy


@pytest.mark.parametrize("wrapped", [False, True])
def test_user_layers_with_the_older_backward_signature_keep_working(wrapped):
    layer = _layer(activation="linear")
    extra = TimeDistributed(_Doubler()) if wrapped else _Doubler()
    graph = Graph([Input(shape=X_SHAPE[1:]), TimeDistributed(layer), extra], seed=0)
    x, _ = _data()
    y = graph.forward(x)
    assert graph.backward(np.ones_like(y)).shape == x.shape
    target = np.zeros_like(y)
    losses = [graph.train_step(x, target) for _ in range(3)]
    assert losses[2] < losses[0]


def test_a_frozen_first_layer_is_skipped_unless_it_keeps_gradients(monkeypatch):
    from conv3dt_studio.compute import conv3d_transpose_ops as ops

    x, _ = _data()
    calls = []
    real = ops.backward_kernel
    monkeypatch.setattr(ops, "backward_kernel", lambda *a: calls.append(1) or real(*a))
    for store, expected_calls in ((False, 1), (True, 2)):
        calls.clear()
        frozen = _layer(update=False, store=store)
        second = _layer(n_filters=1, stride=1, size=1)
        layers = [Input(shape=X_SHAPE[1:]), TimeDistributed(frozen), TimeDistributed(second)]
        graph = Graph(layers, seed=0)
        graph.train_step(x, np.zeros(graph.compute_output_shape(x.shape), np.float32))
        assert len(calls) == expected_calls  # the frozen layer's gradients only when stored
        if store:
            assert set(frozen.get_gradients()) == {"kernel", "bias", "input"}


class _LearningScale(Layer):
    """A user layer with a weight of its own, written without ``uses_gradients``."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.w, self.calls = np.float32(1.0), 0

    def forward(self, x, training=False):
        self.x = x
        return x * self.w

    def backward(self, dy):
        self.calls += 1
        grad = float((dy * self.x).sum())
        dx = dy * self.w
        self.w -= np.float32(0.01 * grad)
        return dx


@pytest.mark.parametrize("wrapped", [False, True])
def test_a_user_layer_before_the_convolution_still_learns(wrapped):
    scale = _LearningScale()
    first = TimeDistributed(scale) if wrapped else scale
    graph = Graph([Input(shape=X_SHAPE[1:]), first, TimeDistributed(_layer())], seed=0)
    x, _ = _data()
    target = np.zeros(graph.compute_output_shape(x.shape), np.float32)
    graph.fit(x, target, epochs=2, batch_size=2)
    assert scale.calls == 4 and scale.w != np.float32(1.0)


def test_available_memory_honours_the_address_space_limit():
    """Under `ulimit -v`, the memory guard plans with what the process may still map."""
    import resource
    import subprocess
    import sys

    limit = 3 * 2**30

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    code = "from conv3dt_studio.compute.memory import available_memory as a; print(a())"
    out = subprocess.run(
        [sys.executable, "-c", code], preexec_fn=cap, capture_output=True, text=True, check=True
    )
    assert 0 < int(out.stdout) < limit


def test_the_memory_guard_reads_again_for_large_requests_and_after_a_second(monkeypatch):
    """Small requests reuse the last reading of the limit for up to a second (reading /proc
    costs as much as a small layer's forward); a request above a sixteenth of it, or a later
    one, reads again, so a large allocation is always checked against what is free now."""
    from conv3dt_studio.compute import memory

    readings = []

    def limit():
        readings.append(1)
        return 1600

    clock = [100.0]
    monkeypatch.setattr(memory, "default_limit", limit)
    monkeypatch.setattr(memory.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(memory, "_recent", None)
    memory.check(100, "small")
    memory.check(100, "small")
    assert len(readings) == 1
    memory.check(101, "above a sixteenth")
    assert len(readings) == 2
    clock[0] += memory.RECENT_SECONDS
    memory.check(1, "a second later")
    assert len(readings) == 3
    with pytest.raises(memory.MemoryLimitExceeded, match="too much needs about"):
        memory.check(1601, "too much")


def test_one_layer_in_two_wrappers_is_refused():
    """A layer holds one set of weights and one forward's state: sharing it between two
    TimeDistributed wrappers would break backward, so the graph refuses it when built."""
    layer = _layer()
    with pytest.raises(ParameterError, match="`conv3d_transpose.*` is already used in this graph"):
        Graph([Input(shape=X_SHAPE[1:]), TimeDistributed(layer), TimeDistributed(layer)])


@pytest.mark.parametrize("value", ["a", None, True, [0.1]], ids=repr)
def test_fit_refuses_a_validation_split_that_is_not_a_number(value):
    _, _, graph = _graph()
    x, y = _data()
    with pytest.raises(
        ParameterError,
        match=f"`validation_split`.*Received: validation_split={re.escape(repr(value))}",
    ):
        graph.fit(x, y, validation_split=value)


def test_numpy_integers_are_integers_and_bools_are_not():
    x, y = _data()
    g = Graph([Input(shape=X_SHAPE[1:]), TimeDistributed(_layer())], seed=np.int64(3))
    assert g.seed == 3 and type(g.seed) is int
    hist = g.fit(x, y, epochs=np.int64(2), batch_size=np.int32(2), initial_epoch=np.int64(1))
    assert len(hist["loss"]) == 1
    with pytest.raises(ParameterError, match="`initial_epoch`"):
        g.fit(x, y, epochs=2, initial_epoch=True)
    with pytest.raises(ParameterError, match="`seed`"):
        Graph(seed=True)


@pytest.mark.parametrize("batch_size", [0, -1, 1.5])
def test_predict_refuses_a_batch_size_that_is_not_positive(batch_size):
    _, _, graph = _graph()
    x, _ = _data()
    with pytest.raises(ParameterError, match="`batch_size`.*positive integer or None"):
        graph.predict(x, batch_size=batch_size)


@pytest.mark.parametrize("dy", [np.ones(1, np.float32), np.float32(1.0)], ids=["1-D", "scalar"])
def test_backward_names_a_gradient_without_batch_and_time(dy):
    _, _, graph = _graph()
    x, _ = _data()
    graph.forward(x)
    with pytest.raises(ShapeError, match=r"expected 6-D data \(batch, time, .*Received: shape"):
        graph.backward(dy)


@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
def test_a_timedistributed_layer_names_the_6d_data_it_takes(data_format):
    """A 5-D Input under TimeDistributed: the wrapper's axes, time included (the inner layer's
    own message showed the folded shape and advised the wrapping already there)."""
    layer = TimeDistributed(Conv3DTranspose(data_format=data_format))
    with pytest.raises(ShapeError) as caught:
        Graph([Input(shape=(3, 4, 4, 4)), layer])
    message = str(caught.value)
    channels = "channels, d1, d2, d3" if data_format == "channels_first" else "d1, d2, d3, channels"
    assert f"expected 6-D data (batch, time, {channels})" in message
    assert "Received: shape (None, 3, 4, 4, 4)" in message and "wrap it" not in message
