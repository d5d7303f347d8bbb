"""The monitoring job as a kfp pipeline, run locally: a drifted window fails and the retrain
step (under `dsl.If(drift failed)`) launches the training command. That a clean window passes is
shown on real logged predictions in test_monitoring_service.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from aitm.simulator import DriftConfig, SimulationConfig
from monitoring.synthetic import (
    Traffic,
    simulator_spec,
    true_probabilities,
    write_log_files,
    write_true_probability_reference,
)
from pipelines.local import run_monitoring

# A whole local kfp monitoring pipeline, retraining launched.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]


def test_local_monitoring_pipeline_fails_a_drifted_window_and_launches_retraining(tmp_path):
    config = SimulationConfig(rows=10_000, days=6, val_days=1, test_days=1, n_users=2_000,
                              n_ads=100, target_rates=(0.2, 0.1, 0.05, 0.03))  # fmt: skip
    traffic = Traffic(config, seed=4)
    tasks = list(simulator_spec().tasks)
    reference = traffic.sample(4_000, 3)
    write_true_probability_reference(tmp_path / "reference", reference, tasks)
    drift = DriftConfig(start_day=5, user_shift=0.5, step="approval", rate_factor=0.4)
    marker = tmp_path / "retrained"
    # kfp's local runner rewrites every "python3" in a task's arguments: name the interpreter
    # "python" (the venv has both).
    python = Path(sys.executable).with_name("python")
    command = f"{python} -c \"open({str(marker)!r}, 'w').write('x')\""
    frame = traffic.sample(3_000, 5, drift)
    logs, labels = tmp_path / "logs", tmp_path / "labels"
    write_log_files(frame, true_probabilities(frame, tasks), tasks, logs, labels)
    start = pd.Timestamp(config.start) + pd.Timedelta(days=5)
    drifted = run_monitoring(tmp_path / "runs", dict(
        log_dir=str(logs), labels_dir=str(labels), reference=str(tmp_path / "reference"),
        start=start.isoformat(), end=(start + pd.Timedelta(days=1)).isoformat(),
        workspace=str(tmp_path / "workspace"), retrain_command=command,
    ))  # fmt: skip
    assert not drifted["passed"]
    assert {"feature_drift", "conversion_rate[approval]"} <= set(drifted["failed_tests"])
    assert drifted["retrain"] == {"command": command, "exit_code": 0}
    assert marker.is_file()
