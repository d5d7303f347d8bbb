"""The Redis online store variant against a real redis-server the test starts and stops."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from aitm.dataset import load_spec
from features.build import source_ids
from features.fields import FeastLayout
from features.online import MissingEntityError, online_features
from features.store import REDIS_ENV, apply, materialize, open_store
from tests.integration.online_paths import assert_reader_matches_get_online_features
from tests.support.redis_server import local_redis

LAYOUT = FeastLayout(load_spec())  # the default spec
USER, AD = LAYOUT.entity("user"), LAYOUT.entity("ad")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("redis-server") is None,
        reason="redis-server is not on PATH (apt-get install -y redis-server)",
    ),
]


@pytest.fixture(scope="module")
def redis_store(built_repo):
    with local_redis() as connection, pytest.MonkeyPatch.context() as patch:
        patch.setenv(REDIS_ENV, connection)
        apply(built_repo.path, "redis")
        store = open_store(built_repo.path, "redis")
        materialize(store, built_repo.start, built_repo.end)
        yield store


def test_redis_lookup_matches_sqlite(built_repo, redis_store, sqlite_store):
    users, ads = source_ids(built_repo.path)
    ads = ads[:50]
    context = {"position": 2, "hour": 8, "channel": "email"}
    for user_id in users[:5]:
        keys = {USER.key: int(user_id)}
        from_redis = online_features(redis_store, keys, ads.tolist(), context)
        from_sqlite = online_features(sqlite_store, keys, ads.tolist(), context)
        assert list(from_redis.columns) == list(LAYOUT.fields)
        pd.testing.assert_frame_equal(from_redis, from_sqlite)


def test_redis_lookup_names_missing_ids(built_repo, redis_store):
    known = int(pd.read_parquet(built_repo.path / "data" / AD.snapshot_file)[AD.key].iloc[0])
    with pytest.raises(MissingEntityError, match=r"user_id \[5\]"):
        context = {"position": 1, "hour": 1, "channel": "feed"}
        online_features(redis_store, {USER.key: 5}, [known], context)


def test_redis_reader_matches_get_online_features(built_repo, redis_store):
    assert_reader_matches_get_online_features(redis_store, built_repo.path)
