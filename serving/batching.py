"""Adaptive batching inside the service process: concurrent requests share one model call.

A call that finds the model idle runs at once, alone; calls that arrive while a model call is
running queue and go together into the next one (whole requests, up to `max_rows` rows). There
is no timer, so a lone request never waits for company, and the batch grows with the load.
Rows beyond `max_waiting_rows` are refused with `OverloadedError` (the service answers 503) instead
of queueing without bound.

This replaces BentoML's batchable API, which BentoML 1.4 reaches only through the API's own
HTTP route (a public `/forward`) and an in-process HTTP hop per call, which cost more than
the model itself.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import anyio
import numpy as np


class OverloadedError(RuntimeError):
    """More rows are waiting for the model than the batcher accepts."""


class MicroBatcher:
    """`await batcher(x)`: (N, F) rows -> the model's (N, T) output for exactly those rows.

    `model` takes one (M, F) array and returns (M, T) with row i answering row i (rows are
    independent), one call at a time: batches of up to `inline_rows` rows on the event loop
    itself, larger ones in a worker thread: a thread hop costs about as much as a small
    forward. Event-loop only: every method runs on the loop's thread, so the queue needs no
    lock.
    """

    def __init__(
        self,
        model: Callable[[np.ndarray], np.ndarray],
        *,
        max_rows: int,
        max_waiting_rows: int,
        inline_rows: int = 0,
    ) -> None:
        if max_rows < 1 or max_waiting_rows < max_rows:
            raise ValueError(
                f"need 1 <= max_rows <= max_waiting_rows, got {max_rows}, {max_waiting_rows}"
            )
        self.model = model
        self.max_rows = max_rows
        self.max_waiting_rows = max_waiting_rows
        self.inline_rows = inline_rows
        self._waiting: deque[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = deque()
        self._waiting_rows = 0
        self._running = False
        self.batch_sizes: deque[int] = deque(maxlen=1_000)  # recent model calls, in rows

    async def __call__(self, x: np.ndarray) -> np.ndarray:
        if len(x) > self.max_rows:
            raise ValueError(f"{len(x)} rows exceed the batch size of {self.max_rows}")
        if self._waiting_rows + len(x) > self.max_waiting_rows:
            raise OverloadedError(f"{self._waiting_rows} rows already wait for the model")
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._waiting.append((x, future))
        self._waiting_rows += len(x)
        if not self._running:
            self._running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    def _take(self) -> list[tuple[np.ndarray, asyncio.Future[np.ndarray]]]:
        """Whole requests from the front of the queue, up to max_rows rows (at least one)."""
        taken, rows = [], 0
        while self._waiting and (not taken or rows + len(self._waiting[0][0]) <= self.max_rows):
            x, future = self._waiting.popleft()
            self._waiting_rows -= len(x)
            if future.cancelled():  # the caller went away while waiting
                continue
            taken.append((x, future))
            rows += len(x)
        return taken

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._take()
                if not batch:
                    continue
                x = batch[0][0] if len(batch) == 1 else np.concatenate([b[0] for b in batch])
                self.batch_sizes.append(len(x))
                try:
                    if len(x) <= self.inline_rows:
                        out = self.model(x)
                    else:
                        out = await anyio.to_thread.run_sync(self.model, x)
                except Exception as exc:  # handed to every caller of this batch, not lost
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                start = 0
                for rows, future in batch:
                    if not future.done():
                        future.set_result(out[start : start + len(rows)])
                    start += len(rows)
        finally:
            self._running = False
