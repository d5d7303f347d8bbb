"""One real `bentoml serve` of the tiny served model for the reliability tests."""

from __future__ import annotations

import pytest

from tests.integration.serving_server import model_server


@pytest.fixture(scope="session")
def served(serving_model, serving_repo, tmp_path_factory):
    """An httpx client of the server (`client.process`, `client.log_dir` set)."""
    tmp = tmp_path_factory.mktemp("reliability-run")
    with model_server(serving_model, serving_repo[0], tmp) as client:
        yield client
