"""Which top-level packages a source file imports, read from its AST (used by the layer tests)."""

from __future__ import annotations

import ast
from pathlib import Path


def imported_roots(path: Path, top_level_only: bool = False) -> set[str]:
    """Root package names of absolute imports; `top_level_only` skips imports inside functions."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    roots = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots
