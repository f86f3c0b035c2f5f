"""What the command line says about bad input: one line naming the thing in the CLI's own words
(its options, not the Python API's arguments), what is allowed and what was received."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from small_graphs import small_doc
from test_cli import error_lines, run

from conv3dt_studio.app.cli.parser import training_setting
from conv3dt_studio.nodes import EXAMPLES
from conv3dt_studio.nodes.examples import toolkit_example
from conv3dt_studio.nodes.interop import InteropError, export_document
from conv3dt_studio.nodes.settings import TRAINING_SCHEMA

TRAINABLE = str(EXAMPLES / "teacher_student.json")


@pytest.fixture
def graph(tmp_path) -> Path:
    path = tmp_path / "small.json"
    small_doc().save(path)
    return path


# ---------------------------------------------------------------- (1) a truncated TIFF
def test_a_truncated_imagej_tiff_is_refused_not_run_on_its_first_page(capsys, tmp_path):
    import tifffile

    stack = np.ones((2, 8, 2, 16, 4), np.float32)  # T Z C Y X: 32 pages of 16×4
    tiff = tmp_path / "cut.tif"
    tifffile.imwrite(tiff, stack, imagej=True, metadata={"axes": "TZCYX"})
    tiff.write_bytes(tiff.read_bytes()[: tiff.stat().st_size // 3])
    graph = tmp_path / "page.json"  # takes exactly what tifffile still reads: one 16×4 page
    toolkit_example(input_shape=(1, 1, 1, 16, 4)).save(graph)
    code, out, err = run(capsys, "run", graph, "--data", tiff)
    assert code == 2 and out == ""
    (line,) = error_lines(err)
    assert line.endswith(
        f"File `{tiff}` is truncated or damaged: its ImageJ metadata declares 32 images "
        "(pages), the file holds 1"
    )


# ---------------------------------------------------------------- (5) output suffixes
@pytest.mark.parametrize(
    ("argv", "name", "suffix"),
    [
        (["run", "{graph}", "--out"], "result.txt", ".npy"),
        (["import", "m.keras", "-o"], "o.txt", ".json"),
        (["train", "{graph}", "--weights-out"], "w.npy", ".npz"),
        (["train", "{graph}", "--history"], "h.csv", ".json"),
        (["bench", "--json"], "results.txt", ".json"),
    ],
)
def test_an_output_with_another_suffix_is_refused(capsys, graph, tmp_path, argv, name, suffix):
    target = tmp_path / name
    code, out, err = run(capsys, *[a.format(graph=graph) for a in argv], target)
    option = argv[-1]
    assert code == 2 and out == ""
    assert error_lines(err) == [
        f"Invalid value for {option}: expected a {suffix} file (a name without an extension "
        f"gets {suffix}). Received: `{target}`"
    ]
    assert not target.exists()


def test_run_out_without_a_suffix_gets_npy(capsys, graph, tmp_path):
    code, out, err = run(capsys, "run", graph, "--out", tmp_path / "result")
    assert code == 0, err
    assert f"saved: {tmp_path / 'result.npy'}" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.npy", "small.json"]
    assert np.load(tmp_path / "result.npy", allow_pickle=False).ndim == 6


def test_import_o_without_a_suffix_gets_json(capsys, graph, tmp_path):
    model = tmp_path / "model"
    assert run(capsys, "export", graph, "--format", "pytorch", "-o", model)[0] == 0
    code, out, err = run(capsys, "import", model, "-o", tmp_path / "back")
    assert code == 0, err
    assert f"into `{tmp_path / 'back.json'}`" in out
    assert (tmp_path / "back.json").is_file() and not (tmp_path / "back").exists()


# ---------------------------------------------------------------- (6) --epochs
EPOCHS_MAX = TRAINING_SCHEMA["epochs"].maximum


@pytest.mark.parametrize("value", ["0", "-1", "99999999999999999999999999", str(2**31), "x"])
def test_every_bad_epochs_value_gets_the_one_message_of_its_declaration(capsys, value):
    code, out, err = run(capsys, "train", TRAINABLE, "--epochs", value)
    assert code == 2 and out == ""
    assert error_lines(err) == [
        f"argument --epochs: expected an integer >= 1 and <= {EPOCHS_MAX}, got {value!r} "
        "(see conv3dt-studio train --help)"
    ]


def test_the_epochs_bound_is_the_training_schemas():
    assert EPOCHS_MAX == 2**31 - 1
    assert training_setting("epochs")(str(EPOCHS_MAX)) == EPOCHS_MAX
    assert training_setting("batch_size")("1") == 1


# ---------------------------------------------------------------- (7) the CLI's option names
def test_export_over_an_existing_file_says_pass_force(capsys, graph, tmp_path):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"precious")
    code, _, err = run(capsys, "export", graph, "--format", "onnx", "-o", target)
    assert code == 2
    assert error_lines(err) == [
        f"`{target}` already exists: pass --force to replace it. Nothing was written"
    ]
    assert target.read_bytes() == b"precious"


def test_the_python_api_says_force_true(tmp_path):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"precious")
    with pytest.raises(InteropError, match="already exists: pass force=True to replace it") as e:
        export_document(small_doc(), "onnx", target)
    assert e.value.param == "force"


def test_export_with_another_suffix_names_o(capsys, graph, tmp_path):
    target = tmp_path / "m.keras"
    code, _, err = run(capsys, "export", graph, "--format", "onnx", "-o", target)
    assert code == 2
    assert error_lines(err) == [
        "Invalid value for -o: expected a file name ending in .onnx (an ONNX file). "
        f"Received: -o '{target}'"
    ]


def test_a_data_npz_with_several_arrays_says_array(capsys, graph, tmp_path):
    path = tmp_path / "multi.npz"
    np.savez(path, a=np.zeros((1, 2, 2, 8, 8, 3)), b=np.zeros(3))
    code, _, err = run(capsys, "run", graph, "--data", path)
    assert code == 2
    assert error_lines(err) == [f"File `{path}` holds 2 arrays (a, b): set --array to choose one"]


# ---------------------------------------------------------------- (10) --weights of a .npy
def test_weights_given_as_a_npy_say_a_npz_is_needed(capsys, graph, tmp_path):
    path = tmp_path / "data.npy"
    np.save(path, np.zeros((2, 3), np.float32))
    code, _, err = run(capsys, "run", graph, "--weights", path)
    assert code == 2
    assert error_lines(err) == [
        f"`{path}` is not a weights file: expected a .npz file of named arrays (<layer>/kernel, "
        "<layer>/bias). Received: a .npy file holding one float32 array of shape (2, 3)"
    ]


# ---------------------------------------------------------------- (11) not a graph, not data
NOT_A_GRAPH = (
    "not a graph file: expected JSON text (a .json graph) or a snippet .png with an embedded "
    "graph; received binary data"
)


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("a.npy", lambda p: np.save(p, np.zeros(3))),
        ("b.json", lambda p: p.write_bytes(b"\x00\x01\xff\xfe\x00")),  # read as UTF-16 by json
        ("c.json", lambda p: p.write_bytes(b'{"format": "x\x00\x07"}')),
    ],
)
def test_a_binary_graph_file_is_not_a_graph_file(capsys, tmp_path, name, write):
    path = tmp_path / name
    write(path)
    code, _, err = run(capsys, "run", path)
    assert code == 2
    assert error_lines(err) == [f"{path}: {NOT_A_GRAPH}"]


def test_data_of_an_unread_format_lists_the_formats_read(capsys, graph, tmp_path):
    from PIL import Image

    path = tmp_path / "plain.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
    code, _, err = run(capsys, "run", graph, "--data", path)
    assert code == 2
    (line,) = error_lines(err)
    assert line.endswith(
        f"File `{path}` is not a data file: expected a .npy or .npz file, a TIFF stack (.tif, "
        ".tiff), a video (.mp4, .avi, .mov, .mkv, .webm, .m4v, .mpg, .mpeg, .wmv) or a folder "
        "of images. Received: a single image (give the folder holding the images, one per frame)"
    )


# ---------------------------------------------------------------- (12) stdout, bench
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_full_stdout_is_one_line_naming_it():
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "conv3dt_studio.app.cli", "info"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": ""},  # buffered: the write fails at a flush
            check=False,
        )
    assert done.returncode == 2
    assert done.stderr == (
        "conv3dt-studio: error: cannot write to standard output: No space left on device\n"
    )


@pytest.mark.parametrize("value", ["0", "-1"])
def test_bench_rounds_says_what_it_received(capsys, value):
    code, _, err = run(capsys, "bench", "--rounds", value)
    assert code == 2
    assert error_lines(err) == [
        f"argument --rounds: expected an integer >= 1 and <= 10000, got '{value}' "
        "(see conv3dt-studio bench --help)"
    ]


def test_train_outputs_without_a_suffix_get_theirs(capsys, tmp_path):
    from small_graphs import teacher_doc

    graph = tmp_path / "ts.json"
    teacher_doc(1).save(graph)
    argv = ("train", graph, "--weights-out", tmp_path / "w", "--history", tmp_path / "h")
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.json", "ts.json", "w.npz"]
    with np.load(tmp_path / "w.npz", allow_pickle=False) as weights:
        assert any(k.endswith("/kernel") for k in weights.files)
