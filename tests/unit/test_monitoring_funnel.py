"""The report on funnels other than the simulator's: five steps with other names and a numeric
field, and a two-step Ali-CCP-like window of 150 rows (real Evidently runs, no server)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aitm.dataset import DatasetSpec
from monitoring.config import MonitoringConfig
from monitoring.logs import LABELLED, Window
from monitoring.reference import load_reference, prob_column
from monitoring.synthetic import SpecTraffic, true_probabilities, write_true_probability_reference

FUNNEL = DatasetSpec.parse({
    "name": "shop", "table": "unused.parquet",
    "tasks": ["view", "add_to_cart", "checkout", "pay", "repeat"],
    "entities": {"shopper": {"key": "shopper_id", "fields": ["segment"]},
                 "item": {"key": "sku", "fields": ["brand", "price"]}},
    "context": ["slot"], "numeric": ["price"], "candidate": "item",
})  # fmt: skip
TASKS = list(FUNNEL.tasks)
START = pd.Timestamp("2026-03-01", tz="UTC")
WINDOW = Window(START + pd.Timedelta(days=1), START + pd.Timedelta(days=2))


def window_frame(frame: pd.DataFrame, spec: DatasetSpec, probs: np.ndarray | None = None):
    """A sampled frame as monitoring.logs gives it: fields, p_<task>, labels, labelled."""
    out = frame[list(spec.fields)].copy()
    probs = true_probabilities(frame, list(spec.tasks)) if probs is None else probs
    for t, task in enumerate(spec.tasks):
        out[prob_column(task)] = probs[:, t]
        out[task] = frame[task].to_numpy(dtype=np.float64)
    out[LABELLED] = out[list(spec.tasks)].notna().all(axis=1)
    out["model_version"] = f"{spec.model_name}:v1"
    return out


def _run(frame, reference, config=None):
    from monitoring.report import run_report

    return run_report(frame, reference, config or MonitoringConfig(), WINDOW)


@pytest.fixture(scope="module")
def traffic():
    return SpecTraffic(FUNNEL, seed=5)


@pytest.fixture(scope="module")
def reference(traffic, tmp_path_factory):
    out = tmp_path_factory.mktemp("funnel-reference")
    write_true_probability_reference(out, traffic.sample(4_000, START), TASKS, FUNNEL)
    return load_reference(out)


def test_the_reference_carries_the_spec_and_its_numeric_field(reference):
    assert reference.tasks == TASKS
    assert reference.numeric == ["price"]
    assert reference.spec.name == "shop" and reference.spec.tasks == TASKS


def test_a_clean_window_of_a_five_step_funnel_passes_with_results_named_by_its_steps(
    traffic, reference
):
    result = _run(window_frame(traffic.sample(3_000, WINDOW.start), FUNNEL), reference)
    assert list(result.steps) == TASKS
    assert [s.task for s in result.steps.values()] == TASKS
    assert set(result.violations) == {"add_to_cart>view", "checkout>add_to_cart",
                                      "pay>checkout", "repeat>pay", "all"}  # fmt: skip
    for task in TASKS:
        for name in ("prediction_drift", "conversion_rate", "calibration", "auc"):
            assert result.test(f"{name}[{task}]").status == "pass", result.describe()
        assert result.steps[task].positives >= 30
    assert result.numeric_fields == ["price"]
    # Ids (500 values) are too sparse to compare; the categories and the number are tested.
    assert set(result.feature_drift) == {"segment", "brand", "price", "slot"}
    assert result.failed == [], result.describe()


def test_a_shifted_numeric_field_and_categories_fail_the_feature_drift_test(traffic, reference):
    frame = window_frame(traffic.sample(3_000, WINDOW.start, shift=0.6), FUNNEL)
    result = _run(frame, reference)
    assert result.test("feature_drift").failed, result.describe()
    assert "price" in result.drifted_fields
    assert result.feature_drift["price"] >= MonitoringConfig().numeric_drift_threshold


def test_a_lower_rate_at_one_step_fails_that_step_and_the_later_ones_only(traffic, reference):
    frame = traffic.sample(4_000, WINDOW.start, rate_factor={"checkout": 0.5})
    result = _run(window_frame(frame, FUNNEL), reference)
    failed = {t.name for t in result.failed}
    # The labels are nested: fewer checkouts also mean fewer payments and repeats.
    assert {"conversion_rate[checkout]", "conversion_rate[pay]"} <= failed, result.describe()
    assert not failed & {"conversion_rate[view]", "conversion_rate[add_to_cart]",
                         "feature_drift", "monotonicity"}  # fmt: skip
    assert result.steps["checkout"].rate_change < -0.3
    assert result.drift_failed


def test_funnel_order_violations_are_counted_per_adjacent_pair_of_any_funnel(traffic, reference):
    frame = traffic.sample(2_000, WINDOW.start)
    probs = true_probabilities(frame, TASKS)
    probs[:300, 4] = probs[:300, 3] + 0.01  # repeat above pay on 300 rows
    result = _run(window_frame(frame, FUNNEL, probs), reference)
    assert result.violations["repeat>pay"] == pytest.approx(0.15)
    assert result.violations["add_to_cart>view"] == 0.0
    assert result.violations["all"] == pytest.approx(0.15)
    assert result.test("monotonicity").failed


ALI_CCP = DatasetSpec.parse({
    "name": "ali-ccp", "table": "unused", "tasks": ["click", "purchase"],
    "entities": {"user": {"key": "101", "fields": ["124", "D109_14"]},
                 "item": {"key": "205", "fields": ["206"]}},
    "context": ["301"], "candidate_context": ["508", "D508"],
    "numeric": ["D109_14", "D508"], "candidate": "item",
})  # fmt: skip


def test_a_150_row_two_step_window_reports_its_label_tests_as_not_evaluated(tmp_path):
    traffic = SpecTraffic(ALI_CCP, seed=3, key_values=40, step_rate=0.1)
    write_true_probability_reference(tmp_path, traffic.sample(30, START), ["click", "purchase"],
                                     ALI_CCP)  # fmt: skip
    reference = load_reference(tmp_path)
    frame = window_frame(traffic.sample(150, WINDOW.start), ALI_CCP)
    frame["D508"] = np.nan  # a numeric field with no value in the window: nothing to compare
    result = _run(frame, reference)
    assert list(result.steps) == ["click", "purchase"]
    assert set(result.violations) == {"purchase>click", "all"}
    assert result.numeric_fields == ["D109_14"] and result.empty_fields == ["D508"]
    assert "D508" in result.test("feature_drift").detail
    for task in ("click", "purchase"):
        for name in ("conversion_rate", "calibration", "auc"):
            outcome = result.test(f"{name}[{task}]")
            assert outcome.status == "skipped" and "min_positives" in outcome.detail
    assert result.to_dict()["steps"]["purchase"]["observed_rate"] is None
