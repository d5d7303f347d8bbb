"""A window of logged predictions joined with the labels that arrived, by request id and row.

The service writes JSON lines (serving/prediction_log.py): request_id, row (position in the
request), timestamp, model_version, endpoint, features {field: raw value}, probabilities
{task: p}, and for /rank the objective. Labels arrive later, in other JSON-lines files:
request_id, row, labelled_at and one 0/1 value per task. Field and task names are the model's
(its schema), whatever the dataset. A row without a label is kept with NaN labels: label-based
metrics use the labelled rows only and the coverage is reported.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from aitm.schema import FeatureSchema
from monitoring.reference import NUMERIC, prob_column

LOG_GLOB = "predictions-*.jsonl"
LABEL_GLOB = "labels-*.jsonl"
KEY = ["request_id", "row"]
LABELLED = "labelled"  # bool column: the row's labels arrived


@dataclass(frozen=True)
class Window:
    start: pd.Timestamp
    end: pd.Timestamp  # exclusive

    @classmethod
    def parse(cls, start: str, end: str) -> Window:
        window = cls(_utc(start), _utc(end))
        if window.end <= window.start:
            raise ValueError(f"the window end {end} must be after its start {start}")
        return window

    @classmethod
    def last_hours(cls, hours: float, now: pd.Timestamp | None = None) -> Window:
        end = now if now is not None else pd.Timestamp.now(tz="UTC")
        return cls(end - pd.Timedelta(hours=hours), end)

    def describe(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"


def _utc(value: str | pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


# Arrow type of a logged field by its schema dtype: whatever the spec, fields are ints,
# strings or (numeric fields) floats, null where the request left them out.
_ARROW = {"int": pa.int64(), "str": pa.string(), NUMERIC: pa.float64()}


def _log_schema(schema: FeatureSchema) -> pa.Schema:
    features = pa.struct([(f.name, _ARROW.get(f.dtype, pa.string())) for f in schema.fields])
    probs = pa.struct([(t, pa.float64()) for t in schema.tasks])
    return pa.schema([
        ("request_id", pa.string()), ("row", pa.int64()),
        ("timestamp", pa.timestamp("us", tz="UTC")), ("model_version", pa.string()),
        ("endpoint", pa.string()), ("objective", pa.string()),
        ("features", features), ("probabilities", probs),
    ])  # fmt: skip


def _read_jsonl(paths: Iterable[Path], schema: pa.Schema) -> pa.Table:
    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    read = pj.ReadOptions(block_size=16 * 2**20)
    tables = [pj.read_json(p, read_options=read, parse_options=options) for p in paths]
    tables = [t for t in tables if t.num_rows]
    return pa.concat_tables(tables) if tables else schema.empty_table()


def read_predictions(log_dir: str | Path, schema: FeatureSchema, window: Window) -> pa.Table:
    """Logged rows with window.start <= timestamp < window.end: one column per field (string
    fields dictionary-encoded) and p_<task> per task.

    Files last written before the window starts are skipped unread (records are appended in
    time order, so such a file holds nothing newer than its modification time).
    """
    start_s = window.start.timestamp()
    paths = [p for p in sorted(Path(log_dir).glob(LOG_GLOB)) if p.stat().st_mtime >= start_s - 1.0]
    table = _read_jsonl(paths, _log_schema(schema))
    ts = table.column("timestamp")
    keep = pc.and_(
        pc.greater_equal(ts, pa.scalar(window.start.to_pydatetime(), ts.type)),
        pc.less(ts, pa.scalar(window.end.to_pydatetime(), ts.type)),
    )
    table = table.filter(keep)
    features = table.column("features").combine_chunks()
    probs = table.column("probabilities").combine_chunks()
    columns = {c: table.column(c) for c in (*KEY, "timestamp")}
    for c in ("model_version", "endpoint", "objective"):
        columns[c] = pc.dictionary_encode(table.column(c))
    for f in schema.fields:
        values = features.field(f.name)
        columns[f.name] = (
            pc.dictionary_encode(values) if pa.types.is_string(values.type) else values
        )
    for task in schema.tasks:
        columns[prob_column(task)] = probs.field(task)
    return pa.table(columns)


def read_labels(labels_dir: str | Path | None, tasks: list[str]) -> pa.Table:
    """Every label that arrived: request_id, row, one 0/1 column per task (last write wins)."""
    schema = pa.schema(
        [("request_id", pa.string()), ("row", pa.int64()), *((t, pa.float64()) for t in tasks)]
    )
    paths = sorted(Path(labels_dir).glob(LABEL_GLOB)) if labels_dir else []
    labels = _read_jsonl(paths, schema).select([*KEY, *tasks])
    order = labels.append_column("_order", pa.array(np.arange(labels.num_rows)))
    last = order.group_by(KEY).aggregate([("_order", "max")]).column("_order_max")
    return labels.take(last)


def join_labels(predictions: pa.Table, labels: pa.Table, tasks: list[str]) -> pd.DataFrame:
    """Predictions with their labels (NaN where none arrived) and a `labelled` flag. Rows come
    back in no particular order."""
    joined = predictions.join(labels, keys=KEY, join_type="left outer", use_threads=True)
    frame = joined.to_pandas()
    frame[LABELLED] = frame[tasks].notna().all(axis=1).to_numpy()
    return frame


def load_window(
    log_dir: str | Path, labels_dir: str | Path | None, schema: FeatureSchema, window: Window
) -> pd.DataFrame:
    tasks = list(schema.tasks)
    return join_labels(read_predictions(log_dir, schema, window), read_labels(labels_dir, tasks),
                       tasks)  # fmt: skip


class LabelWriter:
    """Appends label records as JSON lines (used by the replay tool; a label pipeline would
    write the same format)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / f"labels-{os.getpid()}-{time.time_ns()}.jsonl"

    def write(self, records: Iterable[Mapping[str, Any]]) -> int:
        lines = [json.dumps(dict(r), default=str) + "\n" for r in records]
        with self.path.open("a", encoding="utf-8") as handle:
            handle.writelines(lines)
        return len(lines)
