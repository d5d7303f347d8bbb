"""The simulated funnel: deterministic, ordered labels, target rates, ground truth, drift knobs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from aitm.data import TRUE_PREFIX, read_table
from aitm.simulator import (
    SIMULATED_FIELDS,
    SIMULATED_TASKS,
    DriftConfig,
    FunnelWorld,
    SimulationConfig,
    simulate,
)

TRUE = [TRUE_PREFIX + t for t in SIMULATED_TASKS]


@pytest.fixture(scope="module")
def frame(small_sim) -> pd.DataFrame:
    return pd.concat([read_table(small_sim / s) for s in ("train", "val", "test")])


def test_columns_and_field_count(frame):
    assert len(SIMULATED_FIELDS) == 15
    for column in ["impression_id", "event_timestamp", *SIMULATED_FIELDS, *SIMULATED_TASKS, *TRUE]:
        assert column in frame.columns
    assert frame["impression_id"].is_unique


def test_labels_and_true_probabilities_respect_the_funnel(frame):
    labels = frame[list(SIMULATED_TASKS)].to_numpy()
    assert set(np.unique(labels)) <= {0, 1}
    assert (np.diff(labels, axis=1) <= 0).all()
    true_p = frame[TRUE].to_numpy()
    assert (np.diff(true_p, axis=1) <= 1e-7).all()
    assert ((true_p > 0) & (true_p < 1)).all()


def test_rates_are_near_the_targets(frame):
    rates = frame[list(SIMULATED_TASKS)].mean().to_numpy()
    np.testing.assert_allclose(rates, [0.05, 0.01, 0.004, 0.002], rtol=0.35)
    # The true probabilities are calibrated: their mean matches the observed rate.
    np.testing.assert_allclose(frame[TRUE].mean().to_numpy(), rates, rtol=0.35)


def test_splits_are_ordered_in_time_and_hour_matches_timestamp(small_sim):
    train, val, test = (read_table(small_sim / s) for s in ("train", "val", "test"))
    assert train["event_timestamp"].max() < val["event_timestamp"].min()
    assert val["event_timestamp"].max() < test["event_timestamp"].min()
    assert (train["hour"] == train["event_timestamp"].dt.hour).all()


def test_default_world_sees_most_users_a_handful_of_times():
    world = FunnelWorld(SimulationConfig())
    rng = np.random.default_rng(0)
    sample = world.sample(rng, np.sort(rng.uniform(0, world.horizon, 1_000_000)))
    per_user = sample["user_id"].value_counts()
    assert per_user.median() <= 3
    assert per_user.max() < 0.001 * len(sample)  # no single user dominates


def test_fields_are_skewed(frame):
    city_share = frame["city"].value_counts(normalize=True)
    assert city_share.iloc[0] > 10 * city_share.median()  # Zipf-like
    assert frame["ad_id"].nunique() > 100


def test_same_seed_same_data_and_other_seed_differs(tmp_path):
    config = SimulationConfig(rows=5_000, days=5, val_days=1, test_days=1, n_users=500, n_ads=50)
    simulate(config, tmp_path / "a")
    simulate(config, tmp_path / "b")
    simulate(config.model_copy(update={"seed": 1}), tmp_path / "c")
    a, b, c = (read_table(tmp_path / x / "train") for x in "abc")
    pd.testing.assert_frame_equal(a, b)
    assert not a[list(SIMULATED_TASKS) + TRUE].equals(c[list(SIMULATED_TASKS) + TRUE])


def test_oracle_file_reports_auc_per_task(small_sim):
    summary = json.loads((small_sim / "oracle.json").read_text())
    for split in ("val", "test"):
        assert set(summary["oracle_auc"][split]) == set(SIMULATED_TASKS)
        assert all(0.5 < auc <= 1 for auc in summary["oracle_auc"][split].values())


def test_features_change_over_time_in_the_entity_histories(small_sim):
    users = pd.read_parquet(small_sim / "users.parquet")
    changed = users["user_id"].value_counts()
    assert (changed > 1).sum() > 0.1 * users["user_id"].nunique()
    twice = users[users["user_id"] == changed.index[0]].sort_values("event_timestamp")
    assert twice["credit_band"].nunique() == 2


def test_drift_knobs_shift_users_and_change_one_step_rate():
    base = SimulationConfig(rows=200_000, days=10, n_users=20_000, n_ads=200)
    drift = DriftConfig(start_day=5, user_shift=0.6, step="approval", rate_factor=0.3)
    world = FunnelWorld(base.model_copy(update={"drift": drift}))
    rng = np.random.default_rng(0)
    seconds = np.sort(rng.uniform(0, 10 * 86_400, 200_000))
    sample = world.sample(rng, seconds)
    after = seconds >= 5 * 86_400
    young = sample["age_band"].isin(["18-24", "25-34"])
    assert young[after].mean() > young[~after].mean() + 0.2
    step_rate = {}
    for name, part in (("before", sample[~after]), ("after", sample[after])):
        step_rate[name] = part["approval"].sum() / part["application"].sum()
    assert step_rate["after"] < 0.5 * step_rate["before"]
    # The click step is untouched by the approval knob.
    assert sample["click"][after].mean() == pytest.approx(sample["click"][~after].mean(), rel=0.3)


def test_the_default_spec_names_what_the_simulator_writes():
    from aitm.dataset import load_spec

    spec = load_spec()
    assert tuple(spec.fields) == SIMULATED_FIELDS
    assert tuple(spec.tasks) == SIMULATED_TASKS
