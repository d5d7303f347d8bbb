"""Dependency arrows point inward: serving uses aitm/features/pipelines, never the reverse."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _roots(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("path", sorted((ROOT / "serving").glob("*.py")), ids=lambda p: p.name)
def test_serving_imports_no_test_or_training_platform_code(path):
    assert not _roots(path) & {"tests", "kfp", "evidently", "great_expectations", "components"}


@pytest.mark.parametrize("layer", ["src/aitm", "features", "pipelines", "components"])
def test_inner_layers_do_not_import_serving(layer):
    for path in (ROOT / layer).rglob("*.py"):
        assert "serving" not in _roots(path), path
