"""The service on a real Redis online store: 503 and a failing /readyz while Redis is down,
recovery without a restart once it is back."""

from __future__ import annotations

import shutil
import time

import pandas as pd
import pytest

from features.fields import AD, USER
from features.redis_server import free_port, start_redis, stop_redis
from features.store import REDIS_ENV, apply, materialize, open_store
from tests.integration.conftest import copy_repo
from tests.integration.serving_server import running_server, serving_env

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not on PATH"),
]


def _wait_for(predicate, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return False


def test_redis_outage_gives_503_and_unready_then_recovers(serving_model, tmp_path, monkeypatch):
    from features.build import build_sources

    port = free_port()
    connection = f"127.0.0.1:{port}"
    monkeypatch.setenv(REDIS_ENV, connection)
    repo = copy_repo(tmp_path / "feature_repo")
    build_sources(serving_model.sim, repo)
    window = pd.Timestamp("2020-01-01", tz="UTC"), pd.Timestamp("2035-01-01", tz="UTC")

    def load_redis() -> None:
        materialize(open_store(repo, "redis"), *window)

    redis = start_redis(port)
    try:
        apply(repo, "redis")
        load_redis()
        user = int(pd.read_parquet(repo / "data" / USER.snapshot_file)[USER.key].iloc[0])
        ads = pd.read_parquet(repo / "data" / AD.snapshot_file)[AD.key].unique()[:10]
        body = {
            "user_id": user,
            "context": {"position": 1, "hour": 12, "channel": "feed"},
            "candidates": [{"ad_id": int(a), "weight": 1.0, "objective": "click"} for a in ads],
        }
        env = serving_env(
            serving_model.home, repo, tmp_path / "logs", AITM_FEAST_ONLINE="redis",
            **{REDIS_ENV: connection},
        )  # fmt: skip
        with running_server(env, tmp_path / "server.log") as client:
            assert client.post("/rank", json=body).status_code == 200

            stop_redis(redis)
            response = client.post("/rank", json=body)
            assert response.status_code == 503, response.text
            assert "online feature store unavailable" in response.json()["error"]
            assert _wait_for(lambda: client.get("/readyz").status_code == 503)
            assert client.get("/livez").status_code == 200  # alive: no restart wanted
            assert "aitm_online_store_errors_total 1.0" in client.get("/metrics").text

            redis = start_redis(port)
            load_redis()
            assert _wait_for(lambda: client.get("/readyz").status_code == 200)
            response = client.post("/rank", json=body)
            assert response.status_code == 200, response.text
            assert len(response.json()["candidates"]) == len(ads)
    finally:
        if redis.poll() is None:
            stop_redis(redis)
