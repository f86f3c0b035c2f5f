"""Optimizers: each algorithm against an independent float64 implementation of its rule, directly
and through the layer (Graph.backward); state round trip resumes bit-identically."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from opt_reference import DEFAULTS, RefOptimizer, assert_close_update

from conv3dt_studio.compute.backend import get_backend
from conv3dt_studio.compute.errors import BackendError
from conv3dt_studio.compute.optimizers import ALGORITHMS, OPTIMIZER_SCHEMA, Optimizer

NUMPY = get_backend("numpy")
ALL = ("adadelta", "adagrad", "adam", "adamax", "inertia", "nadam", "nesterov", "rmsprop", "sgd")

CONFIGS = [
    {"learning_rate": 0.05},
    {"learning_rate": 0.2, "beta_1": 0.5, "beta_2": 0.8, "epsilon": 1e-3, "momentum": 0.7},
]


def _weights_and_grads(seed, steps):
    rng = np.random.default_rng(seed)
    w = [
        rng.standard_normal((2, 3, 1, 2, 3)).astype(np.float32),
        rng.standard_normal((2,)).astype(np.float32),
    ]
    grads = [[rng.standard_normal(a.shape).astype(np.float32) for a in w] for _ in range(steps)]
    return w, grads


def test_algorithm_list():
    assert set(ALGORITHMS) == set(ALL)
    assert OPTIMIZER_SCHEMA.defaults() == DEFAULTS  # the table, in opt_reference


@pytest.mark.parametrize("algorithm", ALL)
@pytest.mark.parametrize("cfg", range(len(CONFIGS)))
@pytest.mark.parametrize("steps", [1, 6])
def test_optimizer_direct_against_formula(algorithm, cfg, steps):
    config = {"algorithm": algorithm, **CONFIGS[cfg]}
    w, grads = _weights_and_grads(100 + cfg, steps)
    opt = Optimizer(config, NUMPY)
    ref = RefOptimizer(config)
    ref_w = [a.astype(np.float64) for a in w]
    for g in grads:
        old = [a.astype(np.float64) for a in w]
        opt.apply(w, g)
        ref_w = ref.step(ref_w, g)
        for new, r, o in zip(w, ref_w, old):
            assert new.dtype == np.float32
            assert_close_update(new, r, o)
    assert opt.iterations == steps


@pytest.mark.parametrize("algorithm", ALL)
def test_default_config_single_step(algorithm):
    """Default hyper-parameters (learning_rate 1e-3, ...) on one step."""
    w, grads = _weights_and_grads(5, 1)
    opt = Optimizer({"algorithm": algorithm}, NUMPY)
    old = [a.astype(np.float64) for a in w]
    opt.apply(w, grads[0])
    ref = RefOptimizer({"algorithm": algorithm}).step(old, grads[0])
    for new, r, o in zip(w, ref, old):
        assert_close_update(new, r, o, rel=5e-3)


@pytest.mark.parametrize("algorithm", ALL)
def test_zero_learning_rate_keeps_weights(algorithm):
    w, grads = _weights_and_grads(9, 3)
    before = [a.copy() for a in w]
    opt = Optimizer({"algorithm": algorithm, "learning_rate": 0.0}, NUMPY)
    for g in grads:
        opt.apply(w, g)
    for a, b in zip(w, before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("algorithm", ALL)
def test_state_round_trip_resumes_bit_identically(algorithm):
    config = {"algorithm": algorithm, "learning_rate": 0.05}
    w, grads = _weights_and_grads(21, 7)
    a = Optimizer(config, NUMPY)
    wa = [x.copy() for x in w]
    for g in grads[:3]:
        a.apply(wa, g)
    state = copy.deepcopy(a.get_state())
    assert state["iterations"] == 3
    # the state is plain (NumPy arrays, numbers, the algorithm's name), independent of the
    # optimizer's own arrays
    assert state["algorithm"] == algorithm
    for v in state.values():
        assert isinstance(v, (int, float, str, np.ndarray))
    wb = [x.copy() for x in wa]
    b = Optimizer(config, NUMPY)
    b.set_state(state, wb)
    assert b.get_state().keys() == state.keys()
    for k, v in b.get_state().items():
        np.testing.assert_array_equal(v, state[k])
    for g in grads[3:]:
        a.apply(wa, g)
        b.apply(wb, g)
    for x, y in zip(wa, wb):
        np.testing.assert_array_equal(x, y)
    assert a.get_state()["iterations"] == b.get_state()["iterations"] == 7


@pytest.mark.parametrize("algorithm", ["adam", "nadam", "adagrad", "inertia"])
def test_fresh_state_differs_from_resumed(algorithm):
    """The round-trip test above can fail: restarting without the state gives other weights."""
    config = {"algorithm": algorithm, "learning_rate": 0.05}
    w, grads = _weights_and_grads(22, 5)
    a = Optimizer(config, NUMPY)
    for g in grads[:3]:
        a.apply(w, g)
    wb = [x.copy() for x in w]
    b = Optimizer(config, NUMPY)
    for g in grads[3:]:
        a.apply(w, g)
        b.apply(wb, g)
    assert any(not np.array_equal(x, y) for x, y in zip(w, wb))


def test_get_state_is_a_copy():
    w, grads = _weights_and_grads(3, 2)
    opt = Optimizer({"algorithm": "adam"}, NUMPY)
    opt.apply(w, grads[0])
    state = opt.get_state()
    snapshot = copy.deepcopy(state)
    opt.apply(w, grads[1])
    for k, v in snapshot.items():
        np.testing.assert_array_equal(state[k], v)


# --------------------------------------------------------------------------- through the layer


def _layer_graph(algorithm, seed=0, **opt):
    from conv3dt_studio.compute import Conv3DTranspose, Graph, Input, TimeDistributed

    layer = Conv3DTranspose(
        n_filters=2,
        size=(2, 1, 2),
        stride=(2, 1, 1),
        activation="tanh",
        store=True,
        optimizer={"algorithm": algorithm, **opt},
    )
    td = TimeDistributed(layer)
    graph = Graph([Input(shape=(2, 3, 2, 1, 2)), td], backend="numpy", seed=seed)
    return layer, td, graph


@pytest.mark.parametrize("algorithm", ALL)
@pytest.mark.parametrize("steps", [1, 4])
def test_layer_update_through_graph_backward(algorithm, steps):
    """Graph.backward applies the layer's optimizer to the layer's own gradients."""
    import reference

    config = {"algorithm": algorithm, "learning_rate": 0.05, "beta_1": 0.8}
    layer, td, graph = _layer_graph(**config)
    rng = np.random.default_rng(31)
    x = rng.standard_normal((2, 2, 3, 2, 1, 2)).astype(np.float32)
    ref_opt = RefOptimizer(config)
    ref_w = [w.astype(np.float64) for w in layer.get_weights()]
    for step in range(steps):
        old = layer.get_weights()
        y = graph.forward(x)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        graph.backward(dy)
        g = td.get_gradients()
        if step == 0:  # the gradients the optimizer received are the layer's true gradients
            _, rdk, rdb, _ = reference.ref_layer_grads(
                x, old[0], old[1], dy, activation="tanh", stride=(2, 1, 1)
            )
            np.testing.assert_allclose(g["kernel"], rdk, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(g["bias"], rdb, rtol=1e-4, atol=1e-5)
        ref_w = ref_opt.step(ref_w, [g["kernel"], g["bias"]])
        for new, r, o in zip(layer.get_weights(), ref_w, old):
            assert_close_update(new, r, o)
    assert layer.optimizer.iterations == steps


@pytest.mark.parametrize("algorithm", ALL)
def test_layer_optimizer_state_round_trip(algorithm):
    """Weights + optimizer state copied into a fresh layer: training continues bit-identically."""
    config = {"algorithm": algorithm, "learning_rate": 0.05}
    rng = np.random.default_rng(41)
    x = rng.standard_normal((2, 2, 3, 2, 1, 2)).astype(np.float32)
    dys = [rng.standard_normal((2, 2, 2, 4, 1, 3)).astype(np.float32) for _ in range(5)]
    a, _, ga = _layer_graph(**config)
    for dy in dys[:2]:
        ga.forward(x)
        ga.backward(dy)
    b, _, gb = _layer_graph(seed=99, **config)
    b.set_weights(a.get_weights())
    b.optimizer.set_state(copy.deepcopy(a.optimizer.get_state()), b.get_weights())
    for dy in dys[2:]:
        ga.forward(x)
        gb.forward(x)
        np.testing.assert_array_equal(ga.backward(dy), gb.backward(dy))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


@pytest.mark.gpu
@pytest.mark.parametrize("algorithm", ALL)
@pytest.mark.parametrize("cfg", range(len(CONFIGS)))
def test_fused_gpu_update_equals_numpy(algorithm, cfg):
    # One kernel launch per step on CuPy (cuda_kernels.fused_update) against the NumPy rules.
    try:
        gpu = get_backend("cupy")
    except BackendError as exc:
        pytest.skip(str(exc))
    config = {"algorithm": algorithm, **CONFIGS[cfg]}
    w, grads = _weights_and_grads(7, 5)
    on_cpu, on_gpu = Optimizer(config, NUMPY), Optimizer(config, gpu)
    w_gpu = [gpu.asarray(a) for a in w]
    for g in grads:
        on_cpu.apply(w, g)
        on_gpu.apply(w_gpu, [gpu.asarray(a) for a in g])
    for got, want in zip(w_gpu, w):
        np.testing.assert_allclose(gpu.to_numpy(got), want, rtol=1e-5, atol=1e-6)
    state_gpu, state_cpu = on_gpu.get_state(), on_cpu.get_state()
    assert state_gpu.keys() == state_cpu.keys()
    assert state_gpu.pop("algorithm") == state_cpu.pop("algorithm") == algorithm
    for key, want in state_cpu.items():
        np.testing.assert_allclose(state_gpu[key], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "saved, loaded", [("inertia", "rmsprop"), ("adam", "nadam"), ("nesterov", "inertia")]
)
def test_state_of_another_algorithm_is_refused_even_with_the_same_slot_names(saved, loaded):
    # inertia's signed velocity is no mean square for rmsprop; adam's state lacks nadam's product
    w, grads = _weights_and_grads(3, 2)
    a = Optimizer({"algorithm": saved}, NUMPY)
    a.apply(w, grads[0])
    b = Optimizer({"algorithm": loaded}, NUMPY)
    with pytest.raises(ValueError, match=f"state of `{saved}`, this layer uses `{loaded}`"):
        b.set_state(a.get_state(), w)


@pytest.mark.parametrize(
    "saved, loaded, refused",
    [
        ("inertia", "rmsprop", True),  # signed velocity: sqrt of a negative "mean square"
        ("adam", "nadam", True),
        ("nadam", "adam", True),
        ("adam", "adam", False),  # a file saved before the algorithm was recorded still resumes
        ("rmsprop", "rmsprop", False),
        ("nadam", "nadam", False),
    ],
)
def test_states_saved_without_their_algorithm_are_checked(saved, loaded, refused):
    w, grads = _weights_and_grads(4, 3)
    a = Optimizer({"algorithm": saved, "learning_rate": 0.1}, NUMPY)
    for g in grads:
        a.apply(w, [-x for x in g])  # steps of both signs: some velocity goes negative
    legacy = {k: v for k, v in a.get_state().items() if k != "algorithm"}
    b = Optimizer({"algorithm": loaded}, NUMPY)
    if refused:
        with pytest.raises(ValueError):
            b.set_state(legacy, w)
    else:
        b.set_state(legacy, w)
        assert b.iterations == 3


@pytest.mark.parametrize("shape", [(7,), (4, 3, 3, 16, 12), (5, 5, 5, 32, 33)], ids=str)
def test_compiled_adam_keeps_the_numpy_rule_bits(monkeypatch, shape):
    """The compiled Adam update (one pass, ranges on the threads; several ranges here) writes
    the NumPy rule's bits into the weights and both moments, step after step; views that are
    not contiguous take the NumPy rule."""
    from conv3dt_studio.compute import cpu_kernels, optimizers

    monkeypatch.setattr(optimizers, "UPDATE_BLOCK", 1000)
    rng = np.random.default_rng(5)
    config = {"algorithm": "adam", **CONFIGS[1]}
    compiled, plain = Optimizer(config, NUMPY), Optimizer(config, NUMPY)
    w = [rng.standard_normal(shape, dtype=np.float32)]
    w_plain = [w[0].copy()]
    for _ in range(3):
        g = [rng.standard_normal(shape, dtype=np.float32)]
        assert compiled.apply(w, g) is None
        with monkeypatch.context() as mp:
            mp.setattr(optimizers, "_compiled_adam", lambda *a: False)
            plain.apply(w_plain, g)
        np.testing.assert_array_equal(w[0], w_plain[0])
        for name in ("m", "v"):
            np.testing.assert_array_equal(compiled.slots[0][name], plain.slots[0][name])
    k = plain.constants(1)
    arrays = [rng.standard_normal(shape, dtype=np.float32) for _ in range(4)]
    assert optimizers._compiled_adam(*arrays, k) is cpu_kernels.AVAILABLE
    strided = [np.asfortranarray(a) if len(shape) > 1 else a[::2] for a in arrays]
    assert optimizers._compiled_adam(*strided, k) is False
