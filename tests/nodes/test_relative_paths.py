"""A graph's relative data paths are resolved against the graph file's folder, not the cwd."""

from __future__ import annotations

import numpy as np

from conv3dt_studio import nodes
from conv3dt_studio.nodes.examples import toolkit_example


def test_relative_data_path_follows_the_graph_file(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    x = np.random.default_rng(0).standard_normal((2, 2, 2, 6, 6, 3), dtype=np.float32)
    np.save(folder / "x.npy", x)
    doc = toolkit_example(data={"source": "file", "path": "x.npy"}, input_shape=(2, 2, 6, 6, 3))
    doc.save(folder / "g.json")
    monkeypatch.chdir(tmp_path)  # somewhere else
    loaded = nodes.load(folder / "g.json")
    assert nodes.validate(loaded).shapes["data"] == (2, 2, 2, 6, 6, 3)
    result = nodes.run_document(loaded, backend="numpy")
    assert np.array_equal(result.input, x)
    assert loaded.copy().resolve_path("x.npy") == str(folder / "x.npy")


def test_save_elsewhere_rewrites_relative_data_paths(tmp_path):
    folder, other = tmp_path / "project", tmp_path / "elsewhere" / "deeper"
    folder.mkdir()
    other.mkdir(parents=True)
    x = np.ones((1, 2, 2, 6, 6, 3), np.float32)
    np.save(folder / "x.npy", x)
    doc = toolkit_example(data={"source": "file", "path": "x.npy"}, input_shape=(2, 2, 6, 6, 3))
    doc.save(folder / "g.json")
    loaded = nodes.load(folder / "g.json")
    loaded.save(other / "g2.json")
    assert loaded.nodes["data"].params["path"] == "x.npy"  # the open document is unchanged
    moved = nodes.load(other / "g2.json")
    assert moved.nodes["data"].params["path"] == "../../project/x.npy"
    assert np.array_equal(nodes.run_document(moved, backend="numpy").input, x)
