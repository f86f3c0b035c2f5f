"""Package data of Conv3DT Studio: the bundled example graphs, the graph JSON Schema and the
editor's stylesheet.

Everything here is found through :mod:`importlib.resources`, so it is read from wherever the
package is installed (a wheel in site-packages, or this folder in an editable install); nothing at
run time looks for files relative to a checkout. ``scripts/regenerate_resources.py`` rewrites the
schema and the examples after a node type changes (a development step, never done on import).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def _folder() -> Path:
    root = files(__name__)
    # Installed as files (wheel or editable), never zipped: graphs are opened by path.
    return Path(str(root))


FOLDER = _folder()
SCHEMA_PATH = FOLDER / "graph.schema.json"
STYLE_SHEET = FOLDER / "style.qss"
EXAMPLES = FOLDER / "examples"
DEFAULT_EXAMPLE = EXAMPLES / "toolkit_example.json"


def example_paths() -> list[Path]:
    """The bundled example graphs, sorted by name."""
    return sorted(EXAMPLES.glob("*.json"))


__all__ = ["DEFAULT_EXAMPLE", "EXAMPLES", "FOLDER", "SCHEMA_PATH", "STYLE_SHEET", "example_paths"]
