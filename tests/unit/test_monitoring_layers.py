"""The monitoring layer's dependency arrows: Evidently stays inside metrics/report/workspace."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.import_graph import imported_roots

ROOT = Path(__file__).resolve().parents[2]


def test_only_the_report_modules_import_evidently_at_module_level():
    importing = {
        p.name for p in (ROOT / "monitoring").glob("*.py")
        if "evidently" in imported_roots(p, top_level_only=True)
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
        assert "monitoring" not in imported_roots(path), path.name


def test_monitoring_components_are_thin():
    path = ROOT / "components" / "monitoring.py"
    assert imported_roots(path, top_level_only=True) <= {"os", "kfp"}
    assert imported_roots(path) <= {"os", "kfp", "monitoring", "json", "shutil"}
