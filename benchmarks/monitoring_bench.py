"""Time and peak memory of the monitoring job on N logged predictions (default 1 million).

Synthetic log files are written straight from the simulator (no service): every impression a
JSON-lines record as the service logs it, with the true probabilities as predictions and all
labels arrived; the reference is 100k impressions of the same world. The job then runs in a
fresh subprocess (so its peak RSS is its own): read the window, join labels, the Evidently
report with every test, report.html, summary.json.

    python -m benchmarks.monitoring_bench --rows 1000000 --out artifacts/monitoring-bench

Prints the figures and writes them as a record (benchmarks/record.py; `--json PATH`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.record import Recording, add_json_argument

JOB = """
import json, resource, sys, time
from pathlib import Path
start = time.perf_counter()
from monitoring.job import JobPaths, run_job
from monitoring.logs import Window
out = Path(sys.argv[1])
window = Window.parse(sys.argv[2], sys.argv[3])
imported = time.perf_counter()
result = run_job(JobPaths(out / "logs", out / "labels", out / "reference", out / "job"), window)
done = time.perf_counter()
print(json.dumps({"rows": result.rows, "labelled": result.labelled_rows,
                  "import_s": imported - start, "job_s": done - imported,
                  "failed": [t.name for t in result.failed],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def generate(rows: int, out: Path) -> tuple[str, str]:
    import pandas as pd

    from aitm.simulator import SimulationConfig
    from monitoring.synthetic import (
        Traffic,
        simulator_spec,
        true_probabilities,
        write_log_files,
        write_true_probability_reference,
    )

    config = SimulationConfig(rows=rows)  # the default world of `make run`
    traffic = Traffic(config, seed=11)
    tasks = list(simulator_spec().tasks)
    reference = traffic.sample(100_000, 27)
    write_true_probability_reference(out / "reference", reference, tasks)
    start = pd.Timestamp(config.start) + pd.Timedelta(days=28)
    done = 0
    while done < rows:  # in chunks: the generator's own memory stays small
        n = min(250_000, rows - done)
        frame = traffic.sample(n, 28 + done / rows)
        write_log_files(frame, true_probabilities(frame, tasks), tasks, out / "logs",
                        out / "labels", seed=done, rows_per_file=n,
                        name=f"{done // 250_000:05d}")  # fmt: skip
        done += n
    return start.isoformat(), (start + pd.Timedelta(days=2)).isoformat()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path("artifacts/monitoring-bench"))
    add_json_argument(parser, "monitoring_bench")
    args = parser.parse_args()
    recording = Recording("monitoring_bench", args.json)
    t0 = time.perf_counter()
    start, end = generate(args.rows, args.out)
    generated = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in (args.out / "logs").glob("*.jsonl")) / 2**20
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", JOB, str(args.out), start, end],
                          capture_output=True, text=True, env=env)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(done.stderr[-4000:])
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures |= {
        "generate_s": round(generated, 1),
        "log_mb": round(size, 1),
        "bench_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(json.dumps(figures, indent=2))
    recording.write(figures)


if __name__ == "__main__":
    main()
