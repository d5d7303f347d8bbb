"""The Spark offline store (local session) returns the same training rows as the file store."""

from __future__ import annotations

import importlib.util

import pandas as pd
import pytest

from features.retrieval import historical_features, read_impressions
from features.store import apply, open_store

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,  # a JVM on two cores: about 90 s, mostly Spark's start-up
    pytest.mark.skipif(
        importlib.util.find_spec("pyspark") is None,
        reason="pyspark is not installed (pip install pyspark==4.0.1; needs Java 17)",
    ),
]


def test_spark_offline_store_matches_file_store(built_repo, sqlite_store):
    impressions = read_impressions(built_repo.path).sample(2_000, random_state=0)
    # One late impression of an entity that exists, before any snapshot: both stores must
    # lose it the same way, and the retrieval must report it.
    early = impressions.head(1).copy()
    early["impression_id"] = 10**9
    early["event_timestamp"] = pd.Timestamp("2024-01-01", tz="UTC")
    entity_frame = pd.concat([impressions, early], ignore_index=True)

    apply(built_repo.path, "spark")
    spark_store = open_store(built_repo.path, "spark")
    from_spark = historical_features(spark_store, entity_frame, on_missing="report")
    from_file = historical_features(sqlite_store, entity_frame, on_missing="report")
    assert from_spark.missing == from_file.missing == 1
    assert from_spark.missing_ids == from_file.missing_ids == (10**9,)
    assert len(from_spark.frame) == len(from_file.frame) == len(entity_frame)
    found = from_file.frame["impression_id"] != 10**9
    pd.testing.assert_frame_equal(
        from_spark.frame[found], from_file.frame[found], check_dtype=False
    )
