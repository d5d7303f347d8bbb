"""The report's named results and tests on small simulated windows (real Evidently runs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from aitm.schema import build_schema
from aitm.simulator import SimulationConfig
from monitoring.config import MonitoringConfig
from monitoring.logs import LABELLED, Window
from monitoring.reference import Reference, prob_column
from monitoring.synthetic import Traffic, simulator_spec, true_probabilities

SPEC = simulator_spec()  # the names of the simulator's frames
FIELDS, TASKS = list(SPEC.fields), list(SPEC.tasks)
WINDOW = Window.parse("2026-01-04", "2026-01-05")


@pytest.fixture(scope="module")
def traffic():
    config = SimulationConfig(rows=10_000, days=6, val_days=1, test_days=1, n_users=1_000,
                              n_ads=50, target_rates=(0.2, 0.1, 0.05, 0.03))  # fmt: skip
    return Traffic(config, seed=2)


def _window(frame: pd.DataFrame, probs: np.ndarray | None = None) -> pd.DataFrame:
    """A sampled frame as monitoring.logs gives it: fields, p_<task>, labels, labelled."""
    out = frame[FIELDS].copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.CategoricalDtype):
            out[c] = out[c].astype(str)
    probs = true_probabilities(frame, TASKS) if probs is None else probs
    for t, task in enumerate(TASKS):
        out[prob_column(task)] = probs[:, t]
        out[task] = frame[task].to_numpy(dtype=np.float64)
    out[LABELLED] = True
    out["model_version"] = "aitm:v1"
    return out


@pytest.fixture(scope="module")
def reference(traffic):
    frame = traffic.sample(4_000, 2)
    schema = build_schema(frame, FIELDS, TASKS)
    table = _window(frame).drop(columns=[LABELLED, "model_version"])
    return Reference(frame=table, schema=schema, info={"model_tag": "aitm:v1"}, path=None)


def _run(frame, reference, config=None):
    from monitoring.report import run_report

    return run_report(frame, reference, config or MonitoringConfig(), WINDOW)


def test_monotonicity_metric_counts_every_adjacent_pair_and_any_pair(traffic, reference):
    frame = traffic.sample(2_000, 3)
    probs = true_probabilities(frame, TASKS)
    probs[:300, 1] = probs[:300, 0] + 0.01  # application above click on 300 rows
    probs[200:500, 3] = probs[200:500, 2] * 2  # activation above approval on 300 rows
    result = _run(_window(frame, probs), reference)
    assert result.violations["application>click"] == pytest.approx(0.15)
    assert result.violations["approval>application"] == 0.0
    assert result.violations["activation>approval"] == pytest.approx(0.15)
    assert result.violations["all"] == pytest.approx(500 / 2_000)
    assert result.test("monotonicity").failed
    clean = _run(_window(traffic.sample(2_000, 3)), reference)
    assert clean.violations["all"] == 0.0 and not clean.test("monotonicity").failed


def test_late_labels_lower_the_coverage_and_rates_use_labelled_rows_only(traffic, reference):
    frame = _window(traffic.sample(4_000, 3))
    missing = np.random.default_rng(0).random(len(frame)) < 0.5
    complete = frame[~missing]
    frame.loc[missing, TASKS] = np.nan
    frame[LABELLED] = ~missing
    result = _run(frame, reference)
    assert result.label_coverage == pytest.approx(1 - missing.mean())
    assert result.test("label_coverage").failed
    for task in TASKS:
        step = result.steps[task]
        assert step.observed_rate == pytest.approx(complete[task].mean())  # not diluted by NaN
        assert step.labelled_rows == len(complete)
    # The rates themselves did not change: only the coverage test fails.
    assert [t.name for t in result.failed] == ["label_coverage"]


def test_without_labels_the_label_tests_are_skipped_with_the_reason(traffic, reference):
    frame = _window(traffic.sample(1_000, 3))
    frame[TASKS] = np.nan
    frame[LABELLED] = False
    result = _run(frame, reference)
    assert result.label_coverage == 0.0 and result.test("label_coverage").failed
    for task in TASKS:
        outcome = result.test(f"conversion_rate[{task}]")
        assert outcome.status == "skipped" and "0 labelled positives" in outcome.detail
        assert result.steps[task].observed_rate is None
    assert not result.drift_failed  # nothing to retrain on: the labels are late


def test_too_small_a_window_is_an_error(traffic, reference):
    frame = _window(traffic.sample(50, 3))
    with pytest.raises(ValueError, match="fewer than min_rows"):
        _run(frame, reference)


def test_config_rejects_unknown_keys_and_reads_yaml(tmp_path):
    with pytest.raises(ValidationError):
        MonitoringConfig(max_rate_chnage=0.3)
    path = tmp_path / "monitoring.yaml"
    path.write_text("max_rate_change: 0.4\nmin_label_coverage: 0.5\n")
    config = MonitoringConfig.from_yaml(path)
    assert config.max_rate_change == 0.4 and config.max_violation_rate == 0.01
