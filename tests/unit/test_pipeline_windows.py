"""How the pipeline holds data out: windows from a recurring run's scheduled time, from a table's
own time range, and the seeded, funnel-stratified split of a table without time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workflow.fetch import stratified_split
from workflow.prepare import pipeline_windows, scheduled_windows, windows_from_table

EXPLICIT = dict(
    train_start="2026-02-01T00:00:00+00:00",
    train_end="2026-02-05T00:00:00+00:00",
    eval_start="2026-02-05T00:00:00+00:00",
    eval_end="2026-02-06T00:00:00+00:00",
)


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


def test_a_scheduled_run_holds_out_the_whole_days_before_its_time():
    w = scheduled_windows("2026-03-10T03:15:00Z", train_days=27, eval_days=3)
    assert w == {"train_start": "2026-02-08T00:00:00+00:00",
                 "train_end": "2026-03-07T00:00:00+00:00",
                 "eval_start": "2026-03-07T00:00:00+00:00",
                 "eval_end": "2026-03-10T00:00:00+00:00"}  # fmt: skip
    # Any time of the same day gives the same windows; the next day's run moves on a day.
    assert scheduled_windows("2026-03-10T23:59:59Z", 27, 3) == w
    later = scheduled_windows("2026-03-11T00:00:00Z", 27, 3)
    assert pd.Timestamp(later["eval_end"]) - pd.Timestamp(w["eval_end"]) == pd.Timedelta(days=1)


def test_the_schedule_time_is_read_in_utc():
    # 01:00 in UTC+02:00 is still the previous UTC day.
    w = scheduled_windows("2026-03-10T01:00:00+02:00", 1, 1)
    assert w["eval_end"] == "2026-03-09T00:00:00+00:00"
    assert scheduled_windows("2026-03-10T05:00:00", 1, 1)["eval_end"].endswith("+00:00")


def test_explicit_windows_win_over_the_schedule():
    assert pipeline_windows(EXPLICIT, "2030-01-01T00:00:00Z", 27, 3) == EXPLICIT
    # A local run has no schedule time (pipelines.training_pipeline.local_training_pipeline).
    assert pipeline_windows(EXPLICIT, "", 27, 3) == EXPLICIT


def test_no_explicit_window_derives_them_all():
    empty = dict.fromkeys(EXPLICIT, "")
    assert pipeline_windows(empty, "2026-03-10T03:00:00Z", 27, 3) == scheduled_windows(
        "2026-03-10T03:00:00Z", 27, 3
    )


@pytest.mark.parametrize(
    ("explicit", "schedule", "days", "message"),
    [
        ({**dict.fromkeys(EXPLICIT, ""), "train_start": "2026-02-01"}, "2026-03-10", (27, 3),
         "all four windows or none"),
        (dict.fromkeys(EXPLICIT, ""), "{{$.pipeline_job_schedule_time_utc}}", (27, 3),
         "must be a timestamp"),
        (dict.fromkeys(EXPLICIT, ""), "2026-03-10", (0, 3), "at least one day"),
        (dict.fromkeys(EXPLICIT, ""), "", (27, 3), "no schedule time"),
    ],
)  # fmt: skip
def test_bad_window_inputs_are_refused(explicit, schedule, days, message):
    with pytest.raises(ValueError, match=message):
        pipeline_windows(explicit, schedule, *days)
