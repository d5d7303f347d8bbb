"""Monitoring on real logged predictions: a real `bentoml serve`, traffic replayed through
/predict (a clean period, then a drifted one), labels written later, the job run per window."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitoring.config import MonitoringConfig
from monitoring.job import SUMMARY, JobPaths, run_job
from monitoring.logs import Window
from monitoring.replay import replay
from registry.store import promoted_reference
from tests.integration.monitoring_setup import (
    make_feast_repo,
    make_monitored_model,
    read_json,
)
from tests.integration.serving_server import ROOT, running_server, serving_env

# The module's fixtures train, build a Feast store, serve and replay traffic.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

CLEAN_DAY = 5  # the reference is the test split: day 5 of the world
ROWS = 8_000


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_monitored_model(tmp_path_factory.mktemp("monitoring"))


@pytest.fixture(scope="module")
def feast_repo(model, tmp_path_factory):
    return make_feast_repo(model.sim, tmp_path_factory.mktemp("monitoring-feast") / "repo")


def _serve_and_replay(home, feast_repo, tmp: Path, world: Path, clean: int, drifted: int,
                      **settings: str):  # fmt: skip
    env = serving_env(home, feast_repo, tmp / "logs", **settings)
    with running_server(env, tmp / "server.log") as client:
        summary = replay(str(client.base_url), world, clean_rows=clean, drift_rows=drifted,
                         day=CLEAN_DAY, labels_dir=tmp / "labels", batch=500)  # fmt: skip
    return {p["name"]: Window.parse(p["start"], p["end"]) for p in summary["periods"]}


@pytest.fixture(scope="module")
def replayed(model, feast_repo, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("monitoring-replay")
    windows = _serve_and_replay(model.home, feast_repo, tmp, model.sim, ROWS, ROWS)
    return tmp, windows


def _job(model, tmp: Path, window: Window, out: Path):
    paths = JobPaths(tmp / "logs", tmp / "labels", promoted_reference(model.home), out)
    return run_job(paths, window, MonitoringConfig())


def test_the_pipeline_pointer_leads_to_the_reference_window(model):
    reference = promoted_reference(model.home)
    assert (reference / "reference.parquet").is_file()
    assert read_json(reference / "reference.json")["rows"] > 5_000


@pytest.fixture(scope="module")
def clean_result(model, replayed, tmp_path_factory):
    tmp, windows = replayed
    out = tmp_path_factory.mktemp("monitoring-clean")
    return _job(model, tmp, windows["clean"], out), out


def test_clean_window_passes_every_test(clean_result):
    result, out = clean_result
    assert result.rows == ROWS and result.label_coverage == 1.0
    assert result.failed == [], result.describe()
    skipped = [t.name for t in result.tests if t.status == "skipped"]
    assert skipped == [], skipped
    assert (out / "report.html").stat().st_size > 10_000
    assert read_json(out / SUMMARY)["passed"] is True


def test_drifted_window_fails_approval_rate_and_feature_drift_only_where_it_changed(
    model, replayed, tmp_path
):
    tmp, windows = replayed
    result = _job(model, tmp, windows["drifted"], tmp_path)
    failed = {t.name for t in result.failed}
    assert {"conversion_rate[approval]", "feature_drift"} <= failed, result.describe()
    unchanged = {"conversion_rate[click]", "conversion_rate[application]", "monotonicity",
                 "label_coverage"}  # fmt: skip
    assert not (failed & unchanged), result.describe()
    assert result.steps["approval"].rate_change < -0.4
    assert {"age_band", "device"} <= set(result.drifted_fields)
    assert result.drift_failed


def test_cli_exits_non_zero_names_the_failed_tests_and_launches_retraining(
    model, replayed, tmp_path
):
    tmp, windows = replayed
    window = windows["drifted"]
    marker = tmp_path / "retrain-launched"
    retrain = f"{sys.executable} -c \"open({str(marker)!r}, 'w').write('x')\""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    done = subprocess.run(
        [sys.executable, "-m", "monitoring", "run", "--log-dir", str(tmp / "logs"),
         "--labels-dir", str(tmp / "labels"), "--bentoml-home", str(model.home),
         "--start", window.start.isoformat(), "--end", window.end.isoformat(),
         "--out", str(tmp_path / "out"), "--workspace", str(tmp_path / "ws"),
         "--on-fail-retrain", "--retrain-command", retrain],
        capture_output=True, text=True, cwd=ROOT, env=env,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    assert "FAILED tests:" in done.stdout and "conversion_rate[approval]" in done.stdout
    assert marker.is_file(), done.stderr[-2000:]
    assert (tmp_path / "out" / "report.html").is_file()
    assert any((tmp_path / "ws").rglob("*.json"))


def test_a_model_breaking_the_funnel_order_is_caught_and_the_clean_one_is_not(
    model, clean_result, feast_repo, tmp_path
):
    windows = _serve_and_replay(model.home, feast_repo, tmp_path, model.sim, 1_000, 0,
                                AITM_MODEL_TAG=model.broken_tag)  # fmt: skip
    broken = _job(model, tmp_path, windows["clean"], tmp_path / "out")
    clean, _ = clean_result
    assert broken.test("monotonicity").failed
    assert broken.violations["activation>approval"] > 0.1
    assert not clean.test("monotonicity").failed
    assert clean.violations["all"] <= MonitoringConfig().max_violation_rate
