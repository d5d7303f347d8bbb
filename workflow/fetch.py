"""(a) Fetch: the training and held-out windows from Feast's offline store, as Parquet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from workflow.params import parse_spec


def _write(frame: pd.DataFrame, out: str) -> int:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    return len(frame)


def stratified_split(
    frame: pd.DataFrame, tasks: list[str], fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded random split (for tables without time), stratified by funnel depth (how many
    steps a row converted), so each step's few positives fall on both sides when there are
    at least two of them."""
    depth = frame[tasks].to_numpy().sum(axis=1)
    rng = np.random.default_rng(seed)
    held = np.zeros(len(frame), dtype=bool)
    for level in np.unique(depth):
        rows = rng.permutation(np.flatnonzero(depth == level))
        n = int(round(len(rows) * fraction))
        if len(rows) >= 2:
            n = min(max(n, 1), len(rows) - 1)
        held[rows[:n]] = True
    return frame[~held], frame[held]


def fetch_windows(
    repo: str,
    train_window: tuple[str, str],
    eval_window: tuple[str, str],
    train_out: str,
    eval_out: str,
    service: str,
    dataset_yaml: str = "",
) -> dict[str, int]:
    """Both windows with one store (one Feast import); raises if any impression lacks features.

    A spec without a timestamp has one snapshot time: every impression is fetched and the
    held-out part is a seeded split (`stratified_split`), the windows are not used."""
    from aitm.dataset import SNAPSHOT_TIME
    from features.retrieval import training_frame
    from features.store import open_store

    spec = parse_spec(dataset_yaml)
    store = open_store(repo)
    if spec.timestamp is None:
        start = pd.Timestamp(SNAPSHOT_TIME)
        frame = training_frame(
            store, repo, start, start + pd.Timedelta(days=1), spec=spec, service=service
        ).frame
        train, held = stratified_split(frame, spec.tasks, spec.eval_fraction, spec.seed)
        return {"train": _write(train, train_out), "eval": _write(held, eval_out)}
    if pd.Timestamp(train_window[1]) > pd.Timestamp(eval_window[0]):
        raise ValueError(
            f"the evaluation window {eval_window} must start at or after the end of the "
            f"training window {train_window}"
        )
    windows = {"train": (train_window, train_out), "eval": (eval_window, eval_out)}
    return {
        name: _write(training_frame(store, repo, *w, spec=spec, service=service).frame, out)
        for name, (w, out) in windows.items()
    }
