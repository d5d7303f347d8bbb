"""Serving benchmark: a bounded, fixed-rate load generator against a running AITM service.

    # a server running (see serving/README.md), its model folder and Feast repo at hand:
    python -m benchmarks.serving_bench --url http://127.0.0.1:3000 \
        --model-dir $BENTOML_HOME/models/aitm/<version> --feast-repo feature_repo \
        --duration 10

Requests are built from the dataset spec the model carries (its entities' keys and context
fields; ids, attributes and context values from the Feast repo's tables), so any spec's model can
be measured. For each scenario (/predict with 1 row, /predict with 100 rows, /rank with 50
candidates) it
sends requests open-loop at a fixed rate for a bounded duration (and at most --max-requests),
then prints latency p50/p99/p99.9 (from the scheduled send time, so queueing counts), achieved
throughput, error counts, and the same model's in-process forward time on the same batch size,
run as the server runs it (the serving overhead ratio = server p50 / forward p50). The load
generator shares the CPU with the server: on a small machine it inflates the figures. The
results are written as a record (benchmarks/record.py; `--json PATH`).
"""

from __future__ import annotations

import argparse
import gc
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import torch

from aitm.dataset import DatasetSpec
from aitm.inference import Predictor
from benchmarks.record import Recording, add_json_argument
from features.build import entity_ids
from features.fields import IMPRESSIONS_FILE, FeastLayout
from serving.forward import model_forward
from serving.spec import served_spec


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    rate: float  # requests per second
    rows: int  # model rows per request
    body: Callable[[int], dict]


@dataclass
class Outcome:
    latencies_ms: list[float]
    errors: dict[str, int]
    seconds: float


def run(client: httpx.Client, scenario: Scenario, duration_s: float, max_requests: int) -> Outcome:
    n = min(int(scenario.rate * duration_s), max_requests)
    # Bodies are serialised before the clock starts: the generator shares the CPU with the
    # server, and building 50-candidate bodies on the fly took CPU the server then lacked.
    bodies = [json.dumps(scenario.body(i)).encode() for i in range(n)]
    headers = {"content-type": "application/json"}
    # This process holds torch and pandas: a full collection of their objects pauses every
    # sender (167 ms measured with BentoML and Feast loaded too), counted as server latency.
    # Frozen, the collector skips them.
    gc.collect()
    gc.freeze()
    start = time.perf_counter() + 0.2
    lock = threading.Lock()
    latencies: list[float] = []
    errors: dict[str, int] = {}

    def one(i: int) -> None:
        due = start + i / scenario.rate
        time.sleep(max(0.0, due - time.perf_counter()))
        try:
            response = client.post(scenario.path, content=bodies[i], headers=headers)
            status = str(response.status_code)
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        took = (time.perf_counter() - due) * 1e3
        with lock:
            if status == "200":
                latencies.append(took)
            else:
                errors[status] = errors.get(status, 0) + 1

    with ThreadPoolExecutor(max_workers=64) as pool:
        list(pool.map(one, range(n)))
    return Outcome(latencies, errors, time.perf_counter() - start)


def forward_ms(forward: Callable[[np.ndarray], np.ndarray], x: np.ndarray, repeats=200) -> float:
    forward(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        forward(x)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON values (numpy scalars made plain, NaN made null)."""
    return json.loads(frame.to_json(orient="records"))


def context_rows(repo: Path, spec: DatasetSpec, n: int = 1_000) -> list[dict]:
    """Request-time values (context and candidate_context fields) of `n` real impressions."""
    fields = spec.request_fields
    if not fields:
        return [{}] * n
    impressions = pd.read_parquet(repo / "data" / IMPRESSIONS_FILE, columns=fields)
    return _records(impressions.sample(n, replace=True, random_state=3).reset_index(drop=True))


def request_frame(repo: Path, spec: DatasetSpec, n: int = 1_000) -> pd.DataFrame:
    """Raw /predict rows: real entities with their attributes as the store holds them, and the
    request-time values of real impressions."""
    parts = []
    for seed, entity in enumerate(FeastLayout(spec).entities, start=1):
        if entity.features:
            table = pd.read_parquet(repo / "data" / entity.snapshot_file)
            table = table.drop_duplicates(entity.key)[[entity.key, *entity.features]]
        else:  # a key without attributes: its ids alone
            table = pd.DataFrame({entity.key: entity_ids(repo, spec)[entity.name]})
        parts.append(table.sample(n, replace=True, random_state=seed).reset_index(drop=True))
    parts.append(pd.DataFrame(context_rows(repo, spec, n)))
    return pd.concat(parts, axis=1)[list(spec.fields)]


def _plain(values: Sequence) -> list:
    return [v.item() if isinstance(v, np.generic) else v for v in values]


def rank_body_maker(
    spec: DatasetSpec,
    ids: Mapping[str, Sequence],
    contexts: list[dict],
    tasks: list[str],
    candidates: int = 50,
) -> Callable[[int], dict]:
    """i -> a /rank body in `spec`'s names: request i's keys (each entity's ids cycled), an
    impression's context, `candidates` random candidate ids (each with an impression's
    candidate_context values), objectives cycled. `ids`: entity name -> ids with features."""
    rng = np.random.default_rng(0)
    keys = {e.key: _plain(ids[name]) for name, e in spec.request_entities.items()}
    pool = _plain(ids[spec.candidate])

    def rank_body(i: int) -> dict:
        chosen = rng.choice(len(pool), size=min(candidates, len(pool)), replace=False)
        context = contexts[i % len(contexts)]
        return {
            **{key: values[i % len(values)] for key, values in keys.items()},
            "context": {name: context[name] for name in spec.context},
            "candidates": [
                {
                    spec.candidate_entity.key: pool[c],
                    "weight": 1.0 + (j % 7),
                    "objective": tasks[j % len(tasks)],
                    **{
                        name: contexts[(i + j) % len(contexts)][name]
                        for name in spec.candidate_context
                    },
                }
                for j, c in enumerate(chosen.tolist())
            ],
        }

    return rank_body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--model-dir", required=True, help="the served model's folder")
    parser.add_argument("--feast-repo", required=True, help="the served Feast repo (ids)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    parser.add_argument("--max-requests", type=int, default=5_000, help="cap per scenario")
    parser.add_argument("--rank-rate", type=float, default=100.0)
    parser.add_argument("--predict-rate", type=float, default=100.0, help="1-row requests/s")
    parser.add_argument("--batch-rate", type=float, default=60.0, help="100-row requests/s")
    parser.add_argument(
        "--only", default="", help="comma-separated scenario names to run (default: all)"
    )
    add_json_argument(parser, "serving_bench")
    args = parser.parse_args()
    recording = Recording("serving_bench", args.json)

    repo = Path(args.feast_repo)
    predictor = Predictor.load(args.model_dir)
    spec = served_spec(predictor.schema, args.model_dir)
    torch.set_num_threads(1)  # as the server runs it (AITM_TORCH_THREADS)
    forward = model_forward(predictor)
    tasks = list(predictor.tasks)
    frame = request_frame(repo, spec)
    rows = _records(frame)
    rank_body = rank_body_maker(spec, entity_ids(repo, spec), context_rows(repo, spec), tasks)

    scenarios = [
        Scenario("predict 1 row", "/predict", args.predict_rate, 1,
                 lambda i: {"rows": [rows[i % len(rows)]]}),
        Scenario("predict 100 rows", "/predict", args.batch_rate, 100,
                 lambda i: {"rows": rows[(i * 100) % 900 : (i * 100) % 900 + 100]}),
        Scenario("rank 50 candidates", "/rank", args.rank_rate, 50, rank_body),
    ]  # fmt: skip
    if args.only:
        wanted = {name.strip() for name in args.only.split(",")}
        unknown = wanted - {s.name for s in scenarios}
        if unknown:
            parser.error(f"unknown scenarios {sorted(unknown)}: {[s.name for s in scenarios]}")
        scenarios = [s for s in scenarios if s.name in wanted]
    results = []
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    with httpx.Client(base_url=args.url, timeout=30, limits=limits) as client:
        if client.get("/readyz").status_code != 200:
            raise SystemExit(f"{args.url}/readyz is not 200: start the server first")
        for scenario in scenarios:
            for i in range(20):  # warm-up
                client.post(scenario.path, json=scenario.body(i))
            outcome = run(client, scenario, args.duration, args.max_requests)
            x = predictor.schema.encode(frame.head(scenario.rows))
            lat = np.asarray(outcome.latencies_ms or [np.nan])
            result = {
                "scenario": scenario.name,
                "rate_req_s": scenario.rate,
                "requests_ok": len(outcome.latencies_ms),
                "errors": outcome.errors,
                "throughput_req_s": len(outcome.latencies_ms) / outcome.seconds,
                "throughput_rows_s": len(outcome.latencies_ms) * scenario.rows / outcome.seconds,
                "p50_ms": float(np.percentile(lat, 50)),
                "p99_ms": float(np.percentile(lat, 99)),
                "p99_9_ms": float(np.percentile(lat, 99.9)),
                "forward_ms": forward_ms(forward, x),
            }
            result["overhead_ratio"] = result["p50_ms"] / result["forward_ms"]
            results.append(result)
            print(
                f"{scenario.name:>20}: {result['requests_ok']} ok {outcome.errors or ''} at "
                f"{scenario.rate:g} req/s -> {result['throughput_req_s']:.0f} req/s, "
                f"{result['throughput_rows_s']:,.0f} rows/s; p50 {result['p50_ms']:.1f} ms, "
                f"p99 {result['p99_ms']:.1f} ms, p99.9 {result['p99_9_ms']:.1f} ms; in-process "
                f"forward {result['forward_ms']:.2f} ms (x{result['overhead_ratio']:.1f})"
            )
    settings = {"url": args.url, "duration_s": args.duration, "max_requests": args.max_requests}
    recording.write({"settings": settings, **{r.pop("scenario"): r for r in results}})


if __name__ == "__main__":
    main()
