"""The in-process batcher: concurrent calls share model calls, each gets exactly its rows."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from serving.batching import MicroBatcher, OverloadedError


class SlowModel:
    """Row i -> (row sum, row index in the call): slow enough that callers pile up."""

    def __init__(self, seconds: float = 0.02) -> None:
        self.seconds = seconds
        self.calls: list[int] = []

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.calls.append(len(x))
        time.sleep(self.seconds)
        return np.stack([x.sum(axis=1), np.arange(len(x))], axis=1).astype(np.float64)


def _requests(n: int, rows: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 100, size=(rows, 4)) for _ in range(n)]


def test_concurrent_calls_are_merged_and_answered_with_their_own_rows():
    model = SlowModel()
    batcher = MicroBatcher(model, max_rows=64, max_waiting_rows=256)
    requests = _requests(20)

    async def main():
        first = asyncio.create_task(batcher(requests[0]))
        await asyncio.sleep(0.005)  # the model is busy with the first call now
        rest = await asyncio.gather(*(batcher(x) for x in requests[1:]))
        return [await first, *rest]

    answers = asyncio.run(main())
    for x, out in zip(requests, answers):
        np.testing.assert_array_equal(out[:, 0], x.sum(axis=1))
    assert model.calls == [3, 57]  # the first ran alone at once; the rest waited together


def test_batches_hold_whole_requests_up_to_max_rows():
    model = SlowModel()
    batcher = MicroBatcher(model, max_rows=7, max_waiting_rows=100)

    async def main():
        return await asyncio.gather(*(batcher(x) for x in _requests(10)))

    asyncio.run(main())
    assert all(n % 3 == 0 and n <= 7 for n in model.calls), model.calls


def test_too_many_waiting_rows_are_refused_not_queued():
    batcher = MicroBatcher(SlowModel(0.05), max_rows=8, max_waiting_rows=8)

    async def main():
        return await asyncio.gather(*(batcher(x) for x in _requests(6)), return_exceptions=True)

    outcomes = asyncio.run(main())
    refused = [o for o in outcomes if isinstance(o, OverloadedError)]
    assert refused and len(refused) < 6
    answered = [o for o in outcomes if not isinstance(o, OverloadedError)]
    assert all(isinstance(o, np.ndarray) and o.shape == (3, 2) for o in answered)


def test_a_failing_model_call_fails_its_callers_and_the_batcher_goes_on():
    def model(x: np.ndarray) -> np.ndarray:
        if (x < 0).any():
            raise RuntimeError("bad batch")
        return x.astype(np.float64)

    batcher = MicroBatcher(model, max_rows=4, max_waiting_rows=16)

    async def main():
        with pytest.raises(RuntimeError, match="bad batch"):
            await batcher(np.array([[-1]]))
        return await batcher(np.array([[2]]))

    assert asyncio.run(main()).tolist() == [[2.0]]


def test_a_request_larger_than_a_batch_is_an_error():
    batcher = MicroBatcher(SlowModel(0), max_rows=2, max_waiting_rows=4)
    with pytest.raises(ValueError, match="exceed the batch size"):
        asyncio.run(batcher(np.zeros((3, 1))))
    with pytest.raises(ValueError, match="max_rows"):
        MicroBatcher(SlowModel(0), max_rows=4, max_waiting_rows=2)


def test_small_batches_run_on_the_event_loop_and_large_ones_in_a_worker_thread():
    import threading

    threads: list[tuple[int, bool]] = []

    def model(x: np.ndarray) -> np.ndarray:
        threads.append((len(x), threading.current_thread() is threading.main_thread()))
        return x.astype(np.float64)

    batcher = MicroBatcher(model, max_rows=64, max_waiting_rows=256, inline_rows=8)

    async def main():
        await batcher(np.zeros((8, 2)))
        await batcher(np.zeros((9, 2)))

    asyncio.run(main())
    assert threads == [(8, True), (9, False)]
