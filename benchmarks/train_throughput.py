"""AITM training throughput and peak memory on a simulated funnel (default 2 million rows).

    python benchmarks/train_throughput.py [--rows 2000000] [--epochs 2] [--threads N]
    python benchmarks/train_throughput.py --processes 2 --threads 1   # DDP, one core each

Prints samples per second for every epoch (not just the first: denormals and allocator
behaviour show up later), the validation AUC, the peak resident memory of each process, and
how fast the shared host was just before and after (`matmul_probe_ms`).
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


def matmul_probe_ms(repeats: int = 200) -> float:
    """How fast the host is right now: median ms of one (4, 2000, 128) x (4, 128, 64) product,
    a tower layer's shape. On a shared VM the same code runs at very different speeds from one
    minute to the next (on this project's 2-core machine: 0.55 ms quiet, 0.93 to 1.34 ms busy,
    nothing else of ours running); printed before and after training to read the figure by."""
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
    args = parser.parse_args()
    data = args.data
    if data is None:
        data = Path(tempfile.mkdtemp(prefix="aitm-bench-"))
        simulate(SimulationConfig(rows=args.rows), data)
    if args.processes > 1 and "WORLD_SIZE" not in os.environ:
        torchrun = Path(sys.executable).with_name("torchrun")
        command = [str(torchrun), "--standalone", f"--nproc_per_node={args.processes}"]
        forwarded = ["--epochs", str(args.epochs), "--threads", str(args.threads)]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        sys.exit(subprocess.call([*command, __file__, *forwarded, "--data", str(data)], env=env))
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
    print(
        json.dumps(
            {
                "train_rows": len(train_frame),
                "processes": int(os.environ.get("WORLD_SIZE", "1")),
                "threads_per_process": torch.get_num_threads(),
                "cpus": os.cpu_count(),
                "torch": torch.__version__,
                "samples_per_second_by_epoch": [
                    round(e.samples_per_second) for e in result.history
                ],
                "samples_per_second": round(result.samples_per_second),
                "epoch_seconds": [round(e.seconds, 1) for e in result.history],
                "wall_seconds_with_validation": round(wall, 1),
                "host_probe_ms_before_after": [round(probe_before, 3), round(probe_after, 3)],
                "val_auc_by_epoch": [e.val_auc for e in result.history],
                "peak_rss_mb_rank0": round(
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
