"""A throwaway local redis-server for tests and benchmarks: free port, no persistence.

`free_port` and `wait_until` (poll a started process until it answers) are shared with the
serving tests, which start `bentoml serve` the same way.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    ready: Callable[[], bool],
    process: subprocess.Popen,
    timeout_s: float,
    what: str,
    every_s: float = 0.05,
) -> None:
    """Poll `ready()` until it is true. RuntimeError if `process` exits first or `timeout_s`
    passes; `ready` may raise OSError (nothing listening yet), which counts as not ready."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if ready():
                return
        except OSError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before it was ready")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} was not ready within {timeout_s:g} s")
        time.sleep(every_s)


def _answers_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
        conn.sendall(b"PING\r\n")
        return conn.recv(16).startswith(b"+PONG")


def start_redis(
    port: int, timeout_s: float = 10.0, data_dir: str | Path | None = None
) -> subprocess.Popen:
    """`redis-server` on 127.0.0.1:port, answering PING; stop it with `stop_redis`. In memory
    only, unless `data_dir` is given: then every write is appended to a file there (fsync'd)
    and a restart on the same folder, even after SIGKILL, comes back with the data."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server is not on PATH (apt-get install -y redis-server)")
    persistence = ["--appendonly", "no"]
    if data_dir is not None:
        persistence = ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(data_dir)]
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", *persistence],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: _answers_ping(port), process, timeout_s, f"redis-server on {port}")
    except RuntimeError:
        stop_redis(process)
        raise
    return process


def stop_process(process: subprocess.Popen, timeout_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within `timeout_s`."""
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def stop_redis(process: subprocess.Popen) -> None:
    stop_process(process)


@contextmanager
def local_redis(timeout_s: float = 10.0) -> Iterator[str]:
    """Start `redis-server` on 127.0.0.1; yield its Feast connection string host:port."""
    port = free_port()
    process = start_redis(port, timeout_s)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop_redis(process)
