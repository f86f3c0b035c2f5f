"""``conv3dt-studio summary``: the Keras-style table, --prediction, and problems (exit 2)."""

from __future__ import annotations

from small_graphs import small_doc

from conv3dt_studio.app import cli

ERR = "conv3dt-studio: error: "


def _run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_summary_prints_each_layer_and_the_totals(capsys, tmp_path):
    path = tmp_path / "small.json"
    small_doc().save(path)
    code, out, err = _run(capsys, "summary", path)
    assert code == 0 and err == ""
    row = next(line for line in out.splitlines() if line.startswith("conv3d_transpose"))
    assert "(2, 2, 3, 10, 10, 5)" in row and " 165 " in row
    assert "124,416" in row  # 2·2·2·8·8·3 input elements × 27 taps × 3 filters
    assert "Total params: 165" in out and "Total mult-adds: 124,416" in out


def test_an_invalid_graph_gives_one_line_per_problem_and_exit_2(capsys, tmp_path):
    doc = small_doc()
    doc.disconnect("input", "y", "time_distributed", "x")
    doc.disconnect("conv3d_transpose", "layer", "time_distributed", "layer")
    path = tmp_path / "broken.json"
    doc.save(path)
    code, out, err = _run(capsys, "summary", path)
    lines = err.strip().splitlines()
    assert code == 2 and out == ""
    assert len(lines) >= 2 and all(line.startswith(ERR + str(path)) for line in lines)
    assert "Traceback" not in err


def test_an_unknown_prediction_node_is_named(capsys, tmp_path):
    path = tmp_path / "small.json"
    small_doc().save(path)
    code, _out, err = _run(capsys, "summary", path, "--prediction", "nope")
    assert code == 2
    assert "no Prediction 6D node `nope`; the graph has: prediction_6d" in err
