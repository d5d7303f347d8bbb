"""Before a run: the Feast repo built from a dataset spec, and the run's windows.

A bad spec, config or table stops here, before any work, and leaves the previous repo (and so
the promoted model's features) as they were: the new repo is built beside the old one and
swapped in only once it has built.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from aitm.dataset import DatasetSpec

FEATURE_REPO = Path(__file__).resolve().parents[1] / "feature_repo"  # the declarations


def build_repo(spec: DatasetSpec, data: Path, work: Path, config_yaml: str = ""):
    """work/feature_repo: the declarations and the spec's sources; returns (repo, BuiltSources).
    Raises DataError, SpecError or ValueError on bad input, with nothing replaced."""
    from features.build import build_sources
    from workflow.params import parse_config

    parse_config(config_yaml)  # a bad config, too, stops before any work
    repo, staging = work / "feature_repo", work / "feature_repo.new"
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(FEATURE_REPO, staging, ignore=shutil.ignore_patterns("data", "__pycache__"))
    built = build_sources(spec, staging, data)
    if repo.exists():
        shutil.rmtree(repo)
    staging.rename(repo)
    return repo, built


def first_snapshot(repo: Path) -> pd.Timestamp:
    """One second before the earliest row of the repo's Feast sources (materialize's start)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from features.build import DATA_DIR

    earliest = []
    for path in (repo / DATA_DIR).glob("*.parquet"):  # only the time columns are read
        times = [f.name for f in pq.read_schema(path) if pa.types.is_timestamp(f.type)]
        for column in pq.read_table(path, columns=times).columns:
            earliest.append(pd.Timestamp(column.to_pandas().min()))
    start = min(earliest)
    start = start.tz_localize("UTC") if start.tzinfo is None else start
    return start - pd.Timedelta(seconds=1)


def _iso(train_start, train_end, eval_start, eval_end) -> dict[str, str]:
    times = dict(train_start=train_start, train_end=train_end, eval_start=eval_start,
                 eval_end=eval_end)  # fmt: skip
    return {k: v.isoformat() for k, v in times.items()}


def windows_from_table(
    impressions: Path, timestamp: str, fraction: float, test_part: Path | None
) -> dict[str, str]:
    """Windows from a table's own time range: the evaluation window is its test/ part where it
    has one, else the latest `fraction` of the time range."""
    times = pd.to_datetime(pd.read_parquet(impressions, columns=[timestamp])[timestamp], utc=True)
    first, last = times.min(), times.max()
    if test_part is not None:
        from aitm.data import read_table

        split = pd.to_datetime(read_table(test_part, columns=[timestamp])[timestamp], utc=True)
        split = split.min()
    else:
        split = first + (last - first) * (1.0 - fraction)
    end = last + pd.Timedelta(seconds=1)
    if not first < split < end:
        raise ValueError(f"cannot hold out a window of the time range {first} to {last}")
    return _iso(first, split, split, end)


def windows_of(oracle: dict[str, Any]) -> dict[str, str]:
    """Training window = the simulation's train+val days; evaluation window = its test days."""
    cfg = oracle["config"]
    start = pd.Timestamp(cfg["start"])
    split = start + pd.Timedelta(days=cfg["days"] - cfg["test_days"])
    return _iso(start, split, split, start + pd.Timedelta(days=cfg["days"]))


def scheduled_windows(schedule_time: str, train_days: int, eval_days: int) -> dict[str, str]:
    """The windows of a recurring run: the evaluation window is the `eval_days` whole UTC days
    before the run's scheduled time, the training window the `train_days` before that. A run
    scheduled at any time of a day gets the same windows, and the next day's run moves both on."""
    if not schedule_time.strip():
        raise ValueError("no windows given and no schedule time to derive them from: give all "
                         "four windows (a local run has no schedule time)")  # fmt: skip
    if train_days < 1 or eval_days < 1:
        raise ValueError(f"window lengths must be at least one day, got {train_days}, {eval_days}")
    try:
        when = pd.Timestamp(schedule_time)
    except ValueError as exc:
        raise ValueError(f"the schedule time must be a timestamp, got {schedule_time!r}") from exc
    when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
    end = when.floor("D")
    split = end - pd.Timedelta(days=eval_days)
    return _iso(split - pd.Timedelta(days=train_days), split, split, end)


def pipeline_windows(
    explicit: dict[str, str], schedule_time: str, train_days: int, eval_days: int
) -> dict[str, str]:
    """The pipeline's windows: all four explicit ones as given (a local run, a backfill), none
    given: derived from the scheduled time (`scheduled_windows`). Some but not all: an error."""
    if all(explicit.values()):
        return dict(explicit)
    if any(explicit.values()):
        raise ValueError(f"give all four windows or none, got {explicit}")
    return scheduled_windows(schedule_time, train_days, eval_days)


def run_windows(
    spec: DatasetSpec, repo: Path, data: Path, snapshot: tuple[str, str], explicit: dict
) -> dict[str, str]:
    """The windows of a run: all four given, else the simulation's (its oracle.json), else one
    snapshot (no timestamp: the fetch step splits at random), else the table's time range."""
    import json

    from aitm.data import split_paths
    from features.build import DATA_DIR, IMPRESSIONS_FILE

    if all(explicit.values()):
        return dict(explicit)
    if any(explicit.values()):
        raise ValueError(
            "give all four of --train-start/--train-end/--eval-start/--eval-end, or none"
        )
    oracle_file = data / "oracle.json"
    if oracle_file.is_file():
        return windows_of(json.loads(oracle_file.read_text()))
    if spec.timestamp is None:
        return dict(train_start=snapshot[0], train_end=snapshot[1],
                    eval_start=snapshot[1], eval_end=snapshot[1])  # fmt: skip
    impressions = repo / DATA_DIR / IMPRESSIONS_FILE
    test_part = split_paths(data).get("test")
    return windows_from_table(impressions, spec.timestamp, spec.eval_fraction, test_part)
