"""The monitoring job on the log of a funnel that is not the simulator's: five steps with other
names, a numeric field, log files as the service writes them (no server), run through
`python -m monitoring run` into a workspace project of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from aitm.dataset import DatasetSpec
from monitoring.job import SUMMARY, JobPaths, run_job
from monitoring.logs import Window
from monitoring.synthetic import (
    SpecTraffic,
    true_probabilities,
    write_log_files,
    write_true_probability_reference,
)
from tests.integration.monitoring_setup import SHOP_FUNNEL

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
FUNNEL = DatasetSpec.parse(SHOP_FUNNEL)
TASKS = list(FUNNEL.tasks)
START = pd.Timestamp("2026-03-01", tz="UTC")


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A reference, a clean day and a day where the checkout rate halved, logged and labelled."""
    root = tmp_path_factory.mktemp("funnel-job")
    traffic = SpecTraffic(FUNNEL, seed=5)
    write_true_probability_reference(root / "reference", traffic.sample(4_000, START), TASKS,
                                     FUNNEL)  # fmt: skip
    windows = {}
    for day, name, factor in ((1, "clean", None), (2, "drifted", {"checkout": 0.5})):
        start = START + pd.Timedelta(days=day)
        frame = traffic.sample(3_000, start, rate_factor=factor)
        write_log_files(frame, true_probabilities(frame, TASKS), TASKS, root / "logs",
                        root / "labels", model_version="shop:v1", name=name, seed=day,
                        spec=FUNNEL)  # fmt: skip
        windows[name] = Window(start, start + pd.Timedelta(days=1))
    return root, windows


def test_the_job_finds_the_models_steps_and_fields_in_the_log(logged, tmp_path):
    root, windows = logged
    paths = JobPaths(root / "logs", root / "labels", root / "reference", tmp_path / "out",
                     tmp_path / "workspace")  # fmt: skip
    result = run_job(paths, windows["clean"])
    assert result.rows == 3_000 and result.label_coverage == 1.0
    assert list(result.steps) == TASKS
    assert result.failed == [], result.describe()
    summary = json.loads((tmp_path / "out" / SUMMARY).read_text())
    assert summary["dataset"] == "shop" and summary["tasks"] == TASKS
    assert list(summary["steps"]) == TASKS
    assert {f"conversion_rate[{t}]" for t in TASKS} <= {t["name"] for t in summary["tests"]}
    assert "price" in summary["feature_drift"] and summary["numeric_fields"] == ["price"]
    from evidently.ui.workspace import Workspace

    (project,) = Workspace(str(tmp_path / "workspace")).search_project(
        "AITM conversion funnel: shop"
    )
    assert project.id is not None


def test_the_cli_fails_the_drifted_window_naming_the_changed_steps(logged, tmp_path):
    root, windows = logged
    window = windows["drifted"]
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    done = subprocess.run(
        [sys.executable, "-m", "monitoring", "run", "--log-dir", str(root / "logs"),
         "--labels-dir", str(root / "labels"), "--reference", str(root / "reference"),
         "--start", window.start.isoformat(), "--end", window.end.isoformat(),
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=ROOT, env=env,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    assert "conversion_rate[checkout]" in done.stdout and "FAILED tests:" in done.stdout
    summary = json.loads((tmp_path / "out" / SUMMARY).read_text())
    failed = set(summary["failed_tests"])
    assert "conversion_rate[checkout]" in failed and "conversion_rate[view]" not in failed
    assert summary["steps"]["checkout"]["rate_change"] < -0.3
