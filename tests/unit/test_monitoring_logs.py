"""Reading a window of the prediction log and joining the labels that arrived."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from aitm.schema import FeatureSchema, FieldSpec
from monitoring.logs import LABELLED, LabelWriter, Window, load_window

SCHEMA = FeatureSchema(
    fields=(FieldSpec("user_id", "int", (1, 2), 4), FieldSpec("channel", "str", ("feed",), 4)),
    tasks=("click", "application"),
)


def _record(request_id, row, when, **extra):
    return {"request_id": request_id, "row": row, "timestamp": when, "model_version": "aitm:v1",
            "features": {"user_id": 1, "channel": "feed"},
            "probabilities": {"click": 0.2, "application": 0.1}, **extra}  # fmt: skip


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_window_rows_join_their_labels_by_request_id_and_row(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    _write(logs / "predictions-a.00000.jsonl", [
        _record("r1", 0, "2026-01-01T10:00:00+00:00", endpoint="predict"),
        _record("r1", 1, "2026-01-01T10:00:00+00:00", endpoint="predict"),
        _record("early", 0, "2026-01-01T08:59:59+00:00", endpoint="predict"),
    ])  # fmt: skip
    _write(logs / "predictions-b.00000.jsonl", [
        _record("r2", 0, "2026-01-01T11:00:00.5+00:00", endpoint="rank", objective="click",
                weight=2.0, monotone=False),
        _record("late", 0, "2026-01-01T12:00:00+00:00", endpoint="predict"),
    ])  # fmt: skip
    labels = LabelWriter(tmp_path / "labels")
    labels.write([{"request_id": "r1", "row": 1, "click": 1, "application": 0},
                  {"request_id": "r2", "row": 0, "click": 0, "application": 0},
                  {"request_id": "r2", "row": 0, "click": 1, "application": 1}])  # fmt: skip
    window = Window.parse("2026-01-01T09:00:00Z", "2026-01-01T12:00:00Z")
    frame = load_window(logs, tmp_path / "labels", SCHEMA, window)
    frame = frame.sort_values(["request_id", "row"]).reset_index(drop=True)
    assert list(zip(frame.request_id, frame.row)) == [("r1", 0), ("r1", 1), ("r2", 0)]
    assert frame[LABELLED].tolist() == [False, True, True]
    assert np.isnan(frame.loc[0, "click"])  # not arrived: missing, never a 0
    assert frame.loc[2, ["click", "application"]].tolist() == [1, 1]  # the last label wins
    assert frame.objective.tolist()[2] == "click"
    assert frame.p_click.tolist() == [0.2, 0.2, 0.2]
    assert frame.user_id.tolist() == [1, 1, 1] and frame.channel.tolist() == ["feed"] * 3


def test_no_labels_folder_means_every_row_unlabelled(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    _write(logs / "predictions-a.00000.jsonl", [_record("r1", 0, "2026-01-01T10:00:00Z")])
    window = Window(pd.Timestamp("2026-01-01", tz="UTC"), pd.Timestamp("2026-01-02", tz="UTC"))
    frame = load_window(logs, None, SCHEMA, window)
    assert len(frame) == 1 and not frame[LABELLED].any()


def test_a_window_must_end_after_it_starts():
    with pytest.raises(ValueError, match="after its start"):
        Window.parse("2026-01-02", "2026-01-01")


def test_fields_and_tasks_come_from_the_schema_numeric_fields_as_numbers(tmp_path):
    schema = FeatureSchema(
        fields=(FieldSpec("101", "int", (1, 2), 4), FieldSpec("D109_14", "float", (), 4, 0.5, 0.1)),
        tasks=("click", "purchase"),
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    base = {"timestamp": "2026-01-01T10:00:00+00:00", "model_version": "ali-ccp:v1",
            "endpoint": "predict", "probabilities": {"click": 0.3, "purchase": 0.1}}  # fmt: skip
    _write(logs / "predictions-a.00000.jsonl", [
        {**base, "request_id": "r1", "row": 0, "features": {"101": 1, "D109_14": 0.4734}},
        {**base, "request_id": "r1", "row": 1, "features": {"101": 2, "D109_14": 1}},
        {**base, "request_id": "r1", "row": 2, "features": {"101": 2, "D109_14": None}},
    ])  # fmt: skip
    LabelWriter(tmp_path / "labels").write([{"request_id": "r1", "row": 0, "click": 1,
                                             "purchase": 0}])  # fmt: skip
    window = Window.parse("2026-01-01T09:00:00Z", "2026-01-01T11:00:00Z")
    frame = load_window(logs, tmp_path / "labels", schema, window).sort_values("row")
    assert frame["D109_14"].dtype == np.float64
    assert frame["D109_14"].tolist()[:2] == [0.4734, 1.0] and np.isnan(frame["D109_14"].iloc[2])
    assert frame["101"].tolist() == [1, 2, 2]
    assert frame.p_purchase.tolist() == [0.1] * 3
    assert frame[LABELLED].tolist() == [True, False, False]
    assert frame.click.iloc[0] == 1 and np.isnan(frame.purchase.iloc[1])
