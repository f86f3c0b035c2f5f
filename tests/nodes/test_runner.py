"""Building and running a document: one code path for the CLI and the editor."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conv3dt_studio import nodes
from conv3dt_studio.compute import StateError
from conv3dt_studio.nodes.runner import estimate_bytes, estimate_device_bytes, memory_problems
from conv3dt_studio.nodes.weights import save_weights, weights_dict


def test_run_gives_the_prediction_6d_info_cluster(doc):
    result = nodes.run_document(doc, backend="numpy")
    assert result.info.name == "time_distributed"
    assert result.info.index == 1
    assert result.info.shape == (2, 2, 3, 10, 10, 5) == result.prediction.shape
    assert result.prediction.dtype == np.float32
    assert result.backend == "numpy"
    assert result.prediction_node == "prediction_6d"
    assert result.seconds >= 0


def test_layer_names_come_from_the_nodes(doc):
    doc.set_param("time_distributed", "name", "td")
    doc.set_param("conv3d_transpose", "name", "up")
    result = nodes.run_document(doc, backend="numpy")
    assert result.info.name == "td"
    assert list(weights_dict(result.graph.layers, include_optimizer=False)) == [
        "up/kernel",
        "up/bias",
    ]


def test_round_trip_build_run_save_load_run_gives_identical_numbers(doc, tmp_path):
    first = nodes.run_document(doc, backend="numpy").prediction
    path = tmp_path / "g.json"
    doc.save(path)
    second = nodes.run_document(nodes.load(path), backend="numpy").prediction
    assert np.array_equal(first, second)


def test_same_seed_same_bits_other_seed_other_numbers(doc):
    a = nodes.run_document(doc, backend="numpy", seed=5).prediction
    b = nodes.run_document(doc, backend="numpy", seed=5).prediction
    c = nodes.run_document(doc, backend="numpy", seed=6).prediction
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, c)


def test_document_seed_sets_the_weights(doc):
    a = nodes.run_document(doc, backend="numpy").prediction
    doc.settings["seed"] = 1
    b = nodes.run_document(doc, backend="numpy").prediction
    assert not np.array_equal(a, b)


def test_progress_between_batches(make_doc):
    doc = make_doc(batch=3)
    doc.set_param("prediction_6d", "batch_size", 2)
    seen = []
    result = nodes.run_document(doc, backend="numpy", progress=lambda f, m: seen.append((f, m)))
    assert seen == [(0.0, "preparing data"), (0.5, "batch 1/2"), (1.0, "batch 2/2")]
    whole = nodes.run_document(make_doc(batch=3), backend="numpy").prediction
    assert np.allclose(result.prediction, whole, atol=1e-6)


def test_stop_is_honoured_between_batches(make_doc):
    doc = make_doc(batch=3)
    doc.set_param("prediction_6d", "batch_size", 1)
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 1

    with pytest.raises(StateError, match="cancelled after 1 of 3 batches"):
        nodes.run_document(doc, backend="numpy", should_stop=stop)


def test_data_override(doc):
    x = np.ones((3, 2, 2, 8, 8, 3), np.float32)
    result = nodes.run_document(doc, backend="numpy", data=x)
    assert result.info.shape == (3, 2, 3, 10, 10, 5)
    assert np.array_equal(result.input, x)


def test_data_override_of_the_wrong_shape_names_both_shapes(doc):
    with pytest.raises(nodes.DocumentProblems) as info:
        nodes.run_document(doc, backend="numpy", data=np.ones((3, 2, 2, 8, 8), np.float32))
    (problem,) = info.value.problems
    assert problem.node == "input"
    assert "expects (None, 2, 2, 8, 8, 3), its data has (3, 2, 2, 8, 8)" in problem.message


def test_data_override_replaces_a_data_node_whose_file_is_missing(doc):
    doc.set_param("data", "source", "file")
    doc.set_param("data", "path", "/nowhere/x.npy")
    x = np.ones((1, 2, 2, 8, 8, 3), np.float32)
    assert nodes.run_document(doc, backend="numpy", data=x).prediction.shape[0] == 1
    assert doc.nodes["data"].params["source"] == "file"  # the caller's document is untouched


def test_empty_data_file_is_a_problem_on_its_node(doc, tmp_path):
    np.save(tmp_path / "zero.npy", np.zeros((0, 2, 2, 8, 8, 3), np.float32))
    doc.set_param("data", "source", "file")
    doc.set_param("data", "path", str(tmp_path / "zero.npy"))
    problems = nodes.validate(doc).problems_of("data")
    assert problems and "empty data" in problems[0].message


def test_data_from_a_file(doc, tmp_path):
    x = np.random.default_rng(0).standard_normal((1, 2, 2, 8, 8, 3)).astype(np.float64)
    np.save(tmp_path / "x.npy", x)
    doc.set_param("data", "source", "file")
    doc.set_param("data", "path", str(tmp_path / "x.npy"))
    result = nodes.run_document(doc, backend="numpy")
    assert result.input.dtype == np.float32
    assert np.array_equal(result.input, x.astype(np.float32))


def test_invalid_document_raises_every_problem(doc):
    doc.nodes["conv3d_transpose"].params.update(size=[1, 2, 3, 4], n_filters=0)
    with pytest.raises(nodes.DocumentProblems) as info:
        nodes.run_document(doc, backend="numpy")
    assert {p.param for p in info.value.problems} == {"size", "n_filters"}


def test_input_must_be_fed_by_a_data_node(doc):
    doc.add_node("target", {"sample_shape": [2, 2, 8, 8, 3]})
    doc.connect("target", "data", "input", "x", replace=True)
    with pytest.raises(nodes.DocumentProblems, match="an Input must be fed by a Data node"):
        nodes.run_document(doc, backend="numpy")


def test_prediction_must_be_fed_through_an_input(doc):
    doc.connect("data", "data", "prediction_6d", "x", replace=True)
    with pytest.raises(nodes.DocumentProblems, match="over an Input node"):
        nodes.plan(doc)


def test_plan_traces_the_chain(doc):
    p = nodes.plan(doc)
    assert (p.data_node, p.input_node, p.chain, p.prediction_node) == (
        "data",
        "input",
        ["time_distributed"],
        "prediction_6d",
    )
    assert p.input_shape == (2, 2, 2, 8, 8, 3) and p.output_shape == (2, 2, 3, 10, 10, 5)


def test_memory_guard_refuses_with_the_estimate_and_the_limit(doc):
    need = estimate_bytes(nodes.plan(doc))
    with pytest.raises(nodes.MemoryLimitError) as info:
        nodes.run_document(doc, backend="numpy", memory_limit=need - 1)
    text = str(info.value)
    assert f"needs about {need / 2**20:,.1f} MiB" in text
    assert "above the memory limit of" in text
    assert nodes.run_document(doc, backend="numpy", memory_limit=need).info


def test_memory_guard_on_a_gpu_checks_one_batch_against_its_free_memory(doc, monkeypatch):
    from conv3dt_studio.compute.backend import Backend

    p = nodes.plan(doc)
    need = estimate_device_bytes(p, 1)
    assert need < estimate_device_bytes(p)  # one batch of 1 sample, not the whole data
    monkeypatch.setattr(Backend, "free_memory", lambda self: need - 1)  # a full GPU
    doc.nodes[p.prediction_node].params["batch_size"] = 1
    with pytest.raises(nodes.MemoryLimitError, match=r"memory on CPU per batch, above the"):
        nodes.run_document(doc, backend="numpy")
    monkeypatch.setattr(Backend, "free_memory", lambda self: need)
    assert nodes.run_document(doc, backend="numpy").info


def test_memory_estimate_of_the_toolkit_example_counts_the_prediction():
    p = nodes.plan(nodes.default_document())
    assert estimate_bytes(p) > 4 * math.prod((10, 6, 3, 66, 66, 5))


def test_weights_round_trip(doc, tmp_path):
    first = nodes.run_document(doc, backend="numpy", seed=1)
    path = tmp_path / "w.npz"
    save_weights(path, first.graph.layers)
    again = nodes.run_document(doc, backend="numpy", seed=1, weights=path)
    other = nodes.run_document(doc, backend="numpy", seed=2, weights=path)
    assert np.array_equal(first.prediction, again.prediction)
    assert not np.array_equal(first.input, other.input)  # other data, same weights
    w1 = first.graph.layers[1].get_weights()
    w2 = other.graph.layers[1].get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(w1, w2))


def test_weights_keys_and_optimizer_state(doc):
    result = nodes.run_document(doc, backend="numpy")
    keys = set(weights_dict(result.graph.layers))
    assert {"conv3d_transpose/kernel", "conv3d_transpose/bias"} <= keys
    assert "conv3d_transpose/optimizer/iterations" in keys


def test_weights_for_another_layer_are_refused(doc, tmp_path):
    path = tmp_path / "w.npz"
    np.savez(path, **{"other/kernel": np.zeros((3, 3, 3, 3, 2), np.float32)})
    with pytest.raises(nodes.FileError, match="no weights for layer `conv3d_transpose`"):
        nodes.run_document(doc, backend="numpy", weights=path)


def test_weights_of_the_wrong_shape_are_refused(doc, tmp_path):
    path = tmp_path / "w.npz"
    np.savez(
        path,
        **{
            "conv3d_transpose/kernel": np.zeros((2, 2, 2, 3, 2), np.float32),
            "conv3d_transpose/bias": np.zeros(3, np.float32),
        },
    )
    with pytest.raises(nodes.FileError, match="expected a kernel of shape"):
        nodes.run_document(doc, backend="numpy", weights=path)


def test_prediction_stats_count_nan_and_inf():
    y = np.array([1.0, 3.0, np.nan, np.inf, -np.inf], np.float32)
    stats = nodes.prediction_stats(y)
    assert (stats["min"], stats["max"], stats["mean"], stats["std"]) == (1.0, 3.0, 2.0, 1.0)
    assert (stats["nan"], stats["inf"]) == (1, 2)


def test_prediction_stats_of_no_finite_value():
    stats = nodes.prediction_stats(np.full(3, np.nan, np.float32))
    assert math.isnan(stats["mean"]) and stats["nan"] == 3


def _with_second_chain(doc, connect_layer: bool):
    """A second chain from the Input: Conv3DTranspose 2 -> TimeDistributed 2 -> Prediction 6D 2;
    without its layer link that chain is unfinished."""
    conv = doc.add_node("conv3d_transpose", {"n_filters": 7}).id
    td = doc.add_node("time_distributed", {}).id
    pred = doc.add_node("prediction_6d", {}).id
    doc.connect("input", "y", td, "x")
    if connect_layer:
        doc.connect(conv, "layer", td, "layer")
    doc.connect(td, "y", pred, "x")
    return conv, td, pred


def test_an_unfinished_branch_does_not_stop_running_a_complete_one(doc):
    _, td, pred = _with_second_chain(doc, connect_layer=False)
    assert not nodes.validate(doc).ok  # the editor still marks the unfinished branch
    first = nodes.run_document(doc, backend="numpy", prediction_node="prediction_6d")
    assert first.info.shape == (2, 2, 3, 10, 10, 5)
    with pytest.raises(nodes.DocumentProblems) as info:
        nodes.run_document(doc, backend="numpy", prediction_node=pred)
    assert {p.node for p in info.value.problems} == {td}


def test_each_prediction_of_a_two_chain_graph_runs(doc):
    *_, pred = _with_second_chain(doc, connect_layer=True)
    assert nodes.run_document(doc, backend="numpy", prediction_node=pred).info.shape[2] == 7
    with pytest.raises(nodes.DocumentProblems, match="no Prediction 6D node `nope`; the graph has"):
        nodes.run_document(doc, backend="numpy", prediction_node="nope")


def test_trained_weights_of_one_branch_leave_the_other_seeded(doc, tmp_path):
    conv2, _, pred2 = _with_second_chain(doc, connect_layer=True)
    second = nodes.run_document(doc, backend="numpy", prediction_node=pred2).graph.layers
    trained = weights_dict(second)  # names conv3d_transpose_2 only, as after training that branch
    trained[f"{conv2}/kernel"] = trained[f"{conv2}/kernel"] + 1.0
    seeded = nodes.run_document(doc, backend="numpy", prediction_node="prediction_6d")
    again = nodes.run_document(
        doc, backend="numpy", prediction_node="prediction_6d", weights=trained
    )
    np.testing.assert_array_equal(again.prediction, seeded.prediction)
    path = tmp_path / "w.npz"  # a file must cover the graph it is run with
    save_weights(path, second)
    with pytest.raises(nodes.FileError, match="has no weights for layer `conv3d_transpose`"):
        nodes.run_document(doc, backend="numpy", prediction_node="prediction_6d", weights=path)


def test_two_layers_may_not_share_a_name(doc):
    # names key the trained weights: one branch would pick up the other's
    conv2, td2, _ = _with_second_chain(doc, connect_layer=True)
    doc.nodes[conv2].params["name"] = "conv3d_transpose"  # the first one's node id
    doc.nodes[td2].params["name"] = "time_distributed"
    problems = {(p.node, p.param): p.message for p in nodes.validate(doc).problems}
    assert set(problems) == {(conv2, "name"), (td2, "name")}
    assert (
        "layer name `conv3d_transpose` is also node `conv3d_transpose`'s"
        in problems[(conv2, "name")]
    )


def test_the_run_estimate_counts_the_kernel_before_it_is_initialised(make_doc):
    """A huge kernel on tiny data is refused before the initializer allocates it."""
    doc = make_doc({"size": 350, "padding": True})
    p = nodes.plan(doc)
    assert p.weights == 350**3 * 3 * 2 + 3  # k^3 * filters * channels + bias
    with pytest.raises(nodes.MemoryLimitError, match="this run needs about") as info:
        nodes.run_document(doc, backend="numpy", memory_limit=4 * p.weights)
    (problem,) = info.value.problems
    assert problem.node == "prediction_6d"


def test_training_is_refused_before_anything_is_allocated(monkeypatch):
    from conv3dt_studio.nodes import memory
    from conv3dt_studio.nodes.examples import teacher_student
    from conv3dt_studio.nodes.runner import estimate_train_bytes
    from conv3dt_studio.nodes.training import train_document, train_plan

    doc = teacher_student()
    tp = train_plan(doc)
    need = estimate_train_bytes(tp.run, 8)
    allocated = []
    monkeypatch.setattr(
        "conv3dt_studio.nodes.training.load_data", lambda *a, **k: allocated.append(1)
    )
    with pytest.raises(memory.MemoryLimitError) as info:
        train_document(doc, backend="numpy", epochs=1, memory_limit=need - 1)
    assert allocated == []
    assert f"this training needs about {memory.mib(need)}" in str(info.value)
    assert f"above the memory limit of {memory.mib(need - 1)}" in str(info.value)


def test_the_training_estimate_grows_with_the_weights_and_the_batch():
    from conv3dt_studio.nodes.examples import teacher_student
    from conv3dt_studio.nodes.runner import estimate_train_bytes
    from conv3dt_studio.nodes.training import train_plan

    p = train_plan(teacher_student()).run
    assert estimate_train_bytes(p, 16) > estimate_train_bytes(p, 8) > estimate_bytes(p, 8)
    bigger = type(p)(**{**p.__dict__, "weights": p.weights * 10})
    assert estimate_train_bytes(bigger, 8) - estimate_train_bytes(p, 8) == 5 * 4 * 9 * p.weights


def test_a_huge_dilation_is_refused_by_the_run_estimate(make_doc):
    doc = make_doc({"dilation_rate": 2**31 - 1, "padding": True})
    assert nodes.validate(doc).ok  # a valid graph: "same" keeps the output small
    with pytest.raises(nodes.MemoryLimitError, match="this run needs about"):
        nodes.run_document(doc, backend="numpy")


@pytest.mark.timeout(120)  # a hang guard: the plan once enumerated the taps quadratically
@pytest.mark.parametrize("size", [10**5, 10**9])
def test_a_kernel_millions_of_taps_long_is_refused_at_once(make_doc, size):
    """What a run would need is estimated from formulas, not by enumerating the taps (the
    sub-pixel GEMM's plan did, quadratically: 51 s for 10^5 taps, the editor frozen on each
    edit); a kernel that long never takes the GEMM."""
    doc = make_doc({"size": [size, 1, 1]})
    problems = memory_problems(doc)
    assert len(problems) == 1 and "a run needs about" in str(problems[0])
    with pytest.raises(nodes.MemoryLimitError, match="this run needs about"):
        nodes.run_document(doc, backend="numpy")
