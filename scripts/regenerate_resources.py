"""Rewrite the package data generated from code: the graph JSON Schema (from the node catalogue's
parameter declarations) and the bundled example graphs (from ``conv3dt_studio.nodes.examples``).

A development step, run after changing a node type or an example; a test fails while the files on
disk differ from what this would write.

python scripts/regenerate_resources.py
"""

from __future__ import annotations

import json

from conv3dt_studio.nodes.examples import bundled
from conv3dt_studio.nodes.graph_document import document_json_schema
from conv3dt_studio.resources import EXAMPLES, SCHEMA_PATH


def main() -> int:
    SCHEMA_PATH.write_text(json.dumps(document_json_schema(), indent=2) + "\n", encoding="utf-8")
    EXAMPLES.mkdir(parents=True, exist_ok=True)
    for name, doc in bundled().items():
        doc.save(EXAMPLES / f"{name}.json")
    print(f"wrote {SCHEMA_PATH} and {len(bundled())} examples in {EXAMPLES}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
