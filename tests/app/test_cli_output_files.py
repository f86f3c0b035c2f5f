"""Every output option is checked by one function before any work, with the same messages:
`run --out`, `train --weights-out` and `--history`, `snippet -o`, `bench --json`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conv3dt_studio.app.cli import main
from conv3dt_studio.app.cli.output_files import checked_output, output_problem
from conv3dt_studio.nodes import EXAMPLES

GRAPH = str(EXAMPLES / "teacher_student.json")
ERR = "conv3dt-studio: error: "

# option -> the command line writing NAME there
COMMANDS = {
    "--out": ["run", GRAPH, "--out"],
    "--weights-out": ["train", GRAPH, "--weights-out"],
    "--history": ["train", GRAPH, "--history"],
    "-o": ["snippet", GRAPH, "-o"],
    "--json": ["bench", "--json"],
}

# each option's file has one format and so one extension
EXTENSIONS = {
    "--out": ".npy",
    "-o": ".png",
    "--weights-out": ".npz",
    "--history": ".json",
    "--json": ".json",
}

# kind -> what its message says
KINDS = {
    "empty": "give a file name",
    "folder": "is a folder, not a file",
    "under-a-file": "is a file, not a folder",
    "missing-folder": "does not exist",
    "existing": "already exists",
    "dangling-link": "already exists",
    "unwritable": "cannot write in folder `/proc`",  # whoever runs the tests, root included
    "device": "is a character device, not a regular file",
    "fifo": "is a FIFO (named pipe), not a regular file",
}


def bad_output(tmp_path: Path, kind: str, ext: str = ".png") -> str:
    """An output name of the given kind, ending in ``ext`` (.png, which every command accepts
    but `run --out`: .npy)."""
    if kind == "folder":
        (tmp_path / f"d{ext}").mkdir()
    elif kind == "under-a-file":
        (tmp_path / "file").write_text("")
    elif kind == "existing":
        (tmp_path / f"old{ext}").write_bytes(b"precious")
    elif kind == "dangling-link":
        (tmp_path / f"link{ext}").symlink_to(tmp_path / "nowhere")
    elif kind == "fifo":
        os.mkfifo(tmp_path / f"pipe{ext}")
    names = {
        "empty": "",
        "folder": tmp_path / f"d{ext}",
        "under-a-file": tmp_path / "file" / f"x{ext}",
        "missing-folder": tmp_path / "nodir" / f"x{ext}",
        "existing": tmp_path / f"old{ext}",
        "dangling-link": tmp_path / f"link{ext}",
        "unwritable": f"/proc/x{ext}",
        "device": "/dev/null",
        "fifo": tmp_path / f"pipe{ext}",
    }
    return str(names[kind])


# an extension is added to no empty name, folder or device: each is refused as such
CASES = [(o, k) for o in sorted(COMMANDS) for k in sorted(KINDS)]


@pytest.mark.parametrize(("option", "kind"), CASES)
def test_every_output_option_is_refused_alike(capsys, tmp_path, option, kind):
    name = bad_output(tmp_path, kind, EXTENSIONS[option])
    assert main([*COMMANDS[option], name]) == 2
    err = capsys.readouterr().err
    assert err == f"{ERR}{output_problem(name, False, option)}\n"
    assert KINDS[kind] in err


def test_existing_outputs_are_kept(capsys, tmp_path):
    for option in COMMANDS:
        name = bad_output(tmp_path, "existing", EXTENSIONS[option])
        assert main([*COMMANDS[option], name]) == 2
        assert Path(name).read_bytes() == b"precious"


@pytest.mark.parametrize("kind", ["existing", "dangling-link"])
def test_force_lets_an_existing_name_be_replaced(tmp_path, kind):
    assert output_problem(bad_output(tmp_path, kind), True, "--out") is None


def test_a_writable_new_file_passes(tmp_path):
    assert output_problem(str(tmp_path / "new.npy"), False, "--out") is None
    assert checked_output(str(tmp_path / "new.npy"), False, "--out") == tmp_path / "new.npy"
    assert checked_output(None, False, "--out") is None


def test_the_messages_name_the_option_and_the_path(tmp_path):
    existing = bad_output(tmp_path, "existing")
    assert output_problem(existing, False, "--history") == (
        f"`{existing}` already exists: choose another --history or add --force"
    )
    missing = tmp_path / "nodir" / "x.npy"
    assert output_problem(str(missing), False, "--out") == (
        f"cannot save `{missing}`: folder `{missing.parent}` does not exist"
    )


@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_force_does_not_make_a_device_or_fifo_writable(tmp_path, kind):
    assert KINDS[kind] in output_problem(bad_output(tmp_path, kind), True, "--out")


@pytest.mark.parametrize("second", ["link.json", "./link.json"])
def test_two_outputs_naming_one_file_are_refused_before_training(capsys, tmp_path, second):
    """Their extensions differ (.npz, .json), but a link can still make them one file."""
    (tmp_path / "link.json").symlink_to(tmp_path / "same.npz")
    first = str(tmp_path / "same.npz")
    second = str(tmp_path / second) if second != "./link.json" else str(tmp_path) + "/./link.json"
    assert main(["train", GRAPH, "--weights-out", first, "--history", second]) == 2
    out, err = capsys.readouterr()
    assert (
        err == f"{ERR}--weights-out and --history name the same file `{second}`: give each "
        "its own file\n"
    )
    assert "epoch" not in out and not (tmp_path / "same.npz").exists()
