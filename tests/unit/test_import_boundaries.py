"""What importing a layer loads at run time.

The static arrows between layers are import-linter contracts (`[tool.importlinter]` in
pyproject.toml, run by `make lint`). These tests hold what a static graph cannot see: which
packages a fresh interpreter has loaded after importing a module, so heavy or store-binding
imports stay inside the functions that need them (kfp ships only a component's function body;
bentoml fixes its store location when it is imported; feast, evidently and GE cost seconds).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLATFORMS = ("kfp", "feast", "bentoml", "evidently", "great_expectations")
LAYERS = ("features", "registry", "workflow", "components", "pipelines", "serving", "monitoring")


def modules_of(package: str, folder: Path, exclude: tuple[str, ...] = ("__main__",)) -> list[str]:
    """`package` and its modules, from the files in `folder`."""
    names = sorted(p.stem for p in folder.glob("*.py") if p.stem not in exclude)
    return [package if name == "__init__" else f"{package}.{name}" for name in names]


def loaded_by(modules: list[str]) -> dict[str, list[str]]:
    """For each module, in order, the modules that importing it added to a fresh interpreter."""
    code = (
        "import importlib, json, sys\n"
        "added = {}\n"
        f"for name in {modules!r}:\n"
        "    before = set(sys.modules)\n"
        "    importlib.import_module(name)\n"
        "    added[name] = sorted(set(sys.modules) - before)\n"
        "print(json.dumps(added))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=240
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def offenders(modules: list[str], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    """Module -> the forbidden packages (or modules) that importing it loaded."""
    found = {}
    for name, added in loaded_by(modules).items():
        hits = sorted({f for f in forbidden for m in added if m == f or m.startswith(f + ".")})
        if hits:
            found[name] = hits
    return found


def test_the_core_loads_no_platform_package_and_no_outer_layer():
    core = modules_of("aitm", ROOT / "src" / "aitm")
    assert len(core) > 10, core
    assert offenders(core, (*PLATFORMS, "pyspark", "redis", *LAYERS)) == {}


def test_the_features_cli_starts_without_feast_or_great_expectations():
    assert offenders(["features.cli"], ("feast", "great_expectations")) == {}


def test_monitoring_loads_evidently_only_in_its_report_modules():
    report = ("metrics", "report", "workspace")
    modules = modules_of("monitoring", ROOT / "monitoring", ("__main__", *report))
    assert "monitoring.job" in modules and "monitoring.cli" in modules
    assert offenders(modules, ("evidently", "kfp", "bentoml", "torch")) == {}


def test_the_workflow_and_pipeline_entry_points_load_platforms_lazily():
    modules = [*modules_of("workflow", ROOT / "workflow"), "pipelines.local", "pipelines.cli"]
    assert offenders(modules, (*PLATFORMS, "torch")) == {}


def test_the_registry_imports_bentoml_only_once_its_store_is_chosen():
    # bentoml reads BENTOML_HOME when it is imported: the registry sets it first.
    assert offenders(["registry", "registry.store"], PLATFORMS) == {}


def test_components_load_only_kfp_at_module_level():
    # kfp ships a component's function body alone: anything else is imported inside it.
    modules = modules_of("components", ROOT / "components")
    assert len(modules) >= 3, modules
    project = ("aitm", *(layer for layer in LAYERS if layer != "components"))
    others = ("feast", "bentoml", "evidently", "great_expectations", "torch")
    assert offenders(modules, (*project, *others)) == {}


def test_serving_loads_no_training_code():
    # serving.service loads the promoted model when it is imported; the contracts cover it.
    modules = modules_of("serving", ROOT / "serving", ("__main__", "service"))
    # tqdm is not in the list: torch itself loads it.
    training = ("aitm.training", "aitm.simulator", "aitm.ali_ccp")
    assert offenders(modules, (*training, "kfp", "evidently", "great_expectations")) == {}
