"""Build, apply, materialize and retrieve with a real Feast store (file offline, SQLite online)."""

from __future__ import annotations

import pandas as pd
import pytest

from aitm.data import read_table, split_paths
from aitm.dataset import ROW_ID, load_spec
from features.fields import FeastLayout
from features.online import (
    FeatureServiceError,
    MissingEntityError,
    OnlineFeatureReader,
    online_features,
)
from features.retrieval import (
    MissingFeaturesError,
    historical_features,
    output_columns,
    read_impressions,
    training_frame,
)
from features.store import open_store
from tests.integration.online_paths import assert_reader_matches_get_online_features

pytestmark = pytest.mark.integration

LAYOUT = FeastLayout(load_spec())  # the default spec: the small simulation's names
USER, AD, ENTITIES = LAYOUT.entity("user"), LAYOUT.entity("ad"), LAYOUT.entities
TASKS, TIMESTAMP = LAYOUT.tasks, LAYOUT.timestamp


def model_fields() -> tuple[str, ...]:
    return LAYOUT.fields


def _simulated(sim) -> pd.DataFrame:
    """Every simulated impression with the attributes that were valid at its time."""
    parts = [read_table(p) for p in split_paths(sim).values()]
    return pd.concat(parts, ignore_index=True)


def test_build_writes_snapshots_and_entity_frame(built_repo):
    data = built_repo.path / "data"
    impressions = pd.read_parquet(data / "impressions.parquet")
    assert len(impressions) == 60_000
    assert impressions[ROW_ID].is_unique
    assert not set(USER.features) & set(impressions.columns), "attributes belong to Feast"
    users = pd.read_parquet(data / USER.snapshot_file)
    ads = pd.read_parquet(data / AD.snapshot_file)
    assert list(users.columns) == [USER.key, TIMESTAMP, *USER.features]
    assert list(ads.columns) == [AD.key, TIMESTAMP, *AD.features]
    assert "business_id" in AD.features and ads["business_id"].dtype == "int64"
    # credit_band and creative_type really change: some entities have several snapshots
    assert users[USER.key].duplicated().sum() > 100
    assert ads[AD.key].duplicated().sum() > 10


def test_historical_retrieval_keeps_every_row_in_a_deterministic_order(built_repo, sqlite_store):
    start, end = "2026-01-02", "2026-01-05"
    expected = read_impressions(built_repo.path, start, end)
    result = training_frame(sqlite_store, built_repo.path, start, end)
    frame = result.frame
    assert result.missing == 0
    assert len(frame) == len(expected) > 10_000
    assert set(frame[ROW_ID]) == set(expected[ROW_ID])
    assert list(frame.columns) == output_columns(LAYOUT.spec)
    assert list(frame.columns[: len(model_fields())]) == list(model_fields())
    assert frame[list(model_fields())].notna().all().all()
    order = frame.sort_values([TIMESTAMP, ROW_ID]).index
    assert (order == frame.index).all()
    assert frame[TIMESTAMP].min() >= pd.Timestamp(start, tz="UTC")
    assert frame[TIMESTAMP].max() < pd.Timestamp(end, tz="UTC")
    # labels and context come from the entity frame, unchanged
    merged = frame.merge(expected, on=ROW_ID, suffixes=("", "_src"))
    for column in ["position", "hour", "channel", *TASKS]:
        assert (merged[column] == merged[f"{column}_src"]).all(), column


def test_point_in_time_values_match_the_simulated_truth(built_repo, sqlite_store):
    """Every retrieved attribute equals the one valid at the impression's time in the simulation,
    including impressions that precede a later change of the user's credit band or the ad's
    creative: a value updated after an impression never leaks into it."""
    truth = _simulated(built_repo.sim).set_index(ROW_ID)
    frame = training_frame(sqlite_store, built_repo.path, "2026-01-01", "2026-01-11").frame
    assert len(frame) == len(truth)
    frame = frame.set_index(ROW_ID).loc[truth.index]
    for spec in ENTITIES:
        for name in spec.features:
            expected = truth[name].astype(str if frame[name].dtype == object else "int64")
            mismatched = int((frame[name] != expected).sum())
            assert mismatched == 0, f"{name}: {mismatched} rows differ from the simulation"

    # The check can fail: many impressions come before a later change of their entity.
    users = pd.read_parquet(built_repo.path / "data" / USER.snapshot_file)
    latest = users.sort_values(TIMESTAMP).groupby(USER.key)["credit_band"].last()
    stale = frame["credit_band"] != frame[USER.key].map(latest)
    assert stale.sum() > 500


def test_point_in_time_one_change_explicitly(built_repo, sqlite_store):
    users = pd.read_parquet(built_repo.path / "data" / USER.snapshot_file)
    impressions = read_impressions(built_repo.path)
    history = users[users[USER.key].duplicated(keep=False)].sort_values([USER.key, TIMESTAMP])
    for user_id, rows in history.groupby(USER.key):
        changed_at = rows[TIMESTAMP].iloc[1]
        seen = impressions[impressions[USER.key] == user_id]
        before = seen[seen[TIMESTAMP] < changed_at]
        after = seen[seen[TIMESTAMP] >= changed_at]
        if len(before) and len(after):
            break
    else:
        pytest.fail("no user with impressions on both sides of a change")
    old, new = rows["credit_band"].iloc[0], rows["credit_band"].iloc[1]
    assert old != new
    pair = pd.concat([before.tail(1), after.head(1)])
    frame = historical_features(sqlite_store, pair).frame.set_index(ROW_ID)
    assert frame.loc[before[ROW_ID].iloc[-1], "credit_band"] == old
    assert frame.loc[after[ROW_ID].iloc[0], "credit_band"] == new


def test_rows_without_features_raise_or_are_reported(built_repo, sqlite_store):
    impressions = read_impressions(built_repo.path, "2026-01-03", "2026-01-03 06:00")
    extra = impressions.head(2).copy()
    extra[ROW_ID] = [10**9, 10**9 + 1]
    # a known user long before any snapshot (Feast drops this row), and an unknown user
    extra.loc[extra.index[0], TIMESTAMP] = pd.Timestamp("2024-01-01", tz="UTC")
    extra.loc[extra.index[1], USER.key] = 1
    entity_frame = pd.concat([impressions, extra], ignore_index=True)

    with pytest.raises(MissingFeaturesError, match=r"2 of \d+ impressions") as caught:
        historical_features(sqlite_store, entity_frame)
    assert "1 dropped by the offline store, 1 with unknown keys" in str(caught.value)

    result = historical_features(sqlite_store, entity_frame, on_missing="report")
    assert result.missing == 2 and set(result.missing_ids) == {10**9, 10**9 + 1}
    assert len(result.frame) == len(entity_frame)
    missing_rows = result.frame[result.frame[ROW_ID] >= 10**9]
    assert missing_rows[list(USER.features)].isna().all().all()


def test_online_lookup_returns_latest_values_in_model_order(built_repo, sqlite_store):
    data = built_repo.path / "data"
    users = pd.read_parquet(data / USER.snapshot_file).groupby(USER.key).last()
    ads = pd.read_parquet(data / AD.snapshot_file).groupby(AD.key).last()
    user_id = int(users.index[3])
    ad_ids = [int(a) for a in ads.index[:50]]
    context = {"position": 3, "hour": 20, "channel": "search"}
    frame = online_features(sqlite_store, {USER.key: user_id}, ad_ids, context)
    assert list(frame.columns) == list(model_fields())
    assert len(frame) == 50 and frame["ad_id"].tolist() == ad_ids
    assert (frame["user_id"] == user_id).all()
    for name in USER.features:
        assert (frame[name] == users.loc[user_id, name]).all(), name
    for name in AD.features:
        assert frame[name].tolist() == ads.loc[ad_ids, name].tolist(), name
    assert (frame["channel"] == "search").all() and (frame["position"] == 3).all()


def test_online_lookup_names_missing_users_and_ads(built_repo, sqlite_store):
    ads = pd.read_parquet(built_repo.path / "data" / AD.snapshot_file)
    known_ad = int(ads[AD.key].iloc[0])
    context = {"position": 1, "hour": 0, "channel": "feed"}
    with pytest.raises(MissingEntityError, match=r"user_id \[42\]; ad_id \[7\]") as caught:
        online_features(sqlite_store, {USER.key: 42}, [known_ad, 7], context)
    assert caught.value.missing == {USER.key: [42], AD.key: [7]}
    with pytest.raises(ValueError, match="lacks"):
        online_features(sqlite_store, {USER.key: 42}, [known_ad], {"position": 1})


def test_reader_matches_get_online_features(built_repo, sqlite_store):
    assert_reader_matches_get_online_features(sqlite_store, built_repo.path)


def test_reader_follows_a_changed_feature_service(built_repo, sqlite_store, tmp_path):
    """Another process re-applies the service without a user feature: the running reader
    notices the new registry on its next lookup, and recovers when the service is restored."""
    import shutil

    from feast import FeatureService

    repo = tmp_path / "feature_repo"
    shutil.copytree(built_repo.path, repo)
    reader = OnlineFeatureReader(open_store(repo, "sqlite"))
    user_id = int(pd.read_parquet(repo / "data" / USER.snapshot_file)[USER.key].iloc[0])
    ad_ids = [int(pd.read_parquet(repo / "data" / AD.snapshot_file)[AD.key].iloc[0])]
    context = {"position": 1, "hour": 0, "channel": "feed"}
    before = reader.columns({USER.key: user_id}, ad_ids, context)

    other = open_store(repo, "sqlite")  # stands for `feast apply` elsewhere
    original = other.get_feature_service(LAYOUT.feature_service)
    user_view, ad_view = (other.get_feature_view(e.view) for e in (USER, AD))
    narrowed = FeatureService(
        name=original.name, features=[user_view[list(USER.features[1:])], ad_view]
    )
    other.apply([narrowed])
    with pytest.raises(FeatureServiceError, match=rf"lacks \['{USER.features[0]}'\]"):
        reader.columns({USER.key: user_id}, ad_ids, context)
    other.apply([original])
    assert reader.columns({USER.key: user_id}, ad_ids, context) == before
