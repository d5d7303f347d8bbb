"""A durable prediction log for monitoring: JSON lines, rotated, one file name per process.

`PredictionLog.append` (one record) and `append_request` (a request's rows, expanded into one
record per row by the writer, off the request path) never block and never raise: entries go
through a queue bounded in records to a background thread that writes them. Lost records (full
queue, write errors) are reported to `on_failure(reason, count)`, which the service turns into
a Prometheus counter. Labels join later on `request_id`.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import ujson

_STOP = object()


def _dumps(record: dict[str, Any]) -> str:
    """One JSON line (ujson: ~4x faster than json on these records; same values read back)."""
    return ujson.dumps(record, default=str, escape_forward_slashes=False)


@dataclass(frozen=True)
class RequestRecords:
    """One request's predictions, kept in column form until the writer expands them.

    Record i holds `request_id`, `row` i, `timestamp`, `model_version`, the model's raw input
    `features` of row i, its raw `probabilities` per task, then the other `common` values
    (e.g. the endpoint) and the `per_row` values of row i (e.g. the rank objective and weight).
    """

    common: Mapping[str, Any]  # request_id, timestamp, model_version, endpoint, ...
    features: Mapping[str, Sequence[Any]]  # field -> one raw value per row
    probabilities: np.ndarray  # (N, T), raw
    tasks: Sequence[str]
    per_row: Mapping[str, Sequence[Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.probabilities)

    def records(self) -> Iterator[dict[str, Any]]:
        names = list(self.features)
        columns = [self.features[n] for n in names]
        first = ("request_id", "timestamp", "model_version")
        rest = {k: v for k, v in self.common.items() if k not in first}
        for i, p in enumerate(self.probabilities.tolist()):
            yield {
                "request_id": self.common["request_id"],
                "row": i,
                "timestamp": self.common["timestamp"],
                "model_version": self.common["model_version"],
                "features": {n: c[i] for n, c in zip(names, columns)},
                "probabilities": dict(zip(self.tasks, p)),
                **rest,
                **{k: v[i] for k, v in self.per_row.items()},
            }


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
        self.queue_size = queue_size  # records waiting to be written; beyond, dropped
        self._queue: queue.Queue[Any] = queue.Queue()
        self._lock = threading.Lock()
        self._waiting = 0  # records in the queue
        self._part = 0
        self._file = None
        self._opened = 0.0
        self._written = 0
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def append(self, record: dict[str, Any]) -> None:
        self._put(record, 1)

    def append_request(self, entry: RequestRecords) -> None:
        """A request's rows, one record each; expanded and serialised by the writer thread."""
        self._put(entry, len(entry))

    def _put(self, item: Any, records: int) -> None:
        with self._lock:
            full = self._waiting + records > self.queue_size
            if not full:
                self._waiting += records
        if full:
            self.on_failure("queue_full", records)
        else:
            self._queue.put_nowait(item)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop (used at shutdown and by tests)."""
        self._queue.put_nowait(_STOP)
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
            entries = [r for r in batch if r is not _STOP]
            count = sum(len(e) if isinstance(e, RequestRecords) else 1 for e in entries)
            try:
                records: list[Any] = []
                for entry in entries:
                    if isinstance(entry, RequestRecords):
                        records.extend(entry.records())
                    else:
                        records.append(entry)
                if records:
                    self._rotate_if_due()
                    text = "".join(_dumps(r) + "\n" for r in records)
                    self._file.write(text)
                    self._file.flush()
                    self._written += len(text)
            except Exception:  # a failed write is counted, never raised into a request
                self.on_failure("write_error", count)
                if self._file is not None:
                    with contextlib.suppress(OSError):
                        self._file.close()
                    self._file = None
            finally:
                with self._lock:
                    self._waiting -= count
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
