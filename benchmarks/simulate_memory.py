"""Funnel simulation at scale: wall time and peak memory (default 10 million rows).

python -m benchmarks.simulate_memory [--rows 10000000] [--out DIR] [--json PATH]

Prints the figures and writes them as a record (benchmarks/record.py).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

from aitm.simulator import SimulationConfig, simulate
from benchmarks.record import Recording, add_json_argument


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--out", type=Path, default=None, help="keep the data here")
    add_json_argument(parser, "simulate_memory")
    args = parser.parse_args()
    recording = Recording("simulate_memory", args.json)
    out = args.out or Path(tempfile.mkdtemp(prefix="aitm-sim-"))
    start = time.perf_counter()
    summary = simulate(SimulationConfig(rows=args.rows), out)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size_mb = sum(p.stat().st_size for p in out.rglob("*.parquet")) / 2**20
    figures = {
        "rows": args.rows,
        "seconds": round(seconds, 1),
        "rows_per_second": round(args.rows / seconds),
        "peak_rss_mb": round(peak_mb),
        "parquet_mb": round(size_mb),
        "positive_rate_train": summary["positive_rate"]["train"],
        "oracle_auc_test": summary["oracle_auc"]["test"],
        "machine": f"{platform.machine()}, {resource.getpagesize()} B pages",
    }
    print(json.dumps(figures, indent=2))
    recording.write(figures)
    if args.out is None:
        shutil.rmtree(out)


if __name__ == "__main__":
    main()
