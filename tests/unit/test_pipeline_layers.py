"""Dependency arrows of the pipeline layer point inward only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    roots = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


INNER = sorted([*(ROOT / "src" / "aitm").rglob("*.py"), *(ROOT / "features").rglob("*.py")])


@pytest.mark.parametrize("path", INNER, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_core_and_features_never_import_the_pipeline_layer(path):
    assert not (_imports(path) & {"pipelines", "components"})


def test_components_hold_only_kfp_at_module_level():
    assert _imports(ROOT / "components" / "steps.py", top_level_only=True) <= {"os", "kfp"}


def test_component_bodies_call_only_the_pipeline_steps():
    assert _imports(ROOT / "components" / "steps.py") <= {"os", "kfp", "pipelines", "json"}


@pytest.mark.parametrize("name", ["gate.py", "steps.py", "registry.py", "local.py", "cli.py"])
def test_pipeline_modules_import_platform_packages_lazily(name):
    top = _imports(ROOT / "pipelines" / name, top_level_only=True)
    assert not (top & {"kfp", "feast", "bentoml", "great_expectations", "torch"})
