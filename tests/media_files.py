"""Small TIFF stacks, videos and image folders for the tests, written with the formats' own
libraries (tifffile, imageio with its ffmpeg plugin), and the damaged ones the readers must
refuse in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# a hyperstack (time, z, channel, y, x), as ImageJ stores it
STACK_AXES = "TZCYX"
STACK = (np.arange(2 * 3 * 2 * 8 * 10) % 251).astype(np.uint8).reshape(2, 3, 2, 8, 10)
FRAMES = 4  # video and image-folder frames of 16 x 32 pixels (codec-friendly sizes)


def write_stack(path: Path, ome: bool = False) -> Path:
    import tifffile

    if ome:
        tifffile.imwrite(path, STACK, ome=True, metadata={"axes": STACK_AXES})
    else:
        tifffile.imwrite(path, STACK, imagej=True, metadata={"axes": STACK_AXES})
    return path


def write_plain_tiff(path: Path, shape: tuple[int, ...] = (5, 8, 10)) -> Path:
    """A multi-page TIFF without metadata: tifffile calls its first axis Q (unknown)."""
    import tifffile

    tifffile.imwrite(path, np.ones(shape, np.uint16))
    return path


def write_truncated_tiff(path: Path) -> Path:
    """A TIFF whose pixel data are cut short (its header intact)."""
    import tifffile

    tifffile.imwrite(
        path, np.ones((4, 64, 64), np.uint8), photometric="minisblack", metadata={"axes": "TYX"}
    )
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def frames() -> np.ndarray:
    """(FRAMES, 16, 32, 3) uint8 frames, each one flat colour brighter than the last."""
    levels = np.linspace(30, 220, FRAMES).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (FRAMES, 16, 32, 3)).copy()


def write_video(path: Path) -> Path:
    import imageio.v2 as iio

    iio.mimwrite(path, list(frames()), fps=5, format="FFMPEG", macro_block_size=16)
    return path


def write_image_folder(path: Path, sizes: list[tuple[int, int]] | None = None) -> Path:
    """PNG frames named so that their order by name is not their order of writing."""
    import imageio.v3 as iio

    path.mkdir()
    data = frames()
    for i in reversed(range(FRAMES)):
        h, w = sizes[i] if sizes else data.shape[1:3]
        iio.imwrite(path / f"frame_{i:03d}.png", np.ascontiguousarray(data[i, :h, :w]))
    return path
