"""Traffic replay: rows sent to the running service's /predict, their labels written later.

Two sources, one output (the service's prediction log, label files keyed by the request id the
service returned and the row's position, replay.json with each period's wall-clock window: the
monitoring job's input):

- the simulator (`--world`): a clean period (the world the model was trained on), then a
  drifted one: a share of traffic from a new user cohort (`--user-shift`) and one step's
  conversion rate multiplied by `--rate-factor`, the simulator's drift knobs.

      python -m monitoring replay --url http://127.0.0.1:3000 --world data/sim \
          --clean-rows 20000 --drift-rows 20000 --labels-dir artifacts/labels --out replay.json

- a dataset spec (`--dataset`): rows of the spec's table (one split of a train/val/test
  folder, `--split`, default test), the fields the spec names, labels for the spec's tasks.

      python -m monitoring replay --url http://127.0.0.1:3000 --dataset datasets/ali_ccp.yaml \
          --labels-dir artifacts/labels --out replay.json

Labels are written after every row was sent (after `--label-delay` seconds), for a
`--label-share` of rows: the rest never arrive. The labels are those of the tasks the served
model predicts (it names them in every answer); a spec whose tasks differ is refused.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aitm.dataset import DatasetSpec, SpecError
from aitm.simulator import DriftConfig
from monitoring.logs import LabelWriter
from monitoring.synthetic import (
    Traffic,
    label_records,
    simulator_spec,
    spec_rows,
    world_config,
)

TABLE_PERIOD = "table"  # the period name of a spec replay


@dataclass(frozen=True)
class Period:
    name: str
    start: str  # wall clock, ISO UTC: the window of the service's log timestamps
    end: str
    rows: int
    requests: int
    day: float | None  # simulated day the impressions were drawn from (None: a table's rows)
    drift: dict | None


@dataclass
class Sent:
    """What one period sent: its rows (fields and labels), the (request_id, row) of each, and
    the tasks the served model answered with."""

    frame: pd.DataFrame
    keys: list[tuple[str, int]]
    tasks: list[str]


def _now() -> str:
    return datetime.now(UTC).isoformat()


def send_rows(
    client, payload: Sequence[dict[str, Any]], batch: int, expect: Sequence[str] | None = None
) -> tuple[list[tuple[str, int]], int, list[str]]:
    """POST the rows to /predict, `batch` per request; returns ((request_id, row) per row, the
    number of requests, the tasks the model answered with). With `expect` (a spec's tasks), a
    model answering with other tasks stops the replay at its first answer (SpecError)."""
    keys: list[tuple[str, int]] = []
    tasks: list[str] = []
    requests = 0
    for lo in range(0, len(payload), batch):
        chunk = list(payload[lo : lo + batch])
        response = client.post("/predict", json={"rows": chunk})
        if response.status_code != 200:
            raise RuntimeError(f"/predict answered {response.status_code}: {response.text[:300]}")
        body = response.json()
        tasks = list(body["tasks"])
        if expect is not None and tasks != list(expect):
            raise SpecError(f"the dataset's tasks {list(expect)} are not those of the served "
                            f"model {tasks}")  # fmt: skip
        keys += [(body["request_id"], i) for i in range(len(chunk))]
        requests += 1
    time.sleep(0.01)  # the last log timestamp falls strictly before the window's end
    return keys, requests, tasks


def send_period(client, traffic: Traffic, name: str, rows: int, day: float,
                drift: DriftConfig | None, batch: int):  # fmt: skip
    """Send one period of simulated impressions; returns (Period, Sent)."""
    frame = traffic.sample(rows, day, drift)
    payload = spec_rows(frame, simulator_spec())  # the simulator's names
    start = _now()
    keys, requests, tasks = send_rows(client, payload, batch)
    period = Period(name, start, _now(), rows, requests, day,
                    None if drift is None else drift.model_dump())  # fmt: skip
    return period, Sent(frame, keys, tasks)


def write_labels(labels_dir: str | Path, sent: list[Sent], share: float, seed: int) -> int:
    """Labels for a `share` of the sent rows (the others never arrive), one 0/1 value per task
    the model predicts. Rows whose table holds no label for some task are never labelled."""
    writer = LabelWriter(labels_dir)
    rng = np.random.default_rng(seed)
    written = 0
    for part in sent:
        missing = [t for t in part.tasks if t not in part.frame.columns]
        if missing:
            raise ValueError(f"the served model predicts {missing}, which the rows have no "
                             f"labels for (columns: {list(part.frame.columns)})")  # fmt: skip
        known = part.frame[part.tasks].notna().all(axis=1).to_numpy()
        keep = np.flatnonzero((rng.random(len(part.frame)) < share) & known)
        records = label_records(part.frame.iloc[keep], [part.keys[i] for i in keep], part.tasks,
                                _now())  # fmt: skip
        written += writer.write(records)
    return written


def labels_later(labels_dir: str | Path | None, sent: list[Sent], share: float, delay: float,
                 seed: int) -> int:  # fmt: skip
    """After `delay` seconds, the labels of the sent rows (`write_labels`); none without
    `labels_dir`. Returns how many were written."""
    if labels_dir is None:
        return 0
    time.sleep(delay)
    return write_labels(labels_dir, sent, share, seed)


def replay(
    url: str,
    world: str | Path,
    *,
    clean_rows: int,
    drift_rows: int,
    day: float,
    user_shift: float = 0.5,
    step: str | None = "approval",
    rate_factor: float = 0.4,
    labels_dir: str | Path | None = None,
    label_share: float = 1.0,
    label_delay: float = 0.0,
    batch: int = 500,
    seed: int = 1_000,
    timeout: float = 60.0,
) -> dict:
    """Replay a clean then a drifted period of the simulator's world against `url`."""
    import httpx

    traffic = Traffic(world_config(world), seed=seed)
    periods, sent = [], []
    with httpx.Client(base_url=url, timeout=timeout) as client:
        if clean_rows:
            period, part = send_period(client, traffic, "clean", clean_rows, day, None, batch)
            periods.append(period)
            sent.append(part)
        if drift_rows:
            drift = DriftConfig(start_day=int(np.floor(day + 1)), user_shift=user_shift,
                                step=step, rate_factor=rate_factor)  # fmt: skip
            period, part = send_period(client, traffic, "drifted", drift_rows, day + 1, drift,
                                       batch)  # fmt: skip
            periods.append(period)
            sent.append(part)
    labelled = labels_later(labels_dir, sent, label_share, label_delay, seed)
    return {"url": url, "world": str(world), "labelled": labelled,
            "periods": [asdict(p) for p in periods]}  # fmt: skip


def read_spec_rows(
    spec: DatasetSpec, *, split: str = "test", rows: int | None = None, seed: int | None = None
) -> pd.DataFrame:
    """Rows of the spec's table (its `split` part when it is a train/val/test folder), the
    spec's fields and tasks. `rows` beyond the table cycle through it again; `seed` shuffles
    the rows first (None: table order). SpecError naming the missing columns or split."""
    from aitm.data import read_table, split_paths

    path = spec.table_path()
    parts = split_paths(path)
    if parts and split not in parts:
        raise SpecError(f"dataset {spec.name!r}: {path} has no {split!r} part "
                        f"(parts: {sorted(parts)})")  # fmt: skip
    columns = [*spec.fields, *spec.tasks, *([spec.timestamp] if spec.timestamp else [])]
    frame = read_table(parts[split] if parts else path, columns=columns)
    spec.check_columns(frame.columns, with_labels=True)
    if frame.empty:
        raise SpecError(f"dataset {spec.name!r}: the table {path} holds no rows")
    if seed is not None:
        frame = frame.sample(frac=1.0, random_state=seed)
    frame = frame.reset_index(drop=True)
    if rows is not None:
        frame = frame.iloc[np.arange(rows) % len(frame)].reset_index(drop=True)
    return frame


def replay_spec(
    url: str,
    spec: DatasetSpec,
    *,
    split: str = "test",
    rows: int | None = None,
    shuffle_seed: int | None = None,
    labels_dir: str | Path | None = None,
    label_share: float = 1.0,
    label_delay: float = 0.0,
    batch: int = 500,
    seed: int = 1_000,
    timeout: float = 60.0,
) -> dict:
    """Send rows of the spec's table to `url` (the fields the spec names, each as its type),
    then write their labels (the spec's tasks, which must be the served model's)."""
    import httpx

    frame = read_spec_rows(spec, split=split, rows=rows, seed=shuffle_seed)
    payload = spec_rows(frame, spec)
    with httpx.Client(base_url=url, timeout=timeout) as client:
        start = _now()
        keys, requests, tasks = send_rows(client, payload, batch, expect=spec.tasks)
    period = Period(TABLE_PERIOD, start, _now(), len(frame), requests, None, None)
    labelled = labels_later(labels_dir, [Sent(frame, keys, tasks)], label_share, label_delay,
                            seed)  # fmt: skip
    return {"url": url, "dataset": spec.name, "table": str(spec.table_path()),
            "tasks": tasks, "labelled": labelled, "periods": [asdict(period)]}  # fmt: skip


def save(summary: dict, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(summary, indent=2))
