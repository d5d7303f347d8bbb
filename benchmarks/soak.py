"""Soak: /rank and /predict together at fixed rates for a bounded time, against a running server.

    make serve &     # or any AITM server; --pid is its `bentoml serve` process
    python -m benchmarks.soak --url http://127.0.0.1:3000 \
        --feast-repo artifacts/pipeline/feature_repo --pid $(pgrep -f "bentoml serve" | head -1) \
        --minutes 10 --rank-rate 100 --predict-rate 20 [--model-dir $BENTOML_HOME/models/...]

Requests are built from a dataset spec: the served model's (`--model-dir`), else the one the
Feast repo was built from (its dataset.yaml).

Requests are sent open-loop on a fixed schedule (latency counts from the scheduled time, so
queueing counts). Every window (60 s by default) it prints the requests, errors and latency
percentiles of that window and the server's resident memory (the serve process and all its
workers), then the totals: errors, p99.9, and memory growth from the end of the first window to
the end of the last. The load generator shares the CPU with the server on a small machine.
The settings, totals and windows are written as a record (benchmarks/record.py; `--json PATH`).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psutil

from aitm.dataset import DatasetSpec
from benchmarks.record import Recording, add_json_argument
from benchmarks.serving_bench import context_rows, rank_body_maker, request_frame
from features.build import entity_ids
from features.fields import repo_spec
from serving.spec import artifact_spec


@dataclass(frozen=True)
class Stream:
    path: str
    rate: float  # requests per second
    bodies: list[bytes]  # cycled


@dataclass
class Window:
    index: int
    requests: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    rss_mb: float = 0.0  # at the window's end

    def summary(self) -> dict:
        lat = np.asarray(self.latencies_ms or [np.nan])
        return {
            "window": self.index,
            "requests": self.requests,
            "errors": self.errors,
            "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)),
            "p99_9_ms": float(np.percentile(lat, 99.9)),
            "rss_mb": round(self.rss_mb, 1),
        }


@dataclass
class SoakReport:
    windows: list[Window]
    seconds: float

    @property
    def requests(self) -> int:
        return sum(w.requests for w in self.windows)

    @property
    def errors(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for w in self.windows:
            for status, n in w.errors.items():
                total[status] = total.get(status, 0) + n
        return total

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile([x for w in self.windows for x in w.latencies_ms], q))

    @property
    def memory_growth(self) -> float:
        """RSS at the end of the last window over RSS at the end of the first, minus 1."""
        return self.windows[-1].rss_mb / self.windows[0].rss_mb - 1

    def totals(self) -> dict:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "seconds": round(self.seconds, 1),
            "p50_ms": self.percentile_ms(50),
            "p99_ms": self.percentile_ms(99),
            "p99_9_ms": self.percentile_ms(99.9),
            "rss_first_mb": round(self.windows[0].rss_mb, 1),
            "rss_last_mb": round(self.windows[-1].rss_mb, 1),
            "memory_growth": self.memory_growth,
        }


def resident_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, MB."""
    root = psutil.Process(pid)
    total = 0
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += process.memory_info().rss
    return total / 2**20


def soak(
    client: httpx.Client,
    streams: list[Stream],
    duration_s: float,
    window_s: float,
    server_pid: int,
    on_window=None,
) -> SoakReport:
    """Send every stream on its schedule for `duration_s`; measure per window of `window_s`."""
    n_windows = max(1, round(duration_s / window_s))
    windows = [Window(i) for i in range(n_windows)]
    schedule = sorted(
        (i / s.rate, s.path, s.bodies[i % len(s.bodies)])
        for s in streams
        for i in range(int(s.rate * n_windows * window_s))
    )
    headers = {"content-type": "application/json"}
    lock = threading.Lock()
    done, go = threading.Event(), threading.Event()
    start = 0.0  # set once every request is queued: queueing 72,000 of them takes ~1 s of CPU

    def one(item: tuple[float, str, bytes]) -> None:
        go.wait()
        offset, path, body = item
        due = start + offset
        time.sleep(max(0.0, due - time.perf_counter()))
        try:
            status = str(client.post(path, content=body, headers=headers).status_code)
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        took_ms = (time.perf_counter() - due) * 1e3
        window = windows[min(int(offset // window_s), n_windows - 1)]
        with lock:
            window.requests += 1
            if status == "200":
                window.latencies_ms.append(took_ms)
            else:
                window.errors[status] = window.errors.get(status, 0) + 1

    def sample_memory() -> None:
        for window in windows:
            end = start + (window.index + 1) * window_s
            if done.wait(max(0.0, end - time.perf_counter())):
                return
            window.rss_mb = resident_mb(server_pid)
            if on_window is not None:
                on_window(window)

    sampler = threading.Thread(target=sample_memory, daemon=True)
    with ThreadPoolExecutor(max_workers=64) as pool:
        futures = [pool.submit(one, item) for item in schedule]
        # This process holds torch, pandas and 72,000 queued requests: a full collection of
        # them pauses every sender (20 to 110 ms in a measured stand-in), counted as server
        # latency.
        gc.collect()
        gc.freeze()
        start = time.perf_counter() + 0.5
        go.set()
        sampler.start()
        for future in futures:
            future.result()
    sampler.join(timeout=window_s + 5)
    done.set()
    return SoakReport(windows, time.perf_counter() - start)


def streams_for(
    client: httpx.Client,
    repo: Path,
    rank_rate: float,
    predict_rate: float,
    predict_rows: int,
    spec: DatasetSpec | None = None,
) -> list[Stream]:
    """A /rank stream (50 real candidates for real requests) and a /predict stream, in the
    names of `spec` (None: the spec the Feast repo was built from); the objectives are the
    served model's tasks."""
    spec = spec or repo_spec(repo)
    rows = json.loads(request_frame(repo, spec).to_json(orient="records"))
    answer = client.post("/predict", json={"rows": rows[:1]})
    answer.raise_for_status()
    contexts = context_rows(repo, spec)
    rank_body = rank_body_maker(spec, entity_ids(repo, spec), contexts, answer.json()["tasks"])
    n = len(rows) // predict_rows
    predict = [{"rows": rows[i * predict_rows : (i + 1) * predict_rows]} for i in range(n)]
    return [
        Stream("/rank", rank_rate, [json.dumps(rank_body(i)).encode() for i in range(500)]),
        Stream("/predict", predict_rate, [json.dumps(b).encode() for b in predict]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--feast-repo", required=True, help="the served Feast repo (ids, rows)")
    parser.add_argument("--pid", type=int, required=True, help="the `bentoml serve` process")
    parser.add_argument("--model-dir", help="the served model's folder (its spec names requests)")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--window", type=float, default=60.0, help="seconds per window")
    parser.add_argument("--rank-rate", type=float, default=100.0, help="/rank requests/s")
    parser.add_argument("--predict-rate", type=float, default=20.0, help="/predict requests/s")
    parser.add_argument("--predict-rows", type=int, default=10, help="rows per /predict")
    add_json_argument(parser, "soak")
    args = parser.parse_args()
    recording = Recording("soak", args.json)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    with httpx.Client(base_url=args.url, timeout=30, limits=limits) as client:
        if client.get("/readyz").status_code != 200:
            raise SystemExit(f"{args.url}/readyz is not 200: start the server first")
        spec = artifact_spec(args.model_dir) if args.model_dir else None
        streams = streams_for(
            client, Path(args.feast_repo), args.rank_rate, args.predict_rate, args.predict_rows,
            spec,
        )  # fmt: skip
        report = soak(
            client, streams, args.minutes * 60, args.window, args.pid,
            on_window=lambda w: print(json.dumps(w.summary()), flush=True),
        )  # fmt: skip
    totals = report.totals()
    print(json.dumps(totals, indent=2))
    settings = {k: v for k, v in vars(args).items() if k not in ("json", "pid")}
    windows = [w.summary() for w in report.windows]
    recording.write({"settings": settings, **totals, "windows": windows})


if __name__ == "__main__":
    main()
