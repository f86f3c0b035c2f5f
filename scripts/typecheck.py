"""Type-check the Qt-free layers with mypy: ``python scripts/typecheck.py`` (CI runs it).

mypy does not follow setuptools' ``package-dir`` mapping, so the script lays the namespace out as
mypy expects it - ``conv3dt_studio/compute`` and so on, as symbolic links to the repository's
folders in a temporary directory - and checks ``conv3dt_studio.compute`` and
``conv3dt_studio.nodes`` there with the settings in pyproject.toml. Extra arguments go to mypy.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYOUT = {"compute": "compute", "nodes": "nodes", "app": "app", "resources": "resources"}


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="conv3dt-typecheck-") as tmp:
        package = Path(tmp) / "conv3dt_studio"
        package.mkdir()
        for name in ("__init__.py", "__main__.py", "py.typed"):
            (package / name).symlink_to(ROOT / "conv3dt_studio" / name)
        for sub, folder in LAYOUT.items():
            (package / sub).symlink_to(ROOT / folder, target_is_directory=True)
        command = [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "-p",
            "conv3dt_studio.compute",
            "-p",
            "conv3dt_studio.nodes",
            *argv,
        ]
        env = {**os.environ, "MYPYPATH": tmp}
        return subprocess.run(command, cwd=tmp, env=env).returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
