"""One real `bentoml serve` of the tiny served model for the reliability tests."""

from __future__ import annotations

import pytest

from tests.integration.serving_server import running_server, serving_env


@pytest.fixture(scope="session")
def served(serving_model, serving_repo, tmp_path_factory):
    """An httpx client of the server (`client.process`, `client.log_dir` set)."""
    tmp = tmp_path_factory.mktemp("reliability-run")
    env = serving_env(serving_model.home, serving_repo[0], tmp / "logs")
    with running_server(env, tmp / "server.log") as client:
        client.log_dir = tmp / "logs"
        yield client
