"""The README stays true: its Python API example runs and prints what its comments say."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_python_api_example_runs(capsys):
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README lost its Python API example"
    exec(compile(blocks[0], "README.md", "exec"), {})  # our own file, not user input
    printed = capsys.readouterr().out.split()
    assert printed[1:] == ["1", "(2,", "6,", "3,", "18,", "18,", "5)"]
    assert printed[0].startswith("time_distributed")


def test_quick_start_commands_are_the_ci_commands():
    readme = README.read_text(encoding="utf-8")
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert 'pip install -e ".[test,dev]" && pytest' in readme
    assert 'pip install -e ".[test,dev]" && pytest' in ci
