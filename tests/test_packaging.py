"""What the wheel holds: one top-level package, `conv3dt_studio`, with its resources inside, and
metadata with one version, an SPDX license and no SciPy. (.ci/wheel_smoke installs that wheel
outside the checkout and uses it.)"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import conv3dt_studio
from conv3dt_studio.resources import FOLDER, example_paths

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (path,) = out.glob("conv3dt_studio-*.whl")
    with zipfile.ZipFile(path) as zf:
        yield zf


def test_the_only_top_level_package_is_conv3dt_studio(wheel):
    tops = {name.split("/")[0] for name in wheel.namelist()}
    assert tops == {"conv3dt_studio", f"conv3dt_studio-{conv3dt_studio.__version__}.dist-info"}


def test_the_layers_are_subpackages(wheel):
    names = set(wheel.namelist())
    for layer in ("compute", "nodes", "app", "resources"):
        assert f"conv3dt_studio/{layer}/__init__.py" in names
    assert {"conv3dt_studio/__init__.py", "conv3dt_studio/__main__.py"} <= names
    assert "conv3dt_studio/py.typed" in names


def test_resources_are_inside_the_package(wheel):
    names = set(wheel.namelist())
    expected = {"graph.schema.json", "style.qss"} | {f"examples/{p.name}" for p in example_paths()}
    assert len(expected) >= 6
    for name in expected:
        assert f"conv3dt_studio/resources/{name}" in names
        assert wheel.read(f"conv3dt_studio/resources/{name}") == (FOLDER / name).read_bytes()


def test_metadata(wheel):
    info = f"conv3dt_studio-{conv3dt_studio.__version__}.dist-info"
    meta = Parser().parsestr(wheel.read(f"{info}/METADATA").decode())
    assert meta["Version"] == conv3dt_studio.__version__
    assert meta["License-Expression"] == "MIT"
    assert f"{info}/licenses/LICENSE" in wheel.namelist()
    requires = meta.get_all("Requires-Dist")
    assert not [r for r in requires if r.lower().startswith("scipy")]
    (numba,) = [r for r in requires if r.startswith("numba")]
    assert "<" not in numba.split(";")[0], numba
    scripts = wheel.read(f"{info}/entry_points.txt").decode()
    assert "conv3dt-studio = conv3dt_studio.app.cli:main" in scripts


def test_python_m_conv3dt_studio_is_the_command_line():
    out = subprocess.run(
        [sys.executable, "-m", "conv3dt_studio", "--version"],
        capture_output=True,
        text=True,
        cwd=Path.home() if Path.home().is_dir() else "/",
        check=True,
    )
    assert out.stdout.strip() == f"conv3dt-studio {conv3dt_studio.__version__}"


def test_every_package_folder_of_the_checkout_is_in_the_wheel(wheel):
    """A new subpackage (e.g. nodes/interop) must be listed in pyproject.toml's packages."""
    names = set(wheel.namelist())
    folders = {"compute": "compute", "nodes": "nodes", "app": "app", "resources": "resources"}
    missing = []
    for layer, folder in folders.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.relative_to(ROOT / folder).as_posix()
            if f"conv3dt_studio/{layer}/{rel}" not in names:
                missing.append(f"{folder}/{rel}")
    assert missing == []
