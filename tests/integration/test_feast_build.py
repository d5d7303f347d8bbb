"""Building Feast sources from a user's own impression table (attributes carried inline)."""

from __future__ import annotations

import pandas as pd
import pytest

from aitm.data import read_table
from aitm.dataset import ROW_ID, SpecError, load_spec
from features.build import build_sources, snapshots_from_impressions
from features.fields import FeastLayout

SPEC = load_spec()  # the default spec: the simulator's names
LAYOUT = FeastLayout(SPEC)
USER, AD, ENTITIES = LAYOUT.entity("user"), LAYOUT.entity("ad"), LAYOUT.entities
TIMESTAMP = LAYOUT.timestamp


def test_snapshots_keep_only_first_sightings_and_changes():
    t = pd.Timestamp("2026-01-01", tz="UTC")
    frame = pd.DataFrame(
        {
            AD.key: [1, 1, 1, 2, 1],
            TIMESTAMP: [
                t,
                t + pd.Timedelta(hours=1),
                t + pd.Timedelta(hours=2),
                t,
                t + pd.Timedelta(hours=3),
            ],
            "business_id": [9000, 9000, 9000, 9001, 9000],
            "card_type": ["travel"] * 5,
            "creative_type": ["video", "video", "carousel", "video", "video"],
        }
    )
    snapshots = snapshots_from_impressions(frame, AD)
    assert list(snapshots.columns) == [AD.key, TIMESTAMP, *AD.features]
    ad1 = snapshots[snapshots[AD.key] == 1]
    assert ad1["creative_type"].tolist() == ["video", "carousel", "video"]
    assert len(snapshots[snapshots[AD.key] == 2]) == 1


def test_build_from_a_single_impression_table_is_point_in_time_consistent(
    small_sim, tmp_path, fresh_repo
):
    table = read_table(small_sim / "train").drop(columns=[ROW_ID])
    path = tmp_path / "impressions.parquet"
    table.to_parquet(path, index=False)
    repo = fresh_repo
    summary = build_sources(SPEC, repo, path)
    assert summary.impressions == len(table)
    impressions = pd.read_parquet(repo / "data" / "impressions.parquet")
    assert list(impressions.columns) == list(LAYOUT.impression_columns())
    assert impressions[ROW_ID].is_unique
    # as-of join of every impression with its entity's snapshots reproduces its attributes
    ordered = table.sort_values(TIMESTAMP, kind="stable")
    for spec in ENTITIES:
        snapshots = pd.read_parquet(repo / "data" / spec.snapshot_file)
        snapshots[TIMESTAMP] = snapshots[TIMESTAMP].astype(ordered[TIMESTAMP].dtype)
        assert snapshots[spec.key].nunique() == table[spec.key].nunique()
        joined = pd.merge_asof(
            ordered[[spec.key, TIMESTAMP]],
            snapshots,
            on=TIMESTAMP,
            by=spec.key,
            direction="backward",
        )
        for name in spec.features:
            expected = ordered[name].astype(joined[name].dtype).to_numpy()
            assert (joined[name].to_numpy() == expected).all(), name
    assert len(pd.read_parquet(repo / "data" / USER.snapshot_file)) < len(table)


def test_build_names_missing_columns(small_sim, tmp_path, fresh_repo):
    table = read_table(small_sim / "val").drop(columns=["channel"])
    path = tmp_path / "impressions.parquet"
    table.to_parquet(path, index=False)
    # a column the spec names and the table lacks: SpecError naming the spec key and column
    with pytest.raises(SpecError, match=r"context: column 'channel'"):
        build_sources(SPEC, fresh_repo, path)
