"""TIFF stacks, videos and image folders as data sources: shapes from headers, axes mapped to
(batch, time, channel, d1, d2, d3), pixels read through the formats' libraries, and bad files
refused in one line naming the file."""

from __future__ import annotations

import numpy as np
import pytest
from media_files import (
    FRAMES,
    STACK,
    frames,
    write_image_folder,
    write_plain_tiff,
    write_stack,
    write_truncated_tiff,
    write_video,
)

from conv3dt_studio import nodes
from conv3dt_studio.nodes import media
from conv3dt_studio.nodes.data_sources import load_file, peek_shape
from conv3dt_studio.nodes.files import FileError

STACK_OURS = STACK.transpose(0, 2, 1, 3, 4)[None]  # TZCYX -> B T C Z Y X


@pytest.mark.parametrize("ome", [False, True])
def test_a_tiff_stack_maps_its_own_axes(tmp_path, ome):
    path = str(write_stack(tmp_path / "stack.tif", ome))
    assert peek_shape(path) == STACK_OURS.shape == (1, 2, 2, 3, 8, 10)
    np.testing.assert_array_equal(load_file(path), STACK_OURS)


@pytest.mark.parametrize(
    ("axes", "shape"),
    [("BZCYX", (2, 1, 2, 3, 8, 10)), ("TCZXY", (1, 2, 3, 2, 10, 8))],
)
def test_axes_name_the_files_axes_in_order(tmp_path, axes, shape):
    path = str(write_stack(tmp_path / "stack.tif"))
    assert peek_shape(path, axes=axes) == shape
    order = [axes.index(a) for a in "BTCZYX" if a in axes]
    np.testing.assert_array_equal(load_file(path, axes=axes), STACK.transpose(order).reshape(shape))


def test_a_tiff_without_axes_needs_them_named(tmp_path):
    path = str(write_plain_tiff(tmp_path / "plain.tif"))
    with pytest.raises(media.AxesError, match=r"plain\.tif` does not name its axes.*QYX"):
        peek_shape(path)
    assert peek_shape(path, axes="ZYX") == (1, 1, 1, 5, 8, 10)


def test_a_video_is_time_channels_height_width(tmp_path):
    path = str(write_video(tmp_path / "clip.mp4"))
    assert peek_shape(path) == (1, FRAMES, 3, 1, 16, 32)
    x = load_file(path)
    brightness = x.mean(axis=(0, 2, 3, 4, 5))
    expected = frames().mean(axis=(1, 2, 3))
    np.testing.assert_allclose(brightness, expected, atol=4)  # a lossy codec


def test_an_image_folder_is_its_frames_sorted_by_name(tmp_path):
    path = str(write_image_folder(tmp_path / "frames"))
    assert peek_shape(path) == (1, FRAMES, 3, 1, 16, 32)
    np.testing.assert_array_equal(
        load_file(path)[0, :, :, 0], frames().transpose(0, 3, 1, 2).astype(np.float32)
    )


def test_shapes_come_from_headers_without_reading_pixels(tmp_path, monkeypatch):
    paths = [
        write_stack(tmp_path / "stack.tif"),
        write_video(tmp_path / "clip.mp4"),
        write_image_folder(tmp_path / "frames"),
    ]

    def refuse(*_args, **_kwargs):
        raise AssertionError("pixels were read")

    monkeypatch.setattr(media, "read_media", refuse)
    for path in paths:
        doc = nodes.default_document()
        doc.set_param("data", "source", "file")
        doc.set_param("data", "path", str(path))
        assert nodes.validate(doc).shapes["data"][0] == 1


def test_the_memory_guard_refuses_before_reading(tmp_path, monkeypatch):
    path = str(write_stack(tmp_path / "stack.tif"))
    monkeypatch.setattr(media, "read_media", lambda *a: pytest.fail("pixels were read"))
    with pytest.raises(FileError, match=r"stack\.tif` would take about .* above the memory limit"):
        load_file(path, limit=100)


def test_reading_reports_progress(tmp_path):
    path = str(write_image_folder(tmp_path / "frames"))
    seen: list[tuple[float, str]] = []
    load_file(path, progress=lambda f, m: seen.append((f, m)))
    assert [f for f, _ in seen] == pytest.approx([(i + 1) / FRAMES for i in range(FRAMES)])
    assert {m for _, m in seen} == {"reading frames"}


def _mixed_folder(tmp_path):
    return write_image_folder(tmp_path / "mixed", [(16, 32), (16, 32), (8, 32), (16, 32)])


@pytest.mark.parametrize(
    ("make", "axes", "expected"),
    [
        (lambda p: write_truncated_tiff(p / "cut.tif"), "", "cut.tif` is truncated"),
        (
            lambda p: (p / "bad.mp4").write_bytes(b"not a video" * 50) and p / "bad.mp4",
            "",
            "bad.mp4` is not a readable video",
        ),
        (_mixed_folder, "", "mixed` holds images of different sizes: `frame_000.png` is 16×32×3"),
        (
            lambda p: write_stack(p / "stack.tif"),
            "TZYX",
            "stack.tif` has 5 axes (shape 2×3×2×8×10, its own axes TZCYX) but axes='TZYX' names 4",
        ),
        (lambda p: write_stack(p / "stack.tif"), "TZCYQ", "Received: axes='TZCYQ'"),
        (lambda p: write_stack(p / "stack.tif"), "TZCYY", "each at most once"),
        (lambda p: p / "empty", "", "holds no images"),
    ],
)
def test_a_bad_file_is_one_line_naming_it(tmp_path, make, axes, expected):
    (tmp_path / "empty").mkdir()
    path = str(make(tmp_path))
    with pytest.raises(FileError) as err:
        peek_shape(path, axes=axes)
        load_file(path, axes=axes)
    message = str(err.value)
    assert expected in message and "\n" not in message
