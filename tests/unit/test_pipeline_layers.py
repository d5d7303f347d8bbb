"""Dependency arrows of the pipeline layer point inward only."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.import_graph import imported_roots

ROOT = Path(__file__).resolve().parents[2]


INNER = sorted([*(ROOT / "src" / "aitm").rglob("*.py"), *(ROOT / "features").rglob("*.py")])


@pytest.mark.parametrize("path", INNER, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_core_and_features_never_import_the_pipeline_layer(path):
    assert not (imported_roots(path) & {"pipelines", "components"})


def test_components_hold_only_kfp_at_module_level():
    assert imported_roots(ROOT / "components" / "steps.py", top_level_only=True) <= {"os", "kfp"}


def test_component_bodies_call_only_the_pipeline_steps():
    assert imported_roots(ROOT / "components" / "steps.py") <= {"os", "kfp", "pipelines", "json"}


@pytest.mark.parametrize("name", ["gate.py", "steps.py", "registry.py", "local.py", "cli.py"])
def test_pipeline_modules_import_platform_packages_lazily(name):
    top = imported_roots(ROOT / "pipelines" / name, top_level_only=True)
    assert not (top & {"kfp", "feast", "bentoml", "great_expectations", "torch"})
