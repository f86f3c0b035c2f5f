"""No reach-through into another object's private members in app/.

Every module under ``app/`` is parsed with :mod:`ast`. An attribute access ``X._name`` (a leading
underscore, not a dunder) is a violation unless ``X`` is ``self``, ``cls`` or ``super()``; so is
``getattr``/``setattr``/``hasattr``/``delattr`` of such a name spelled as a string. Objects talk
through public methods, properties and signals. :data:`ALLOWED` names the few exceptions, each with
its reason, and every one of them must still occur (a stale entry fails too).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SELF_NAMES = ("self", "cls")
ATTR_FUNCTIONS = ("getattr", "setattr", "hasattr", "delattr")

# (module path from the repository root, the access as ast.unparse writes it)
ALLOWED = {
    # argparse offers no public name for the type of add_subparsers()'s result; the command line
    # uses it only as a type alias for annotations
    ("app/cli/parser.py", "argparse._SubParsersAction"),
}


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_own(node: ast.expr) -> bool:
    """``self``, ``cls`` or ``super()``: the object's own members."""
    if isinstance(node, ast.Name):
        return node.id in SELF_NAMES
    return isinstance(node, ast.Call) and getattr(node.func, "id", None) == "super"


def _private_string_access(node: ast.Call) -> str | None:
    """``getattr(obj, "_name")`` and the like, on another object: its source text."""
    if getattr(node.func, "id", None) not in ATTR_FUNCTIONS or len(node.args) < 2:
        return None
    target, name = node.args[0], node.args[1]
    if isinstance(name, ast.Constant) and isinstance(name.value, str) and _is_private(name.value):
        return None if _is_own(target) else ast.unparse(node)
    return None


def private_accesses(path: Path) -> Iterator[tuple[int, str]]:
    """(line, source) of every access to another object's private member in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr) and not _is_own(node.value):
            yield node.lineno, ast.unparse(node)
        elif isinstance(node, ast.Call) and (text := _private_string_access(node)):
            yield node.lineno, text


def scan(root: Path) -> tuple[list[str], set[tuple[str, str]]]:
    """The violations under ``root/app`` ('path:line: source'), and the allowed entries seen."""
    violations, seen = [], set()
    for path in sorted((root / "app").rglob("*.py")):
        where = path.relative_to(root).as_posix()
        for line, text in private_accesses(path):
            if (where, text) in ALLOWED:
                seen.add((where, text))
            else:
                violations.append(f"{where}:{line}: {text}")
    return violations, seen


def test_app_reaches_into_no_other_objects_private_members():
    violations, _seen = scan(ROOT)
    assert violations == []


def test_every_allowed_exception_is_still_needed():
    _violations, seen = scan(ROOT)
    assert sorted(ALLOWED - seen) == []


def test_the_check_can_fail(tmp_path):
    module = tmp_path / "app" / "editor" / "bad.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "class C:\n"
        "    def f(self, window, layer):\n"
        "        window._action('a', 'b', None)\n"  # reported
        "        x = layer._grads is not None\n"  # reported
        "        getattr(window, '_set_busy')(True)\n"  # reported
        "        self._own, cls._also_own = 1, 2\n"
        "        super()._parent_hook()\n"
        "        return type(window).__name__, window.__dict__, getattr(self, '_mine')\n",
        encoding="utf-8",
    )
    violations, _seen = scan(tmp_path)
    assert violations == [
        "app/editor/bad.py:3: window._action",
        "app/editor/bad.py:4: layer._grads",
        "app/editor/bad.py:5: getattr(window, '_set_busy')",
    ]
