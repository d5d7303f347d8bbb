"""The monitoring layer's dependency arrows: Evidently stays inside metrics/report/workspace."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

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


def test_only_the_report_modules_import_evidently_at_module_level():
    importing = {
        p.name for p in (ROOT / "monitoring").glob("*.py")
        if "evidently" in _imports(p, top_level_only=True)
    }  # fmt: skip
    assert importing == {"metrics.py", "report.py", "workspace.py"}


def test_cli_job_logs_and_the_pipeline_steps_load_without_evidently():
    modules = ["monitoring.cli", "monitoring.job", "monitoring.logs", "monitoring.replay",
               "monitoring.reference", "monitoring.synthetic", "pipelines.steps"]  # fmt: skip
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(sorted({'evidently', 'kfp', 'bentoml', 'torch'} & "
        "{n.split('.')[0] for n in sys.modules}))"
    )
    env = {"PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_core_never_imports_the_monitoring_layer():
    for path in (ROOT / "src" / "aitm").rglob("*.py"):
        assert "monitoring" not in _imports(path), path.name


def test_monitoring_components_are_thin():
    path = ROOT / "components" / "monitoring.py"
    assert _imports(path, top_level_only=True) <= {"os", "kfp"}
    assert _imports(path) <= {"os", "kfp", "monitoring", "json", "shutil"}
