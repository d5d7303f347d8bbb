"""Schemathesis against the served OpenAPI document of a real server: the CI form (bounded)."""

from __future__ import annotations

import pytest

from aitm.dataset import load_spec
from tests.reliability.api_fuzz import known_ids, run_fuzz

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_thousand_generated_requests_get_no_5xx_and_match_the_document(
    served, serving_repo, tmp_path
):
    users, ads = known_ids(serving_repo[0], load_spec())
    url = str(served.base_url).rstrip("/")
    result = run_fuzz(url, users, ads, tmp_path, examples=60, max_time_s=45)
    print(f"{result.requests} requests: {result.statuses}")  # shown with pytest -s
    assert result.exit_code == 0 and not result.failures, result.output[-6000:]
    assert result.requests >= 1_000, result.statuses
    assert result.server_errors == 0, result.statuses
    # The fuzzing reached the model on both routes, and refused bad input with 4xx.
    for route in ("POST /predict", "POST /rank"):
        assert result.statuses.get(f"{route} 200", 0) > 100, result.statuses
        assert any(key.startswith(f"{route} 4") for key in result.statuses), result.statuses
    assert served.get("/livez").status_code == 200
    assert served.process.poll() is None  # the server never died
