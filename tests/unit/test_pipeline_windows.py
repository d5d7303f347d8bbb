"""How the pipeline holds data out: windows from a table's own time range, and the seeded,
funnel-stratified split of a table without time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workflow.fetch import stratified_split
from workflow.prepare import windows_from_table


def _funnel(n: int, positives: tuple[int, int]) -> pd.DataFrame:
    labels = np.zeros((n, 2), dtype=np.int8)
    labels[: positives[0], 0] = 1
    labels[: positives[1], 1] = 1
    return pd.DataFrame(labels, columns=["click", "purchase"])


def test_the_split_is_seeded_and_every_step_has_positives_on_both_sides():
    frame = _funnel(150, (10, 2))
    train, held = stratified_split(frame, ["click", "purchase"], 0.2, seed=0)
    again, _ = stratified_split(frame, ["click", "purchase"], 0.2, seed=0)
    assert train.index.equals(again.index)
    assert len(train) + len(held) == 150 and not set(train.index) & set(held.index)
    for part in (train, held):
        assert part["click"].sum() >= 1 and part["purchase"].sum() >= 1
    assert len(held) == pytest.approx(30, abs=2)
    other, _ = stratified_split(frame, ["click", "purchase"], 0.2, seed=1)
    assert not other.index.equals(train.index)


def test_windows_come_from_the_time_range(tmp_path):
    times = pd.date_range("2026-03-01", periods=101, freq="h", tz="UTC")
    path = tmp_path / "impressions.parquet"
    pd.DataFrame({"ts": times}).to_parquet(path)
    w = windows_from_table(path, "ts", 0.2, None)
    assert pd.Timestamp(w["train_start"]) == times[0]
    assert pd.Timestamp(w["train_end"]) == pd.Timestamp(w["eval_start"]) == times[80]
    assert pd.Timestamp(w["eval_end"]) > times[-1]


def test_a_test_part_sets_the_evaluation_window(tmp_path):
    times = pd.date_range("2026-03-01", periods=10, freq="D", tz="UTC")
    path = tmp_path / "impressions.parquet"
    pd.DataFrame({"ts": times}).to_parquet(path)
    (tmp_path / "test").mkdir()
    pd.DataFrame({"ts": times[7:]}).to_parquet(tmp_path / "test" / "part-0.parquet")
    w = windows_from_table(path, "ts", 0.5, tmp_path / "test")
    assert pd.Timestamp(w["eval_start"]) == times[7]


def test_one_instant_cannot_be_split_by_time(tmp_path):
    path = tmp_path / "impressions.parquet"
    pd.DataFrame({"ts": pd.to_datetime(["2026-03-01"] * 5, utc=True)}).to_parquet(path)
    with pytest.raises(ValueError, match="cannot hold out"):
        windows_from_table(path, "ts", 0.2, None)
