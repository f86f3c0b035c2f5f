"""Safe files: .npy/.npz without pickle, atomic array saves, one-line errors naming the file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from conv3dt_studio.nodes import FileError
from conv3dt_studio.nodes.data_sources import generate, load_file, peek_shape
from conv3dt_studio.nodes.files import load_arrays, save_npy, save_npz


def test_save_npy_and_load(tmp_path):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    save_npy(tmp_path / "a.npy", a)
    assert np.array_equal(load_file(str(tmp_path / "a.npy")), a)
    assert peek_shape(str(tmp_path / "a.npy")) == (2, 3)


def test_save_npy_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "a.npy"
    save_npy(path, np.zeros(3))
    before = path.read_bytes()
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError(5, "I/O error")))
    with pytest.raises(FileError, match="Cannot save .*a.npy.*I/O error"):
        save_npy(path, np.ones(3))
    monkeypatch.undo()
    assert path.read_bytes() == before


def test_npz_arrays_by_name(tmp_path):
    save_npz(tmp_path / "a.npz", {"x": np.zeros((1, 2)), "y": np.ones(3)})
    assert set(load_arrays(tmp_path / "a.npz")) == {"x", "y"}
    assert load_file(str(tmp_path / "a.npz"), "y").tolist() == [1, 1, 1]
    with pytest.raises(FileError, match="has no array `z`: it holds x, y"):
        load_file(str(tmp_path / "a.npz"), "z")
    with pytest.raises(FileError, match="holds 2 arrays"):
        load_file(str(tmp_path / "a.npz"))


def test_pickled_npy_is_never_loaded(tmp_path):
    path = tmp_path / "evil.npy"
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(FileError, match="evil.npy` holds Python objects"):
        load_file(str(path))
    with pytest.raises(FileError, match="holds Python objects"):
        peek_shape(str(path))


def test_non_numeric_array_is_refused(tmp_path):
    np.save(tmp_path / "s.npy", np.array(["a", "b"]))
    with pytest.raises(FileError, match="expected numbers"):
        load_file(str(tmp_path / "s.npy"))


@pytest.mark.parametrize("content", [b"", b"not numpy", b"\x93NUMPY\x01\x00garbage"])
def test_corrupt_files(tmp_path, content):
    path = tmp_path / "bad.npy"
    path.write_bytes(content)
    with pytest.raises(FileError, match="bad.npy` is not a readable .npy/.npz file"):
        load_file(str(path))
    with pytest.raises(FileError, match="bad.npy"):
        peek_shape(str(path))


def test_missing_and_unset_files(tmp_path):
    with pytest.raises(FileError, match="does not exist"):
        load_file(str(tmp_path / "nope.npy"))
    with pytest.raises(FileError, match="No data file given"):
        load_file("")


@pytest.mark.parametrize(
    ("distribution", "check"),
    [
        ("zeros", lambda a: not a.any()),
        ("ones", lambda a: (a == 1).all()),
        ("uniform", lambda a: ((a >= 0) & (a < 1)).all()),
        ("normal", lambda a: abs(float(a.mean())) < 0.2),
    ],
)
def test_generator(distribution, check):
    params = {"distribution": distribution, "batch_size": 4, "sample_shape": (5, 6), "seed": 3}
    a = generate(params)
    assert a.shape == (4, 5, 6) and a.dtype == np.float32 and check(a)
    assert np.array_equal(a, generate(params))


def test_atomic_write_keeps_permissions_follows_links_and_refuses_devices(tmp_path):
    import stat

    from conv3dt_studio.nodes.files import FileError, atomic_write_bytes

    existing = tmp_path / "a.bin"
    existing.write_bytes(b"old")
    existing.chmod(0o644)
    atomic_write_bytes(existing, b"new")
    assert existing.read_bytes() == b"new"
    assert stat.S_IMODE(existing.stat().st_mode) == 0o644
    fresh = tmp_path / "fresh.bin"
    atomic_write_bytes(fresh, b"x")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~mask
    link = tmp_path / "link.bin"
    link.symlink_to(existing)
    atomic_write_bytes(link, b"via link")
    assert link.is_symlink() and existing.read_bytes() == b"via link"
    with pytest.raises(FileError, match="is a folder"):
        atomic_write_bytes(tmp_path, b"x")
    with pytest.raises(FileError, match=r"`.*a\.bin` is a file, not a folder"):
        atomic_write_bytes(existing / "under.bin", b"x")
    with pytest.raises(FileError, match="not a regular file"):
        atomic_write_bytes("/dev/null", b"x")
    assert not os.path.isfile("/dev/null")


def _special_files(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    broken = tmp_path / "broken"
    broken.symlink_to(tmp_path / "nowhere")
    return [
        (tmp_path / "missing.npy", "does not exist"),
        (tmp_path, "is a folder, not a file"),
        (fifo, "is a FIFO (named pipe), not a file"),
        (Path("/dev/zero"), "is a character device, not a file"),
        (loop, "is a symbolic link loop"),
        (broken, "is a broken symbolic link"),
    ]


@pytest.mark.parametrize("reader", ["graph", "arrays", "peek"])
def test_what_is_not_a_regular_file_is_named_as_what_it_is(tmp_path, reader):
    from conv3dt_studio import nodes

    read = {"graph": nodes.load, "arrays": load_arrays, "peek": peek_shape}[reader]
    for path, expected in _special_files(tmp_path):
        if reader == "peek" and path == tmp_path:  # a data source may be a folder of images
            expected = "holds no images"
        with pytest.raises(FileError) as err:
            read(path if reader != "peek" else str(path))
        assert expected in str(err.value) and str(path) in str(err.value)


def test_a_save_removes_the_temporaries_a_killed_save_left(tmp_path):
    """A kill between writing the temporary and renaming it leaves `.NAME.<pid>.<x>.tmp`; the
    next save of NAME removes those of dead processes and keeps a live writer's."""
    import subprocess
    import sys

    from conv3dt_studio.nodes.files import atomic_write_text

    target = tmp_path / "g.json"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    orphan = tmp_path / f".g.json.{dead_pid}.abc123.tmp"
    orphan.write_text("half a graph")
    live = tmp_path / f".g.json.{os.getpid()}.def456.tmp"
    live.write_text("being written")
    other = tmp_path / f".h.json.{dead_pid}.abc123.tmp"
    other.write_text("another file's")
    atomic_write_text(target, "{}")
    assert target.read_text() == "{}"
    assert not orphan.exists() and live.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".g.json.")) == [
        live.name
    ]


def test_an_npz_that_inflates_beyond_the_limit_is_refused_from_its_header(tmp_path, monkeypatch):
    """A small .npz of zeros declares a large array: its size is read from the member's header
    and refused before NumPy inflates it."""
    big = tmp_path / "bomb.npz"
    np.savez_compressed(big, x=np.zeros((256, 1024, 1024), np.uint8))  # 256 MiB, ~250 KiB on disk
    assert big.stat().st_size < 2**20
    inflated = []
    monkeypatch.setattr(np, "load", lambda *a, **k: inflated.append(a))
    with pytest.raises(FileError) as err:
        load_arrays(big, limit=2**28)
    assert "would take about 1,024.0 MiB once loaded" in str(err.value)  # as float32
    assert "above the memory limit of 256.0 MiB" in str(err.value) and inflated == []
    with pytest.raises(FileError, match="once loaded"):
        load_file(str(big), limit=2**28)


def test_data_files_read_only_the_array_they_use(tmp_path):
    path = tmp_path / "two.npz"
    np.savez(path, small=np.ones((2, 3), np.float32), large=np.zeros((1000, 1000), np.float32))
    assert load_file(str(path), "small", limit=100).shape == (2, 3)  # 24 bytes: under 100
