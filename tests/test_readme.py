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


def test_the_system_packages_line_is_the_one_the_editor_prints():
    from conv3dt_studio.app.cli.qt_platform import APT_LINE

    block = re.search(
        r"### System packages\n.*?```bash\n(.*?)\n```", README.read_text("utf-8"), re.S
    )
    assert block and block.group(1) == APT_LINE


def test_the_readme_imports_through_the_namespace():
    text = README.read_text(encoding="utf-8")
    assert not re.search(r"^\s*(from|import) (compute|nodes|app)\b", text, flags=re.M)
    assert "python -m app" not in text
