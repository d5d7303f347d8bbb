"""AITM training throughput and peak memory on a simulated funnel (default 2 million rows).

    python -m benchmarks.train_throughput [--rows 2000000] [--epochs 2] [--threads N]
    python -m benchmarks.train_throughput --processes 2 --threads 1   # DDP, one core each

Prints samples per second for every epoch (not just the first: denormals and allocator
behaviour show up later), the validation AUC, the peak resident memory of each process, and
how fast the shared host was just before and after (`matmul_probe_ms`), and writes them as a
record (benchmarks/record.py; `--json PATH` to put it elsewhere).
With --processes N the script simulates once, then runs itself under torchrun: N data-parallel
processes (DDP on gloo) that split every batch, with --threads intra-op threads each.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from aitm.config import Config, TrainConfig
from aitm.data import read_table
from aitm.simulator import SimulationConfig, simulate
from aitm.training import train
from benchmarks.record import COMMAND_ENV, Recording, add_json_argument, command_line


def matmul_probe_ms(repeats: int = 200) -> float:
    """How fast the host is right now: median ms of one (4, 2000, 128) x (4, 128, 64) product,
    a tower layer's shape. A shared VM runs the same code at very different speeds from one
    minute to the next, so it is printed before and after training to read the figure by."""
    a, b = torch.randn(4, 2000, 128), torch.randn(4, 128, 64)
    times = []
    for _ in range(10 + repeats):
        start = time.perf_counter()
        torch.bmm(a, b)
        times.append(time.perf_counter() - start)
    return float(np.median(times[10:]) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--processes", type=int, default=1, help="DDP processes (torchrun)")
    parser.add_argument("--data", type=Path, default=None, help="reuse a simulated folder")
    add_json_argument(parser, "train_throughput")
    args = parser.parse_args()
    recording = Recording("train_throughput", args.json)
    data = args.data
    if data is None:
        data = Path(tempfile.mkdtemp(prefix="aitm-bench-"))
        simulate(SimulationConfig(rows=args.rows), data)
    if args.processes > 1 and "WORLD_SIZE" not in os.environ:
        torchrun = Path(sys.executable).with_name("torchrun")
        command = [str(torchrun), "--standalone", f"--nproc_per_node={args.processes}", "-m"]
        forwarded = ["--epochs", str(args.epochs), "--threads", str(args.threads)]
        forwarded += ["--data", str(data), "--json", str(args.json)]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), COMMAND_ENV: command_line()}
        sys.exit(subprocess.call([*command, __spec__.name, *forwarded], env=env))
    torch.set_num_threads(args.threads)
    train_frame, val_frame = read_table(data / "train"), read_table(data / "val")
    config = Config(train=TrainConfig(max_epochs=args.epochs, patience=args.epochs, progress=False))
    probe_before = matmul_probe_ms()
    start = time.perf_counter()
    result = train(config, train_frame, val_frame)
    wall = time.perf_counter() - start
    probe_after = matmul_probe_ms()
    if int(os.environ.get("RANK", "0")) != 0:
        return
    figures = {
        "train_rows": len(train_frame),
        "processes": int(os.environ.get("WORLD_SIZE", "1")),
        "threads_per_process": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "samples_per_second_by_epoch": [round(e.samples_per_second) for e in result.history],
        "samples_per_second": round(result.samples_per_second),
        "epoch_seconds": [round(e.seconds, 1) for e in result.history],
        "wall_seconds_with_validation": round(wall, 1),
        "host_probe_ms_before_after": [round(probe_before, 3), round(probe_after, 3)],
        "val_auc_by_epoch": [e.val_auc for e in result.history],
        "peak_rss_mb_rank0": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(json.dumps(figures, indent=2))
    recording.write(figures)


if __name__ == "__main__":
    main()
