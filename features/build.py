"""Turn a simulated folder, or a user's own impression table, into Feast sources.

Writes under `<repo>/data/`: one Parquet snapshot table per entity (key, event_timestamp,
attributes valid from that time on) and the impression/label table used as the entity frame
(impression_id, keys, event_timestamp, request context, labels).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from aitm.data import DataError, read_table, split_paths
from features.fields import (
    AD,
    ENTITIES,
    IMPRESSIONS_FILE,
    ROW_ID,
    TIMESTAMP,
    USER,
    EntitySpec,
    impression_columns,
    is_int,
)

DATA_DIR = "data"
ENTITY_KEYS = frozenset(e.key for e in ENTITIES)


@dataclass(frozen=True)
class BuildSummary:
    data_dir: Path
    impressions: int
    snapshots: dict[str, int]  # entity name -> snapshot rows
    start: pd.Timestamp  # first impression
    end: pd.Timestamp  # last impression

    def describe(self) -> str:
        snaps = ", ".join(f"{name}: {n:,} snapshot rows" for name, n in self.snapshots.items())
        return (
            f"{self.impressions:,} impressions from {self.start} to {self.end}; {snaps}; "
            f"written to {self.data_dir}"
        )


def _plain(column: pd.Series, as_int: bool) -> pd.Series:
    """Categories and numbers as Feast-friendly plain int64 / Python strings."""
    if as_int:
        if column.isna().any():
            raise DataError(f"column {column.name!r}: {int(column.isna().sum())} null values")
        if isinstance(column.dtype, pd.CategoricalDtype):
            column = column.astype(object)
        return pd.to_numeric(column).astype(np.int64)
    values = column.astype(object)
    return values.where(column.notna(), None).map(lambda v: v if v is None else str(v))


def _timestamps(column: pd.Series) -> pd.Series:
    ts = pd.to_datetime(column, utc=True)
    if ts.isna().any():
        raise DataError(f"{TIMESTAMP}: {int(ts.isna().sum())} null or unparsable timestamps")
    return ts


def _check_columns(frame: pd.DataFrame, needed: list[str], what: str) -> None:
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(f"{what}: missing columns {missing} (has {list(frame.columns)})")


def snapshot_table(history: pd.DataFrame, spec: EntitySpec) -> pd.DataFrame:
    """An attribute history (key, event_timestamp, attributes) as a typed snapshot table."""
    columns = [spec.key, TIMESTAMP, *spec.features]
    _check_columns(history, columns, f"{spec.name} history")
    out = pd.DataFrame({spec.key: _plain(history[spec.key], as_int=True)})
    out[TIMESTAMP] = _timestamps(history[TIMESTAMP])
    for name in spec.features:
        out[name] = _plain(history[name], as_int=is_int(name))
    return out.sort_values([TIMESTAMP, spec.key], kind="stable", ignore_index=True)


def snapshots_from_impressions(frame: pd.DataFrame, spec: EntitySpec) -> pd.DataFrame:
    """Attributes carried inline on impressions -> one snapshot row per entity change.

    A row is kept when an entity is first seen or when any of its attributes differs from
    that entity's previous impression, so the table holds the attribute history only.
    """
    columns = [spec.key, TIMESTAMP, *spec.features]
    _check_columns(frame, columns, "impression table")
    history = snapshot_table(frame[columns], spec)
    history = history.sort_values([spec.key, TIMESTAMP], kind="stable", ignore_index=True)
    attrs = history[list(spec.features)].astype(object).fillna("\0null")
    previous = attrs.groupby(history[spec.key], sort=False).shift(1)
    changed = previous.isna().any(axis=1) | (attrs != previous).any(axis=1)
    return history[changed.to_numpy()].sort_values(
        [TIMESTAMP, spec.key], kind="stable", ignore_index=True
    )


def impression_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The entity frame: impression_id, keys, timestamp, request context and labels."""
    frame = frame.copy()
    if ROW_ID not in frame.columns:  # a user's own table: number rows in time order
        frame = frame.sort_values(TIMESTAMP, kind="stable", ignore_index=True)
        frame[ROW_ID] = np.arange(len(frame), dtype=np.int64)
    columns = list(impression_columns())
    _check_columns(frame, columns, "impression table")
    if frame[ROW_ID].duplicated().any():
        raise DataError(f"{ROW_ID}: {int(frame[ROW_ID].duplicated().sum())} duplicate ids")
    out = pd.DataFrame(index=frame.index)
    for name in columns:
        if name == TIMESTAMP:
            out[name] = _timestamps(frame[name])
        elif name in ENTITY_KEYS or name == ROW_ID or is_int(name):
            out[name] = _plain(frame[name], as_int=True)
        elif pd.api.types.is_integer_dtype(frame[name].dtype):  # labels
            out[name] = frame[name].astype(np.int8)
        else:
            out[name] = _plain(frame[name], as_int=False)
    return out.sort_values([TIMESTAMP, ROW_ID], kind="stable", ignore_index=True)


def _write(frame: pd.DataFrame, path: Path) -> None:
    # Microsecond timestamps: Spark cannot read Parquet's nanosecond TIMESTAMP type.
    frame.to_parquet(path, index=False, coerce_timestamps="us", allow_truncated_timestamps=False)


def build_sources(data: str | Path, repo: str | Path) -> BuildSummary:
    """Write the Feast sources for `data` under `<repo>/data/`.

    `data` is a simulated folder (train/ val/ test/ parts, users.parquet, ads.parquet) or a
    single impression table (Parquet file or folder, CSV) that carries user and ad attributes
    inline; its snapshots are then derived from attribute changes between impressions.
    """
    data, repo = Path(data), Path(repo)
    if not (repo / "feature_store.yaml").exists():
        raise DataError(f"{repo}: not a Feast repo (no feature_store.yaml)")
    out = repo / DATA_DIR
    out.mkdir(parents=True, exist_ok=True)

    splits = split_paths(data)
    if splits:
        histories = {e.name: data / e.snapshot_file for e in ENTITIES}
        absent = [str(p) for p in histories.values() if not p.exists()]
        if absent:
            raise DataError(f"{data}: a simulated folder needs {absent}")
        raw = pd.concat(
            [read_table(p, columns=list(impression_columns())) for p in splits.values()],
            ignore_index=True,
        )
        snapshots = {e.name: snapshot_table(read_table(histories[e.name]), e) for e in ENTITIES}
    else:
        raw = read_table(data)
        if raw.empty:
            raise DataError(f"{data}: the impression table is empty")
        snapshots = {e.name: snapshots_from_impressions(raw, e) for e in ENTITIES}
    impressions = impression_table(raw)
    if impressions.empty:
        raise DataError(f"{data}: no impressions")

    for spec in ENTITIES:
        _write(snapshots[spec.name], out / spec.snapshot_file)
    _write(impressions, out / IMPRESSIONS_FILE)
    return BuildSummary(
        data_dir=out,
        impressions=len(impressions),
        snapshots={name: len(table) for name, table in snapshots.items()},
        start=impressions[TIMESTAMP].iloc[0],
        end=impressions[TIMESTAMP].iloc[-1],
    )


def source_ids(repo: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The users and ads of a repo's snapshot sources (each has online features once
    materialized), in first-seen order."""
    data = Path(repo) / DATA_DIR
    users = pd.read_parquet(data / USER.snapshot_file, columns=[USER.key])[USER.key].unique()
    ads = pd.read_parquet(data / AD.snapshot_file, columns=[AD.key])[AD.key].unique()
    return users, ads
