"""Traffic replay: simulated impressions sent to the running service, labels written later.

    python -m monitoring replay --url http://127.0.0.1:3000 --world data/sim \
        --clean-rows 20000 --drift-rows 20000 --labels-dir artifacts/labels --out replay.json

A clean period (the world the model was trained on), then a drifted period: a share of traffic
from a new user cohort (`--user-shift`) and the approval step's conversion rate multiplied by
`--rate-factor`, the simulator's drift knobs. Rows go to POST /predict in batches; each row's
labels are written after both periods (after `--label-delay` seconds), keyed by the request id
the service returned and the row's position, for a `--label-share` of rows: the rest never
arrive. replay.json records each period's wall-clock window, the monitoring job's input.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from aitm.simulator import DriftConfig
from monitoring.logs import LabelWriter
from monitoring.synthetic import Traffic, label_records, request_rows, world_config


@dataclass(frozen=True)
class Period:
    name: str
    start: str  # wall clock, ISO UTC: the window of the service's log timestamps
    end: str
    rows: int
    requests: int
    day: float  # simulated day the impressions were drawn from
    drift: dict | None


def _now() -> str:
    return datetime.now(UTC).isoformat()


def send_period(client, traffic: Traffic, name: str, rows: int, day: float,
                drift: DriftConfig | None, batch: int):  # fmt: skip
    """Send one period; returns (Period, the impressions, (request_id, row) of each)."""
    frame = traffic.sample(rows, day, drift)
    payload = request_rows(frame)
    keys: list[tuple[str, int]] = []
    start = _now()
    requests = 0
    for lo in range(0, rows, batch):
        chunk = payload[lo : lo + batch]
        response = client.post("/predict", json={"rows": chunk})
        if response.status_code != 200:
            raise RuntimeError(f"/predict answered {response.status_code}: {response.text[:300]}")
        request_id = response.json()["request_id"]
        keys += [(request_id, i) for i in range(len(chunk))]
        requests += 1
    time.sleep(0.01)  # the last log timestamp falls strictly before the window's end
    period = Period(name, start, _now(), rows, requests, day,
                    None if drift is None else drift.model_dump())  # fmt: skip
    return period, frame, keys


def write_labels(
    labels_dir: str | Path,
    sent: list[tuple[pd.DataFrame, list[tuple[str, int]]]],
    tasks: list[str],
    share: float,
    seed: int,
) -> int:
    """Labels for a `share` of the sent rows (the others never arrive)."""
    writer = LabelWriter(labels_dir)
    rng = np.random.default_rng(seed)
    written = 0
    for frame, keys in sent:
        keep = np.flatnonzero(rng.random(len(frame)) < share)
        records = label_records(frame.iloc[keep], [keys[i] for i in keep], tasks, _now())
        written += writer.write(records)
    return written


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
    """Replay a clean then a drifted period against the service at `url`."""
    import httpx

    from aitm.config import SIMULATED_TASKS

    traffic = Traffic(world_config(world), seed=seed)
    tasks = list(SIMULATED_TASKS)
    periods, sent = [], []
    with httpx.Client(base_url=url, timeout=timeout) as client:
        if clean_rows:
            period, frame, keys = send_period(client, traffic, "clean", clean_rows, day, None,
                                              batch)  # fmt: skip
            periods.append(period)
            sent.append((frame, keys))
        if drift_rows:
            drift = DriftConfig(start_day=int(np.floor(day + 1)), user_shift=user_shift,
                                step=step, rate_factor=rate_factor)  # fmt: skip
            period, frame, keys = send_period(client, traffic, "drifted", drift_rows,
                                              day + 1, drift, batch)  # fmt: skip
            periods.append(period)
            sent.append((frame, keys))
    labelled = 0
    if labels_dir is not None:
        time.sleep(label_delay)
        labelled = write_labels(labels_dir, sent, tasks, label_share, seed)
    return {"url": url, "world": str(world), "labelled": labelled,
            "periods": [asdict(p) for p in periods]}  # fmt: skip


def save(summary: dict, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(summary, indent=2))
