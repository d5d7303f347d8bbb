"""The monitoring job: one window of logged predictions -> report, summary, snapshot, verdict.

    python -m monitoring run --log-dir LOGS --labels-dir LABELS --window-hours 24 --out DIR

Writes DIR/report.html (Evidently), DIR/summary.json (named results and tests) and, with
--workspace, a snapshot into the Evidently workspace. Fields and funnel steps are the promoted
model's (its schema in the reference folder), so the job runs unchanged on any dataset spec.
Exits 1 when a test fails, so a scheduler alerts; --on-fail-retrain launches the training
pipeline command when a drift test failed.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from monitoring.config import MonitoringConfig
from monitoring.logs import Window, load_window
from monitoring.reference import load_reference

REPORT = "report.html"
SUMMARY = "summary.json"


class JobSettings(BaseSettings):
    """The job's environment settings (prefix AITM_)."""

    model_config = SettingsConfigDict(env_prefix="AITM_", extra="ignore", frozen=True)

    # AITM_RETRAIN_COMMAND: what --on-fail-retrain launches when a drift test failed.
    retrain_command: str = "python -m pipelines main --data data/sim --config pipelines/run.yaml"


def reference_for(
    reference: Path | None, bentoml_home: Path | None, dataset: Path | None = None
) -> Path:
    """`reference`, else the registry's reference of the model promoted for the dataset spec
    (its model name names the pointer; default spec: $AITM_DATASET or the simulator's)."""
    from aitm.dataset import load_spec
    from registry.store import default_home, promoted_reference

    if reference is not None:
        return reference
    return promoted_reference(bentoml_home or default_home(), load_spec(dataset).model_name)


@dataclass(frozen=True)
class JobPaths:
    log_dir: Path
    labels_dir: Path | None
    reference: Path
    out: Path
    workspace: Path | None = None


def run_job(paths: JobPaths, window: Window, config: MonitoringConfig | None = None):
    """Load the window, run the report, write report.html + summary.json (+ snapshot)."""
    from monitoring.report import drift_fields, run_report

    config = config or MonitoringConfig()
    reference = load_reference(paths.reference)
    frame = load_window(paths.log_dir, paths.labels_dir, reference.schema, window)
    result = run_report(frame, reference, config, window)
    paths.out.mkdir(parents=True, exist_ok=True)
    result.snapshot.save_html(str(paths.out / REPORT))
    spec = reference.spec
    dataset = spec.name if spec else None
    summary = {**result.to_dict(), "config": config.model_dump(), "reference": str(paths.reference),
               "dataset": dataset, "tasks": reference.tasks}  # fmt: skip
    if paths.workspace is not None:
        from monitoring.workspace import add_snapshot, project_name

        fields = drift_fields(reference, config)
        summary["project_id"] = add_snapshot(
            paths.workspace, result.snapshot, reference.tasks, fields, project_name(dataset)
        )
    (paths.out / SUMMARY).write_text(json.dumps(summary, indent=2, default=str))
    return result


def retrain(command: str) -> int:
    """Launch the training pipeline command (waits for it); returns its exit code."""
    return subprocess.run(shlex.split(command), check=False).returncode


def monitor(
    log_dir: str,
    labels_dir: str,
    reference: str,
    start: str,
    end: str,
    out_dir: str,
    workspace: str = "",
    config_yaml: str = "",
):
    """The job with string arguments, as the kfp component calls it (empty string: none)."""
    import yaml

    raw = yaml.safe_load(config_yaml) if config_yaml.strip() else {}
    paths = JobPaths(Path(log_dir), Path(labels_dir) if labels_dir else None, Path(reference),
                     Path(out_dir), Path(workspace) if workspace else None)  # fmt: skip
    return run_job(paths, Window.parse(start, end), MonitoringConfig.model_validate(raw or {}))


def flat_metrics(result) -> dict[str, float]:
    """Finite numbers of a result, for a kfp Metrics artifact."""
    from aitm.evaluation import finite

    out = {"rows": result.rows, "label_coverage": result.label_coverage,
           "drifted_share": result.drifted_share, "violations": result.violations["all"],
           "failed_tests": len(result.failed)}  # fmt: skip
    for task, step in result.steps.items():
        for name in ("prediction_drift", "rate_change", "calibration_change", "auc"):
            out[f"{name}_{task}"] = getattr(step, name)
    return finite(out)
