"""The monitoring DAG: monitor one window -> (if a drift test failed) launch retraining.

    python -m monitoring pipeline --log-dir LOGS --start S --end E --out artifacts/runs

No `from __future__ import annotations`: kfp reads the pipeline signature at decoration time.
Runs locally with kfp's SubprocessRunner (like the training pipeline) or compiles for a
cluster, where the retrain step would submit the training pipeline (`python -m pipelines
submit ...` as its command).
"""

import json
import os
from pathlib import Path
from typing import Any

from kfp import dsl

from components.monitoring import monitor_window, retrain
from pipelines.steps import environment_for_tasks

PIPELINE_NAME = "aitm-monitoring"
MONITOR, RETRAIN = "monitor-window", "retrain"


@dsl.pipeline(name=PIPELINE_NAME, description="Monitor a window of logged AITM predictions.")
def monitoring_pipeline(
    log_dir: str,
    reference: str,
    start: str,
    end: str,
    labels_dir: str = "",
    workspace: str = "",
    config_yaml: str = "",
    retrain_command: str = "",
):
    check = monitor_window(log_dir=log_dir, labels_dir=labels_dir, reference=reference,
                           start=start, end=end, workspace=workspace,
                           config_yaml=config_yaml)  # fmt: skip
    check.set_display_name("monitor window")
    with dsl.If(check.outputs["Output"] == True, name="drift-failed"):  # noqa: E712
        retrain(command=retrain_command).set_display_name("launch retraining")


def run_local(pipeline_root: str | Path, arguments: dict[str, Any]) -> dict[str, Any]:
    """Run locally in subprocesses; return the job's summary plus what the run did."""
    from kfp import local

    root = Path(pipeline_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    os.environ.update(environment_for_tasks())
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    before = {p.name for p in root.iterdir()}
    error = None
    try:
        monitoring_pipeline(**arguments)
    except RuntimeError as exc:  # a task failed
        error = str(exc)
    new = [p for p in root.iterdir() if p.name not in before and p.name.startswith(PIPELINE_NAME)]
    runs = sorted(new, key=lambda p: p.stat().st_mtime)
    if not runs:
        raise RuntimeError(f"the local run left no folder under {root}: {error}")
    run = runs[-1]
    summary_file = run / MONITOR / "summary" / "summary.json"
    if not summary_file.is_file():
        raise RuntimeError(f"the monitoring task failed: {error}")
    summary = json.loads(summary_file.read_text())
    launched = run / RETRAIN / "launched"
    return {
        "run_dir": str(run),
        "passed": summary["passed"],
        "failed_tests": summary["failed_tests"],
        "report": str(run / MONITOR / "report"),
        "retrain": json.loads(launched.read_text()) if launched.is_file() else None,
        "error": error,
    }
