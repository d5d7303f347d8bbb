"""Faults around a real server: the prediction log's folder unusable, a request flood."""

from __future__ import annotations

import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from serving.prediction_log import read_log
from tests.integration.serving_server import eventually, model_server, requests_in_flight

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MAX_CONCURRENCY = 4


@pytest.fixture(scope="module")
def server(serving_model, serving_repo, tmp_path_factory):
    """Log files rotated every 0.3 s (so a broken folder shows at once), a low concurrency limit."""
    with model_server(
        serving_model, serving_repo[0], tmp_path_factory.mktemp("faults-run"),
        AITM_LOG_MAX_SECONDS="0.3", AITM_MAX_CONCURRENCY=str(MAX_CONCURRENCY),
    ) as client:  # fmt: skip
        yield client


def _write_errors(client) -> float:
    metrics = client.get("/metrics").text
    found = re.search(r'aitm_prediction_log_failures_total\{reason="write_error"\} (\S+)', metrics)
    assert found, metrics[-2000:]
    return float(found.group(1))


def _rank(client, ids, n: int, pause_s: float = 0.15) -> list[str]:
    users, ads = ids
    body = {
        "user_id": users[0],
        "context": {"position": 1, "hour": 12, "channel": "feed"},
        "candidates": [{"ad_id": a, "weight": 1.0, "objective": "click"} for a in ads[:5]],
    }
    request_ids = []
    for _ in range(n):
        response = client.post("/rank", json=body)
        assert response.status_code == 200, response.text
        request_ids.append(response.json()["request_id"])
        time.sleep(pause_s)  # spread over several log rotations
    return request_ids


def test_an_unusable_log_folder_fails_no_request_is_counted_and_recovers(server, serving_ids):
    log_dir = server.log_dir
    before = _rank(server, serving_ids, 5)
    assert eventually(lambda: set(before) <= {r["request_id"] for r in read_log(log_dir)})
    assert _write_errors(server) == 0

    # Root ignores permission bits, so the folder is made unusable outright: moved away and
    # replaced by a plain file. The next rotation (0.3 s) cannot create a log file there.
    shutil.move(log_dir, log_dir.with_name("logs-moved"))
    log_dir.write_text("not a folder")
    try:
        during = _rank(server, serving_ids, 10)  # every request still answered 200
        assert eventually(lambda: _write_errors(server) > 0)
    finally:
        log_dir.unlink()
        shutil.move(log_dir.with_name("logs-moved"), log_dir)
    failed = _write_errors(server)
    assert failed <= len(during) * 5  # counted in records, never more than were sent

    after = _rank(server, serving_ids, 5)
    assert eventually(lambda: set(after) <= {r["request_id"] for r in read_log(log_dir)})
    assert _write_errors(server) == failed  # recovered: no new failures
    assert server.get("/readyz").status_code == 200


def test_a_flood_beyond_max_concurrency_gets_429_and_probes_still_answer(server):
    body = {"rows": []}  # refused after the limit: cheap, so the flood is the limit's
    url = str(server.base_url).rstrip("/")
    with (
        requests_in_flight(server, MAX_CONCURRENCY) as held,
        httpx.Client(base_url=url, timeout=30) as client,
        ThreadPoolExecutor(8) as pool,
    ):
        assert eventually(lambda: client.post("/predict", json=body).status_code == 429)
        answers = list(pool.map(lambda _: client.post("/predict", json=body), range(60)))
        readyz = client.get("/readyz")
    statuses = [a.status_code for a in answers]
    assert statuses == [429] * 60, statuses
    assert all(a.json()["error"] for a in answers)
    assert readyz.status_code == 200  # probes are never limited
    assert held == [422] * MAX_CONCURRENCY  # the requests in flight were served
