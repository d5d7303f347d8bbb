"""Simulated traffic for the monitoring layer: impressions from the simulator's world, with its
drift knobs, as service request rows, label records and (for benchmarks) whole log files.

The world is the one a model was trained on (same seed and sizes: read back from the simulated
folder's oracle.json), so a clean period looks like the training data. Drift is switched on for
sampling only: the world's calibrated intercepts stay those of the undrifted world, so the clean
period's rates match the training data exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aitm.config import SIMULATED_FIELDS
from aitm.schema import build_schema
from aitm.simulator import TRUE_PREFIX, DriftConfig, FunnelWorld, SimulationConfig
from monitoring.reference import write_reference


def world_config(sim_dir: str | Path) -> SimulationConfig:
    """The simulation config a simulated folder was written with (its oracle.json)."""
    raw = json.loads((Path(sim_dir) / "oracle.json").read_text())["config"]
    return SimulationConfig.model_validate({**raw, "drift": None})


class Traffic:
    """Impressions of one simulated world, clean or drifted, day by day."""

    def __init__(self, config: SimulationConfig, seed: int = 1_000) -> None:
        self.config = config.model_copy(update={"drift": None})
        self.world = FunnelWorld(self.config)  # intercepts calibrated without drift
        self.rng = np.random.default_rng(seed)

    def sample(self, rows: int, day: float, drift: DriftConfig | None = None) -> pd.DataFrame:
        """`rows` impressions spread over simulated day `day` (its hourly traffic curve).

        A drift takes effect from its start_day; pass start_day <= day to drift this sample.
        """
        self.world.config = self.config.model_copy(update={"drift": drift})
        try:
            frac = np.sort(self.rng.uniform(0.0, 1.0, rows))
            cdf = self.world.day_fraction_cdf
            warped = np.interp(frac, cdf, np.linspace(0.0, 1.0, len(cdf)))
            seconds = (day + warped) * 86_400.0
            return self.world.sample(self.rng, seconds)
        finally:
            self.world.config = self.config


def request_rows(frame: pd.DataFrame, fields=SIMULATED_FIELDS) -> list[dict[str, Any]]:
    """/predict rows: raw field values as JSON types (ints stay ints, categories strings)."""
    columns = {}
    for name in fields:
        column = frame[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            columns[name] = column.astype(str).tolist()
        else:
            columns[name] = [int(v) for v in column.to_numpy()]
    return [dict(zip(columns, values)) for values in zip(*columns.values())]


def label_records(
    frame: pd.DataFrame, keys: list[tuple[str, int]], tasks: list[str], labelled_at: str
) -> list[dict[str, Any]]:
    """One label record per impression, keyed by the (request_id, row) it was served under."""
    labels = frame[tasks].to_numpy()
    return [
        {"request_id": rid, "row": row, "labelled_at": labelled_at,
         **{t: int(v) for t, v in zip(tasks, values)}}
        for (rid, row), values in zip(keys, labels)
    ]  # fmt: skip


def write_log_files(
    frame: pd.DataFrame,
    probs: np.ndarray,
    tasks: list[str],
    log_dir: str | Path,
    labels_dir: str | Path | None,
    *,
    model_version: str = "aitm:synthetic",
    label_share: float = 1.0,
    seed: int = 0,
    rows_per_file: int = 250_000,
    name: str = "synthetic",
) -> int:
    """Log files as the service writes them (one record per impression, timestamped at the
    impression's simulated time) and label files for a share of them. For benchmarks."""
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    rows = request_rows(frame)
    stamps = frame["event_timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00").tolist()
    ids = [f"{name}-{i:09d}" for i in range(len(frame))]
    for part, lo in enumerate(range(0, len(frame), rows_per_file)):
        hi = min(lo + rows_per_file, len(frame))
        with (log_dir / f"predictions-{name}-{part:05d}.jsonl").open("w") as out:
            for i in range(lo, hi):
                record = {
                    "request_id": ids[i], "row": 0, "timestamp": stamps[i],
                    "model_version": model_version, "features": rows[i],
                    "probabilities": dict(zip(tasks, map(float, probs[i]))), "endpoint": "predict",
                }  # fmt: skip
                out.write(json.dumps(record) + "\n")
    if labels_dir is not None:
        keep = np.random.default_rng(seed).random(len(frame)) < label_share
        chosen = np.flatnonzero(keep)
        records = label_records(frame.iloc[chosen], [(ids[i], 0) for i in chosen], tasks, "")
        Path(labels_dir).mkdir(parents=True, exist_ok=True)
        with (Path(labels_dir) / f"labels-{name}.jsonl").open("w") as out:
            out.writelines(json.dumps(r) + "\n" for r in records)
    return len(frame)


def true_probabilities(frame: pd.DataFrame, tasks: list[str]) -> np.ndarray:
    """The simulator's true end-to-end probabilities: a perfectly calibrated 'model'."""
    return frame[[TRUE_PREFIX + t for t in tasks]].to_numpy(dtype=np.float64)


def write_true_probability_reference(out: str | Path, reference: pd.DataFrame, tasks: list[str]):
    """A reference window scored by the true probabilities, for tests and benchmarks that need
    no trained model."""
    schema = build_schema(reference, list(SIMULATED_FIELDS), tasks)
    write_reference(out, reference, true_probabilities(reference, tasks), schema,
                    {"model_tag": "aitm:true-probabilities"})  # fmt: skip
