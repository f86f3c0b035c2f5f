"""Qt's X11 platform plugin is checked before Qt loads: a missing system library is one line that
names it and the apt line, instead of Qt's abort."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from conv3dt_studio.app import cli
from conv3dt_studio.app.cli import qt_platform
from conv3dt_studio.app.cli.qt_platform import (
    APT_LINE,
    SYSTEM_LIBRARIES,
    platform_problem,
    uses_xcb,
)

X11 = {"DISPLAY": ":0"}


@pytest.mark.parametrize(
    ("environ", "platform", "expected"),
    [
        (X11, "linux", True),
        ({"QT_QPA_PLATFORM": "xcb"}, "linux", True),
        ({"QT_QPA_PLATFORM": "xcb:display=:1"}, "linux", True),
        ({"QT_QPA_PLATFORM": "offscreen", **X11}, "linux", False),
        ({"QT_QPA_PLATFORM": "wayland", **X11}, "linux", False),
        ({"WAYLAND_DISPLAY": "wayland-0", **X11}, "linux", False),
        ({}, "linux", False),
        (X11, "darwin", False),
        (X11, "win32", False),
    ],
)
def test_which_environments_use_xcb(environ, platform, expected):
    assert uses_xcb(environ, platform) is expected


def _refusing(*names):
    def load(name):
        if name in names:
            raise OSError(f"{name}: cannot open shared object file: No such file or directory")

    return load


def test_missing_libraries_are_named_with_the_apt_line():
    line = platform_problem(X11, "linux", _refusing("libxcb-icccm.so.4", "libxcb-keysyms.so.1"))
    assert "libxcb-icccm.so.4, libxcb-keysyms.so.1)" in line
    assert line.endswith(APT_LINE) and "\n" not in line
    assert "libxcb-icccm4" in APT_LINE and "libxcb-keysyms1" in APT_LINE


def test_a_plugin_that_does_not_load_is_named(tmp_path):
    plugin = tmp_path / "libqxcb.so"
    line = platform_problem(X11, "linux", _refusing(str(plugin)), plugin=plugin)
    assert "platform plugin does not load" in line and str(plugin) in line


def test_nothing_to_say_when_everything_loads(tmp_path):
    assert platform_problem(X11, "linux", _refusing(), plugin=tmp_path / "p.so") is None
    assert platform_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux", _refusing("x")) is None


def test_the_command_line_prints_one_line_instead_of_starting_qt(capsys, monkeypatch):
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setattr(qt_platform.ctypes, "CDLL", _refusing("libxcb-cursor.so.0"))
    assert cli.main(["open"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "libxcb-cursor.so.0" in err[0] and APT_LINE in err[0]


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_a_bad_quit_after_is_one_line(capsys, monkeypatch, value):
    monkeypatch.setenv(cli.QUIT_AFTER_ENV, value)
    assert cli.main(["open"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert cli.QUIT_AFTER_ENV in line and repr(value) in line


def test_every_library_in_the_table_is_one_the_plugin_links_against():
    """Read off the installed plugin with ldd: the table holds no library Qt does not use."""
    plugin = qt_platform.xcb_plugin()
    assert plugin is not None and shutil.which("ldd"), "the PySide6 wheel's plugin and ldd"
    out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, check=True).stdout
    linked = {line.split()[0] for line in out.splitlines() if line.strip()}
    assert set(SYSTEM_LIBRARIES) - linked == set()
