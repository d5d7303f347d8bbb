"""One JSON record per benchmark run: its figures, the command, the date, the host, the commit.

    recording = Recording("simulate_memory", args.json)   # probes the host at the start
    ...                                                  # the benchmark's own work
    recording.write({"seconds": 12.3, ...})              # probes again, writes the record

The record goes to `benchmarks/results/<benchmark>.json` unless `--json PATH` says otherwise;
`benchmarks/report.py` renders those files into docs/benchmarks.md. The host probe (load average
and a fixed piece of work timed before and after) says how busy the machine was, so a figure
from a loaded host is read as one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# A command to record in place of this process's own (a benchmark that re-runs itself under
# torchrun sets it, so the record names the command a person typed).
COMMAND_ENV = "AITM_BENCH_COMMAND"
PROBE_LOOPS = 2_000_000  # about 70 ms of pure Python on a quiet core; three runs, 0.2 s


def add_json_argument(parser: argparse.ArgumentParser, benchmark: str) -> None:
    default = RESULTS / f"{benchmark}.json"
    parser.add_argument(
        "--json",
        type=Path,
        default=default,
        help=f"where the run's record goes (default: {default.relative_to(ROOT)})",
    )


def command_line() -> str:
    """The command as typed: the interpreter shown as `python`, then its arguments."""
    if os.environ.get(COMMAND_ENV):
        return os.environ[COMMAND_ENV]
    return shlex.join(["python", *sys.orig_argv[1:]])


def probe_ms() -> float:
    """Median of three timings of a fixed pure-Python loop: how fast the host is right now."""
    times = []
    for _ in range(3):
        start = time.perf_counter()
        total = 0
        for i in range(PROBE_LOOPS):
            total += i * i
        times.append(time.perf_counter() - start)
    return round(sorted(times)[1] * 1e3, 1)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def git_state() -> tuple[str | None, bool | None]:
    """HEAD's commit and whether tracked files differ from it (None, None outside a checkout)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    try:
        return git("rev-parse", "HEAD"), bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError):
        return None, None


class Recording:
    """Probe the host now; `write(figures)` probes again and writes the record."""

    def __init__(self, benchmark: str, path: Path | None = None) -> None:
        self.benchmark = benchmark
        self.path = Path(path) if path is not None else RESULTS / f"{benchmark}.json"
        self.command = command_line()
        self.date = datetime.now(UTC).isoformat(timespec="seconds")
        self.load_start = _load()
        self.probe_start = probe_ms()

    def record(self, figures: dict) -> dict:
        commit, dirty = git_state()
        return {
            "benchmark": self.benchmark,
            "figures": figures,
            "command": self.command,
            "date": self.date,
            "host": {
                "cpu_count": os.cpu_count(),
                "cpu_model": cpu_model(),
                "python": platform.python_version(),
                "load_average_start": self.load_start,
                "load_average_end": _load(),
                "probe_ms_start": self.probe_start,
                "probe_ms_end": probe_ms(),
                "probe": f"median of 3 pure-Python loops of {PROBE_LOOPS:,} multiply-adds",
            },
            "git_commit": commit,
            "git_dirty": dirty,
        }

    def write(self, figures: dict) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = self.record(figures)
        self.path.write_text(json.dumps(record, indent=2, default=_plain) + "\n")
        print(f"record: {self.path}", file=sys.stderr)
        return self.path


def _plain(value):
    """numpy scalars and paths as JSON values."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)
