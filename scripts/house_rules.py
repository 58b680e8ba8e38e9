"""The architecture's rules that a reader can check by eye, checked by machine
(docs/architecture.md, *The rooms*); run by scripts/check.

- no module over 600 lines, no class over 30 methods (every def in its body);
- the libraries (doorkeep, rs485, drivers, cloud_sync) never import edge;
- the pure core (edge/core) imports only the standard library's pure parts, doorkeep
  and itself: no I/O, no event loop, no clock of its own.

Exit 1 with one line per breach.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("doorkeep", "edge", "rs485", "drivers", "cloud_sync")
LIBRARIES = ("doorkeep", "rs485", "drivers", "cloud_sync")
MAX_LINES = 600
MAX_METHODS = 30
CORE_MAY_IMPORT = frozenset(
    {
        "__future__",
        "collections",
        "dataclasses",
        "datetime",
        "enum",
        "hashlib",
        "hmac",
        "math",
        "re",
        "types",
        "typing",
        "zoneinfo",
        "doorkeep",
        "edge",  # edge.core only: checked below
    }
)


def imported(tree: ast.Module) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def breaches() -> list[str]:
    out = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT)
            source = path.read_text(encoding="utf-8")
            lines = source.count("\n")
            if lines > MAX_LINES:
                out.append(f"{rel}: {lines} lines (at most {MAX_LINES})")
            tree = ast.parse(source, str(rel))
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    defs = [
                        d
                        for d in node.body
                        if isinstance(d, ast.FunctionDef | ast.AsyncFunctionDef)
                    ]
                    if len(defs) > MAX_METHODS:
                        out.append(
                            f"{rel}: class {node.name} has {len(defs)} methods "
                            f"(at most {MAX_METHODS})"
                        )
            names = imported(tree)
            if package in LIBRARIES:
                out += [f"{rel}: imports {n} (a library never imports edge)" for n in names
                        if n == "edge" or n.startswith("edge.")]  # fmt: skip
            if rel.parts[:2] == ("edge", "core"):
                for n in names:
                    top = n.split(".")[0]
                    if top not in CORE_MAY_IMPORT or (
                        top == "edge" and not n.startswith("edge.core")
                    ):
                        out.append(f"{rel}: imports {n} (the pure core does no I/O)")
    return out


def main() -> int:
    found = breaches()
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
