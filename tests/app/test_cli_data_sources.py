"""`run`/`train --data FILE [--axes]` with TIFF stacks, videos and image folders, and their bad
files in one line naming the file."""

from __future__ import annotations

import numpy as np
import pytest
from media_files import (
    FRAMES,
    write_image_folder,
    write_stack,
    write_truncated_tiff,
    write_video,
)
from test_cli import error_lines, run

from conv3dt_studio.nodes.examples import toolkit_example, upsample_2x


@pytest.fixture
def frames_graph(tmp_path):
    """A graph whose Input takes a video's or image folder's samples: (4, 3, 1, 16, 32)."""
    path = tmp_path / "frames.json"
    toolkit_example(input_shape=(FRAMES, 3, 1, 16, 32)).save(path)
    return path


@pytest.mark.parametrize("writer", [write_video, write_image_folder])
def test_run_reads_videos_and_image_folders(capsys, tmp_path, frames_graph, writer):
    source = writer(tmp_path / ("clip.mp4" if writer is write_video else "frames"))
    code, out, err = run(capsys, "run", frames_graph, "--data", source)
    assert code == 0, err
    assert f"shape:       (1, {FRAMES}, 3, 3, 18, 34)" in out


def test_run_maps_a_tiff_with_axes(capsys, tmp_path):
    graph = tmp_path / "g.json"
    toolkit_example(input_shape=(3, 2, 1, 8, 10)).save(graph)
    tiff = write_stack(tmp_path / "s.tif")  # 2×3×2×8×10, its own axes TZCYX
    code, out, err = run(capsys, "run", graph, "--data", tiff, "--axes", "BTCYX")
    assert code == 0, err
    assert "shape:       (2, 3, 3, 3, 10, 12)" in out
    code, out, err = run(capsys, "run", graph, "--data", tiff, "--axes", "TCYX")
    assert code == 2
    (line,) = error_lines(err)
    assert line.startswith("Invalid value for --axes: file ")
    assert "has 5 axes" in line and "but --axes 'TCYX' names 4" in line


def test_train_with_data_resamples_the_input_and_keeps_the_original_as_target(capsys, tmp_path):
    import tifffile

    graph = tmp_path / "up.json"
    upsample_2x().save(graph)
    blobs = upsample_2x()
    from conv3dt_studio.nodes.runner import load_data

    samples = load_data(blobs, "data")[:8, :, 0]  # (batch, time, z, y, x)
    tiff = tmp_path / "blobs.tif"
    tifffile.imwrite(tiff, samples, photometric="minisblack")
    argv = ["train", graph, "--data", tiff, "--axes", "BTZYX", "--epochs", "2"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert "trained 2 epochs" in out
    assert "nearest-neighbour baseline (validation samples): " in out


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: write_truncated_tiff(p / "cut.tif"), "cut.tif` is truncated"),
        (
            lambda p: (p / "bad.mp4").write_bytes(b"\x00" * 300) and p / "bad.mp4",
            "not a readable video",
        ),
        (
            lambda p: write_image_folder(p / "mixed", [(16, 32), (8, 32), (16, 32), (16, 32)]),
            "holds images of different sizes",
        ),
    ],
)
def test_a_bad_file_is_one_line_naming_it(capsys, tmp_path, frames_graph, make, expected):
    source = make(tmp_path)
    code, out, err = run(capsys, "run", frames_graph, "--data", source)
    assert code == 2 and out == ""
    (line,) = error_lines(err)
    assert expected in line and f"`{source}" in line and "node `data`" in line


def test_axes_without_data_is_a_usage_error(capsys):
    code, _, err = run(capsys, "run", "--axes", "TZCYX")
    assert code == 2
    assert error_lines(err) == ["--axes describes the --data file: give --data FILE too"]


def test_data_and_x_together_are_refused(capsys, tmp_path):
    graph = tmp_path / "up.json"
    upsample_2x().save(graph)
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((2, 4, 1, 8, 8, 8), np.float32))
    code, _, err = run(capsys, "train", graph, "--data", path, "--x", path)
    assert code == 2 and "give one" in error_lines(err)[0]
