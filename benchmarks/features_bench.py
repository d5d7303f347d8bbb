"""Feature layer benchmark: online lookup latency and offline retrieval throughput.

    python -m benchmarks.features_bench --rows 1000000

Simulates `--rows` impressions, builds and applies a Feast repo in a temporary folder, then
prints: offline retrieval (get_historical_features by the aitm_v1 service, merged back onto
every impression) rows/s and peak memory; online lookup latency p50/p99 for 1 user + N ads on
SQLite and on Redis (a local redis-server it starts and stops; skipped if absent), for the
serving path (`OnlineFeatureReader`) and for Feast's `get_online_features`, interleaved.
The same figures are written as a record (benchmarks/record.py; `--json PATH`).

    # again, online lookups only, on the repo an earlier `--keep DIR` run left:
    python -m benchmarks.features_bench --keep DIR --online-only
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

from aitm.dataset import load_spec
from aitm.simulator import SimulationConfig, simulate
from benchmarks.record import Recording, add_json_argument
from features.build import build_sources
from features.fields import FeastLayout
from features.online import OnlineFeatureReader, reference_columns
from features.retrieval import training_frame
from features.store import REDIS_ENV, apply, materialize, open_store

ROOT = Path(__file__).resolve().parents[1]
SPEC = load_spec()  # the simulator's spec (datasets/simulated.yaml)
LAYOUT = FeastLayout(SPEC)
USER, AD = LAYOUT.entity("user"), LAYOUT.entity("ad")


class PeakRss:
    """Samples this process's resident memory in a thread; `peak` in bytes."""

    def __init__(self, every_s: float = 0.02) -> None:
        self.process = psutil.Process()
        self.every_s = every_s
        self.peak = self.baseline = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.every_s)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def _window(repo: Path) -> tuple[pd.Timestamp, pd.Timestamp]:
    ts = LAYOUT.timestamp
    times = pd.concat(
        [pd.read_parquet(repo / "data" / e.snapshot_file, columns=[ts]) for e in LAYOUT.stored]
    )[ts]
    return times.min() - pd.Timedelta(seconds=1), times.max() + pd.Timedelta(days=1)


def _latency(
    store, repo: Path, n_ads: int, lookups: int, seed: int = 0
) -> dict[str, tuple[float, ...]]:
    """Wall p50, p99 and this thread's CPU p50, p99 in ms of the reader (the serving path) and
    of Feast's get_online_features (the reference), interleaved on the same random lookups so
    both see the same load. On a loaded machine the wall p99 is mostly time spent preempted;
    the CPU figures leave that (and the store server's own time) out."""
    rng = np.random.default_rng(seed)
    users = pd.read_parquet(repo / "data" / USER.snapshot_file, columns=[USER.key])[USER.key]
    ads = pd.read_parquet(repo / "data" / AD.snapshot_file, columns=[AD.key])[AD.key].unique()
    users = users.unique()
    context = {"position": 1, "hour": 12, "channel": "feed"}
    reader = OnlineFeatureReader(store, SPEC.feature_service, SPEC)  # resolved once, as serving
    service = store.get_feature_service(SPEC.feature_service)
    paths = {
        "reader": reader.columns,
        "get_online_features": partial(reference_columns, store, service=service, spec=SPEC),
    }
    for _ in range(20):  # warm-up: registry load, connections
        for lookup in paths.values():
            lookup({USER.key: int(users[0])}, ads[:n_ads].tolist(), context)
    timings: dict[str, list[float]] = {name: [] for name in paths}
    cpu: dict[str, list[float]] = {name: [] for name in paths}
    for i in range(lookups):
        user = {USER.key: int(rng.choice(users))}
        candidates = rng.choice(ads, size=min(n_ads, len(ads)), replace=False).tolist()
        order = list(paths) if i % 2 == 0 else list(paths)[::-1]
        for name in order:
            start, start_cpu = time.perf_counter(), time.thread_time()
            paths[name](user, candidates, context)
            timings[name].append(time.perf_counter() - start)
            cpu[name].append(time.thread_time() - start_cpu)
    out = {}
    for name in paths:
        wall, used = np.asarray(timings[name]) * 1e3, np.asarray(cpu[name]) * 1e3
        out[name] = tuple(float(np.percentile(a, q)) for a in (wall, used) for q in (50, 99))
    return out


def _report(store_name: str, n_ads: int, figures: dict[str, tuple[float, ...]]) -> dict:
    """Print the lookup latencies; return them as record figures, `<store> <path>` -> ms."""
    out = {}
    for name, (p50, p99, cpu50, cpu99) in figures.items():
        print(
            f"online {store_name}, 1 user + {n_ads} ads, {name}: p50 {p50:.2f} ms, "
            f"p99 {p99:.2f} ms (CPU p50 {cpu50:.2f} ms, p99 {cpu99:.2f} ms)"
        )
        values = {"p50_ms": p50, "p99_ms": p99, "cpu_p50_ms": cpu50, "cpu_p99_ms": cpu99}
        out[f"{store_name} {name}"] = {k: round(v, 2) for k, v in values.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="impressions to simulate")
    parser.add_argument("--ads", type=int, default=50, help="candidate ads per lookup")
    parser.add_argument("--lookups", type=int, default=500, help="timed online lookups")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep")
    parser.add_argument("--skip-redis", action="store_true")
    parser.add_argument(
        "--online-only",
        action="store_true",
        help="with --keep of an earlier run: only the online lookups (SQLite as it was left)",
    )
    add_json_argument(parser, "features_bench")
    args = parser.parse_args()
    recording = Recording("features_bench", args.json)
    figures: dict = {"rows": None if args.online_only else args.rows, "ads": args.ads}
    figures["lookups"] = args.lookups
    online = figures["online"] = {}  # filled last: the record's table of lookup latencies

    work = args.keep or Path(tempfile.mkdtemp(prefix="features-bench-"))
    sim, repo = work / "sim", work / "feature_repo"
    if args.online_only:
        if args.keep is None or not (repo / "data" / "online_store.db").exists():
            parser.error("--online-only needs --keep DIR of an earlier run")
        store = open_store(repo, "sqlite")
    else:
        store = _build_and_retrieve(args, sim, repo, figures)
    start, end = _window(repo)
    if not args.online_only:
        started = time.perf_counter()
        materialize(store, start, end)
        figures["materialize_sqlite_s"] = round(time.perf_counter() - started, 1)
        print(f"materialize SQLite: {figures['materialize_sqlite_s']:.1f} s")
    online |= _report("SQLite", args.ads, _latency(store, repo, args.ads, args.lookups))

    if not args.skip_redis and shutil.which("redis-server"):
        import os

        from tests.support.redis_server import local_redis

        with local_redis() as connection:
            os.environ[REDIS_ENV] = connection
            apply(repo, "redis")
            redis_store = open_store(repo, "redis")
            started = time.perf_counter()
            materialize(redis_store, start, end)
            figures["materialize_redis_s"] = round(time.perf_counter() - started, 1)
            print(f"materialize Redis: {figures['materialize_redis_s']:.1f} s")
            latency = _latency(redis_store, repo, args.ads, args.lookups)
            online |= _report("Redis", args.ads, latency)
    elif not args.skip_redis:
        print("online Redis: skipped, redis-server is not on PATH")
    recording.write(figures)
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


def _build_and_retrieve(args: argparse.Namespace, sim: Path, repo: Path, figures: dict):
    """Simulate, build the sources, apply, and time offline retrieval (into `figures`); the
    SQLite store."""
    n_users = max(1_000, min(500_000, args.rows // 2))
    config = SimulationConfig(
        rows=args.rows, days=args.days, val_days=1, test_days=1, n_users=n_users, n_ads=2_000
    )
    started = time.perf_counter()
    simulate(config, sim)
    print(f"simulate {args.rows:,} rows, {n_users:,} users: {time.perf_counter() - started:.1f} s")
    if repo.exists():
        shutil.rmtree(repo)
    shutil.copytree(ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("data"))
    started = time.perf_counter()
    summary = build_sources(SPEC, repo, sim)
    print(f"build sources: {time.perf_counter() - started:.1f} s ({summary.describe()})")
    started = time.perf_counter()
    apply(repo, "sqlite")
    print(f"feast apply (subprocess): {time.perf_counter() - started:.1f} s")

    store = open_store(repo, "sqlite")
    store.get_feature_service(SPEC.feature_service)
    with PeakRss() as memory:
        started = time.perf_counter()
        result = training_frame(store, repo, summary.start, summary.end + pd.Timedelta(seconds=1))
        seconds = time.perf_counter() - started
    rows = len(result)
    figures["offline_retrieval_rows"] = rows
    figures["offline_retrieval_rows_per_s"] = round(rows / seconds)
    figures["offline_retrieval_peak_rss_mib"] = round(memory.peak / 2**20)
    figures["offline_retrieval_added_rss_mib"] = round((memory.peak - memory.baseline) / 2**20)
    print(
        f"offline retrieval (file store): {rows:,} rows in {seconds:.1f} s = "
        f"{rows / seconds:,.0f} rows/s; peak RSS {memory.peak / 2**20:,.0f} MiB "
        f"(+{(memory.peak - memory.baseline) / 2**20:,.0f} MiB over {memory.baseline / 2**20:,.0f})"
    )
    del result
    return store


if __name__ == "__main__":
    main()
