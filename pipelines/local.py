"""Run a pipeline with kfp's local SubprocessRunner and summarise what it left.

Only pipeline-level outputs come back from a local run, so the summaries read every task's
artifacts from `<pipeline_root>/<pipeline>-<timestamp>/<task>/<output>`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workflow.evaluate import DECISION_FILE, EVALUATION_FILE

# Task folder names kfp gives the components (their function names, dashed).
WINDOWS, FETCH, VALIDATE, TRAIN, EVALUATE, PACKAGE = (
    "derive-windows", "fetch-features", "validate-features", "train-model", "evaluate-model",
    "package-model",
)  # fmt: skip


@dataclass
class RunSummary:
    run_dir: Path
    succeeded: bool
    error: str | None = None
    rows: dict[str, int] = field(default_factory=dict)
    validation: dict[str, Any] | None = None
    trained: bool = False
    evaluation: dict[str, Any] | None = None
    decision: dict[str, Any] | None = None
    registered: dict[str, Any] | None = None
    reports: dict[str, str] = field(default_factory=dict)

    @property
    def promoted_tag(self) -> str | None:
        return None if self.registered is None else self.registered["model_tag"]

    def describe(self) -> str:
        lines = [f"pipeline run: {self.run_dir} ({'succeeded' if self.succeeded else 'FAILED'})"]
        if self.rows:
            lines.append("rows: " + ", ".join(f"{k} {v:,}" for k, v in self.rows.items()))
        if self.validation is not None:
            status = "passed" if self.validation["success"] else "FAILED"
            lines.append(f"validation: {status}")
            for name, window in self.validation["windows"].items():
                lines += [f"  {name}: {fail}" for fail in window["failed"]]
        lines.append(f"trained: {'yes' if self.trained else 'no'}")
        if self.evaluation is not None:
            cand = self.evaluation["candidate"]
            oracle = cand.get("oracle_auc") or {}
            inc = (self.evaluation.get("incumbent") or {}).get("auc") or {}
            for task, auc in cand["auc"].items():
                extra = f", oracle {oracle[task]:.4f}" if task in oracle else ""
                extra += f", incumbent {inc[task]:.4f}" if task in inc else ""
                lines.append(f"  AUC {task:<12} {auc:.4f}{extra}")
        if self.decision is not None:
            verdict = "PROMOTE" if self.decision["promote"] else "REJECT"
            lines.append(f"gate: {verdict}")
            lines += [f"  - {reason}" for reason in self.decision["reasons"]]
        lines.append(f"promoted model: {self.promoted_tag or 'none (incumbent unchanged)'}")
        if self.registered and self.registered.get("bento"):
            lines.append(f"bento: {self.registered['bento']}")
        lines += [f"{name}: {path}" for name, path in self.reports.items()]
        if self.error:
            lines.append(f"error: {self.error.strip().splitlines()[-1][:300]}")
        return "\n".join(lines)


def _json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def summarise(run_dir: str | Path, succeeded: bool, error: str | None = None) -> RunSummary:
    run = Path(run_dir)
    summary = RunSummary(run_dir=run, succeeded=succeeded, error=error)
    for name in ("train", "eval"):
        data = run / FETCH / f"{name}_data"
        if data.is_file():
            import pyarrow.parquet as pq

            summary.rows[name] = pq.ParquetFile(data).metadata.num_rows
    summary.validation = _json(run / VALIDATE / "validation")
    if (run / VALIDATE / "data_docs").is_file():
        summary.reports["data docs"] = str(run / VALIDATE / "data_docs")
    summary.trained = (run / TRAIN / "model" / "manifest.json").is_file()
    decision = run / EVALUATE / "decision"
    summary.decision = _json(decision / DECISION_FILE)
    summary.evaluation = _json(decision / EVALUATION_FILE)
    if (run / EVALUATE / "report").is_file():
        summary.reports["evaluation report"] = str(run / EVALUATE / "report")
    summary.registered = _json(run / PACKAGE / "registered")
    return summary


@dataclass(frozen=True)
class LocalRun:
    run_dir: Path
    error: str | None  # the failed task's message; None when every task succeeded


def run_local(pipeline: Callable[..., Any], pipeline_root: str | Path,
              arguments: dict[str, Any]) -> LocalRun:  # fmt: skip
    """Run `pipeline` in subprocesses of this environment; a failed task does not raise."""
    from kfp import local

    root = Path(pipeline_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    before = {p.name for p in root.iterdir()}
    error = None
    try:
        pipeline(**arguments)
    except RuntimeError as exc:  # kfp.local: a task failed, the pipeline stopped
        error = str(exc)
    new = sorted((p for p in root.iterdir() if p.name not in before and p.is_dir()),
                 key=lambda p: p.stat().st_mtime)  # fmt: skip
    if not new:
        raise RuntimeError(f"the local run left no folder under {root}: {error}")
    return LocalRun(new[-1], error)


def run_training(pipeline_root: str | Path, arguments: dict[str, Any]) -> RunSummary:
    """The training pipeline, run locally and summarised."""
    from pipelines.training_pipeline import local_training_pipeline

    run = run_local(local_training_pipeline, pipeline_root, arguments)
    return summarise(run.run_dir, succeeded=run.error is None, error=run.error)


def run_monitoring(pipeline_root: str | Path, arguments: dict[str, Any]) -> dict[str, Any]:
    """The monitoring pipeline, run locally: the job's summary plus what the run did."""
    from pipelines.monitoring_pipeline import MONITOR, RETRAIN, monitoring_pipeline

    run = run_local(monitoring_pipeline, pipeline_root, arguments)
    summary_file = run.run_dir / MONITOR / "summary" / "summary.json"
    if not summary_file.is_file():
        raise RuntimeError(f"the monitoring task failed: {run.error}")
    summary = json.loads(summary_file.read_text())
    launched = run.run_dir / RETRAIN / "launched"
    return {
        "run_dir": str(run.run_dir),
        "passed": summary["passed"],
        "failed_tests": summary["failed_tests"],
        "report": str(run.run_dir / MONITOR / "report"),
        "retrain": json.loads(launched.read_text()) if launched.is_file() else None,
        "error": run.error,
    }
