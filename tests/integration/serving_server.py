"""Start a real `bentoml serve` of serving.service:AITMService for tests (not for production)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.redis_server import free_port, stop_process, wait_until

ROOT = Path(__file__).resolve().parents[2]


def serving_env(home: Path, feast_repo: Path, log_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")]
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in paths if p),
        BENTOML_HOME=str(home),
        BENTOML_DO_NOT_TRACK="True",
        AITM_FEAST_REPO=str(feast_repo),
        AITM_PREDICTION_LOG_DIR=str(log_dir),
        AITM_MAX_CANDIDATES="60",
        AITM_MAX_ROWS="500",
        AITM_MAX_BODY_BYTES="200000",
        FEAST_USAGE="False",
        **extra,
    )
    return env


SERVICE = "serving.service:AITMService"


def start(
    env: dict[str, str], log_path: Path, target: str = SERVICE, cwd: Path = ROOT
) -> tuple[subprocess.Popen, int]:
    """`bentoml serve TARGET` (the service, a built bento's tag or folder) on a free port."""
    port = free_port()
    cmd = [sys.executable, "-m", "bentoml", "serve", target,
           "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    log = log_path.open("w")
    process = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    return process, port


def stop(process: subprocess.Popen) -> None:
    stop_process(process, timeout_s=15)


@contextmanager
def running_server(
    env: dict[str, str],
    log_path: Path,
    timeout_s: float = 90.0,
    target: str = SERVICE,
    cwd: Path = ROOT,
):
    """Yield an httpx client for a server that answered /readyz with 200; `client.process` is
    the `bentoml serve` process."""
    process, port = start(env, log_path, target, cwd)
    try:
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=30) as client:
            client.process = process

            def ready() -> bool:
                try:
                    return client.get("/readyz").status_code == 200
                except httpx.TransportError:
                    return False

            try:
                wait_until(ready, process, timeout_s, "bentoml serve", every_s=0.3)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}:\n{log_path.read_text()[-4000:]}") from exc
            yield client
    finally:
        stop(process)


@contextmanager
def model_server(serving_model, feast_repo: Path, tmp: Path, **extra: str):
    """`running_server` of the tiny served model (tests' `serving_model`) with its prediction
    log under `tmp/logs` (`client.log_dir`); `extra` are more environment settings."""
    env = serving_env(serving_model.home, feast_repo, tmp / "logs", **extra)
    with running_server(env, tmp / "server.log") as client:
        client.log_dir = tmp / "logs"
        yield client


@contextmanager
def requests_in_flight(client, n: int, path: str = "/predict", body: bytes = b'{"rows": []}'):
    """`n` requests held inside the server: headers and the body's first byte sent, the rest
    when the block ends. Yields a list that then holds their statuses."""
    import http.client

    url, statuses, connections = client.base_url, [], []
    try:
        for _ in range(n):
            connection = http.client.HTTPConnection(url.host, url.port, timeout=30)
            connection.putrequest("POST", path)
            connection.putheader("content-type", "application/json")
            connection.putheader("content-length", str(len(body)))
            connection.endheaders(body[:1])
            connections.append(connection)
        yield statuses
        for connection in connections:
            connection.send(body[1:])
        statuses.extend(connection.getresponse().status for connection in connections)
    finally:
        for connection in connections:
            connection.close()


def eventually(predicate, timeout_s: float = 20.0, every_s: float = 0.2) -> bool:
    """True as soon as `predicate()` is; False if it never was within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every_s)
    return False
