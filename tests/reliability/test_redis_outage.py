"""The service on a real Redis online store, Redis killed under load: 503 with a message and a
failing /readyz while it is down, recovery without a restart once it is back, no crash, and
every request that succeeded is in the prediction log. Redis persists to an append-only file,
as in production, so it restarts with its data."""

from __future__ import annotations

import shutil
import threading
import time

import pandas as pd
import pytest

from features.fields import AD, USER
from features.store import REDIS_ENV, apply, materialize, open_store
from serving.prediction_log import read_log
from tests.conftest import copy_repo
from tests.integration.serving_server import eventually, running_server, serving_env
from tests.support.redis_server import free_port, start_redis, stop_redis

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not on PATH"),
]


class Load:
    """/rank requests back to back from a thread until stopped: (status, request id) each."""

    def __init__(self, client, body: dict) -> None:
        self.client, self.body = client, body
        self.answers: list[tuple[int, str, str]] = []  # status, request id, error message
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stopped.is_set():
            response = self.client.post("/rank", json=self.body)
            answer = response.json()
            self.answers.append(
                (response.status_code, answer.get("request_id", ""), answer.get("error", ""))
            )
            time.sleep(0.02)

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join(timeout=30)

    def count(self, status: int) -> int:
        return sum(1 for s, _, _ in self.answers if s == status)


def test_redis_killed_under_load_gives_503_and_unready_then_recovers_losing_no_log(
    serving_model, tmp_path, monkeypatch
):
    from aitm.dataset import load_spec
    from features.build import build_sources

    port = free_port()
    connection = f"127.0.0.1:{port}"
    monkeypatch.setenv(REDIS_ENV, connection)
    repo = copy_repo(tmp_path / "feature_repo")
    build_sources(load_spec(), repo, serving_model.sim)
    window = pd.Timestamp("2020-01-01", tz="UTC"), pd.Timestamp("2035-01-01", tz="UTC")

    data_dir = tmp_path / "redis-data"
    data_dir.mkdir()
    redis = start_redis(port, data_dir=data_dir)
    try:
        apply(repo, "redis")
        materialize(open_store(repo, "redis"), *window)
        user = int(pd.read_parquet(repo / "data" / USER.snapshot_file)[USER.key].iloc[0])
        ads = pd.read_parquet(repo / "data" / AD.snapshot_file)[AD.key].unique()[:10]
        body = {
            "user_id": user,
            "context": {"position": 1, "hour": 12, "channel": "feed"},
            "candidates": [{"ad_id": int(a), "weight": 1.0, "objective": "click"} for a in ads],
        }
        log_dir = tmp_path / "logs"
        env = serving_env(
            serving_model.home, repo, log_dir, AITM_FEAST_ONLINE="redis", **{REDIS_ENV: connection}
        )
        with running_server(env, tmp_path / "server.log") as client, Load(client, body) as load:
            assert eventually(lambda: load.count(200) >= 20)

            redis.kill()  # SIGKILL, mid-load
            redis.wait(timeout=10)
            assert eventually(lambda: load.count(503) >= 5)
            assert eventually(lambda: client.get("/readyz").status_code == 503)
            assert client.get("/livez").status_code == 200  # alive: no restart wanted
            metrics = client.get("/metrics").text
            assert "aitm_online_store_errors_total" in metrics
            assert "aitm_online_store_errors_total 0.0" not in metrics

            redis = start_redis(port, data_dir=data_dir)  # the same data, from its file
            assert eventually(lambda: client.get("/readyz").status_code == 200)
            recovered = load.count(200)
            assert eventually(lambda: load.count(200) >= recovered + 20)
            assert client.process.poll() is None  # the same server process throughout

        statuses = {s for s, _, _ in load.answers}
        assert statuses == {200, 503}, statuses  # nothing else: no 500, no dropped connection
        errors = {e for s, _, e in load.answers if s == 503}
        assert all("online feature store unavailable" in e for e in errors), errors
        served = {r for s, r, _ in load.answers if s == 200}
        assert eventually(lambda: served <= {r["request_id"] for r in read_log(log_dir)})
        logged = [r for r in read_log(log_dir) if r["request_id"] in served]
        assert len(logged) == len(served) * len(ads)  # every candidate row of every success
    finally:
        if redis.poll() is None:
            stop_redis(redis)
