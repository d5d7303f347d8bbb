"""A durable prediction log for monitoring: JSON lines, rotated, one file name per process.

`PredictionLog.append` never blocks and never raises: records go through a bounded queue to a
background thread that writes them. Lost records (full queue, write errors) are reported to
`on_failure(reason, count)`, which the service turns into a Prometheus counter. Labels join
later on `request_id`.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_STOP = object()


class PredictionLog:
    def __init__(
        self,
        directory: str | Path,
        *,
        max_bytes: int = 64 * 2**20,
        max_seconds: float = 3_600.0,
        queue_size: int = 10_000,
        on_failure: Callable[[str, int], None] = lambda reason, n: None,
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.on_failure = on_failure
        # host + pid + start time: replicas sharing a volume never write the same file.
        self.stem = f"predictions-{socket.gethostname()}-{os.getpid()}-{time.time_ns()}"
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._part = 0
        self._file = None
        self._opened = 0.0
        self._written = 0
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def append(self, record: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.on_failure("queue_full", 1)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop (used at shutdown and by tests)."""
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            self.on_failure("queue_full", 1)
            return
        self._thread.join(timeout)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every record appended so far is written."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    @property
    def current_path(self) -> Path:
        return self.directory / f"{self.stem}.{self._part:05d}.jsonl"

    def _rotate_if_due(self) -> None:
        now = time.monotonic()
        due = self._file is not None and (
            self._written >= self.max_bytes or now - self._opened >= self.max_seconds
        )
        if due:
            self._file.close()
            self._file = None
            self._part += 1
        if self._file is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._file = self.current_path.open("a", encoding="utf-8")
            self._opened, self._written = now, 0

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < 1_000:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(r is _STOP for r in batch)
            records = [r for r in batch if r is not _STOP]
            try:
                if records:
                    self._rotate_if_due()
                    text = "".join(json.dumps(r, default=str) + "\n" for r in records)
                    self._file.write(text)
                    self._file.flush()
                    self._written += len(text)
            except Exception:  # a failed write is counted, never raised into a request
                self.on_failure("write_error", len(records))
                if self._file is not None:
                    with contextlib.suppress(OSError):
                        self._file.close()
                    self._file = None
            finally:
                for _ in batch:
                    self._queue.task_done()
            if stop:
                if self._file is not None:
                    self._file.close()
                return


def read_log(directory: str | Path) -> list[dict[str, Any]]:
    """Every record under `directory`, file by file (for tests and monitoring jobs)."""
    out = []
    for path in sorted(Path(directory).glob("predictions-*.jsonl")):
        out.extend(json.loads(line) for line in path.read_text().splitlines() if line)
    return out
