"""Turn a dataset spec's table into Feast sources.

Writes into the repo: `dataset.yaml` (the spec with every field's type resolved from the table;
`feature_repo/*.py` read it at `feast apply` time), the spec's project name into the repo's
`feature_store*.yaml` copies, and under `<repo>/data/` one Parquet snapshot table per entity
(key, timestamp, attributes valid from that time on) and the impression/label table used as
the entity frame (impression_id, keys, timestamp, request context, labels).

The table is a Parquet file, a folder of Parquet parts, a CSV file, a folder of CSV files, or a
folder with train/ val/ test/ parts; an entity's attribute history may lie beside the parts as
`<entity>s.parquet` (the simulator writes users.parquet and ads.parquet). Without one, the
entity's snapshots are derived from its attributes carried inline on the impressions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as pads

from aitm.data import DataError, read_table, split_paths
from aitm.dataset import ROW_ID, SNAPSHOT_TIME, DatasetSpec, FieldType, SpecError
from features.fields import DATASET_FILE, IMPRESSIONS_FILE, EntityView, FeastLayout, repo_spec

DATA_DIR = "data"
_PROJECT_LINE = re.compile(r"^project:.*$", re.MULTILINE)


@dataclass(frozen=True)
class BuildSummary:
    data_dir: Path
    impressions: int
    snapshots: dict[str, int]  # entity name -> snapshot rows
    start: pd.Timestamp  # first impression
    end: pd.Timestamp  # last impression
    spec: DatasetSpec | None = None  # the spec written to dataset.yaml, types resolved

    def describe(self) -> str:
        snaps = ", ".join(f"{name}: {n:,} snapshot rows" for name, n in self.snapshots.items())
        return (
            f"{self.impressions:,} impressions from {self.start} to {self.end}; {snaps}; "
            f"written to {self.data_dir}"
        )


# -- types ----------------------------------------------------------------------------------


def _is_number(dtype) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def _where(spec: DatasetSpec, column: str) -> str:
    """The spec key naming a field, e.g. `entities.user.fields` or `context`."""
    role = spec.role(column)
    if role.startswith("entity:"):
        name = role.split(":", 1)[1]
        return f"entities.{name}.{'key' if spec.entities[name].key == column else 'fields'}"
    return role


def infer_type(spec: DatasetSpec, column: str, values: pd.Series) -> FieldType:
    """A field's type: the spec's (numeric fields must hold numbers), else from the values:
    integers (or whole floats) -> int, anything else -> str."""
    declared = spec.field_type(column)
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        dtype = dtype.categories.dtype
    if declared == "float":
        spec.check_numeric(column, dtype)
        return "float"
    if declared is not None:
        return declared
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        present = values.dropna().astype(np.float64)
        if (present == np.floor(present)).all():
            return "int"
        raise SpecError(
            f"dataset {spec.name!r}: {_where(spec, column)}: column {column!r} holds "
            "non-integral numbers: list it under numeric, or give it a type"
        )
    return "str"


def resolve_types(spec: DatasetSpec, tables: Mapping[str, pd.DataFrame]) -> DatasetSpec:
    """The spec with every field's type resolved from the first table holding the column."""
    types: dict[str, FieldType] = {}
    for column in spec.fields:
        table = next((t for t in tables.values() if column in t.columns), None)
        if table is None:
            raise SpecError(f"dataset {spec.name!r}: no table holds column {column!r}")
        types[column] = infer_type(spec, column, table[column])
    return spec.with_types(types)


# -- columns as Feast stores them -----------------------------------------------------------


def _plain(column: pd.Series, kind: FieldType) -> pd.Series:
    """Values as Feast-friendly int64, float64 (NaN for missing) or Python strings."""
    name = column.name
    if isinstance(column.dtype, pd.CategoricalDtype):
        column = column.astype(object)
    if kind == "int":
        if column.isna().any():
            raise DataError(f"column {name!r}: {int(column.isna().sum())} null values")
        numbers = pd.to_numeric(column, errors="coerce")
        bad = numbers.isna() | (numbers != np.floor(numbers))
        if bad.any():
            raise DataError(
                f"column {name!r}: {int(bad.sum())} values are not integers, e.g. "
                f"{column[bad].iloc[0]!r}"
            )
        return numbers.astype(np.int64)
    if kind == "float":
        if not _is_number(column.dtype):
            raise DataError(f"column {name!r}: holds {column.dtype} values, not numbers")
        return column.astype(np.float64)
    values = column.astype(object)
    return values.where(column.notna(), None).map(lambda v: v if v is None else str(v))


def _timestamps(column: pd.Series) -> pd.Series:
    ts = pd.to_datetime(column, utc=True)
    if ts.isna().any():
        raise DataError(f"{column.name}: {int(ts.isna().sum())} null or unparsable timestamps")
    return ts.dt.floor("us")  # the sources are written in microseconds (Spark reads no finer)


def _with_time(frame: pd.DataFrame, layout: FeastLayout) -> pd.DataFrame:
    """The frame with the Feast timestamp column: the spec's, or one snapshot time for all."""
    if layout.spec.timestamp:
        return frame
    return frame.assign(**{layout.timestamp: pd.Timestamp(SNAPSHOT_TIME)})


def _check_columns(frame: pd.DataFrame, needed, what: str) -> None:
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(f"{what}: missing columns {missing} (has {list(frame.columns)})")


def snapshot_table(history: pd.DataFrame, entity: EntityView) -> pd.DataFrame:
    """An attribute history (key, timestamp, attributes) as a typed snapshot table."""
    _check_columns(history, entity.columns, f"{entity.name} history")
    out = pd.DataFrame({entity.key: _plain(history[entity.key], entity.key_type)})
    out[entity.timestamp] = _timestamps(history[entity.timestamp])
    for name in entity.features:
        out[name] = _plain(history[name], entity.type_of(name))
    return out.sort_values([entity.timestamp, entity.key], kind="stable", ignore_index=True)


def snapshots_from_impressions(frame: pd.DataFrame, entity: EntityView) -> pd.DataFrame:
    """Attributes carried inline on impressions -> one snapshot row per entity change.

    A row is kept when an entity is first seen or when any of its attributes differs from
    that entity's previous impression, so the table holds the attribute history only. Of an
    entity's rows at one time, the last one counts (a snapshot table has one row per time).
    """
    _check_columns(frame, entity.columns, "impression table")
    history = snapshot_table(frame[list(entity.columns)], entity)
    key, ts = entity.key, entity.timestamp
    history = history.sort_values([key, ts], kind="stable", ignore_index=True)
    history = history.drop_duplicates([key, ts], keep="last", ignore_index=True)
    attrs = history[list(entity.features)].astype(object)
    attrs = attrs.where(attrs.notna(), "\0null")
    previous = attrs.groupby(history[key], sort=False).shift(1)
    changed = previous.isna().any(axis=1) | (attrs != previous).any(axis=1)
    return history[changed.to_numpy()].sort_values([ts, key], kind="stable", ignore_index=True)


def _label(column: pd.Series) -> pd.Series:
    if pd.api.types.is_integer_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
        return column.astype(np.int8)
    if not _is_number(column.dtype):
        raise DataError(f"task {column.name!r}: holds {column.dtype} values, not 0/1 labels")
    present = column.dropna()
    if len(present) == len(column) and (present == np.floor(present)).all():
        return column.astype(np.int8)
    return column  # nulls or fractions: kept as they are, for validation to name


def impression_table(frame: pd.DataFrame, layout: FeastLayout) -> pd.DataFrame:
    """The entity frame: impression_id, keys, timestamp, request context and labels."""
    ts = layout.timestamp
    frame = _with_time(frame, layout)
    if not layout.spec.timestamp:
        # One microsecond apart after the snapshots: Feast's file offline store keeps one
        # entity row per (key, time), so impressions sharing a user and a time would be lost.
        steps = pd.to_timedelta(np.arange(1, len(frame) + 1), unit="us")
        frame[ts] = pd.Timestamp(SNAPSHOT_TIME) + steps
    if ROW_ID not in frame.columns:  # a user's own table: number rows in time order
        frame = frame.sort_values(ts, kind="stable", ignore_index=True)
        frame[ROW_ID] = np.arange(len(frame), dtype=np.int64)
    columns = list(layout.impression_columns())
    _check_columns(frame, columns, "impression table")
    if frame[ROW_ID].duplicated().any():
        raise DataError(f"{ROW_ID}: {int(frame[ROW_ID].duplicated().sum())} duplicate ids")
    out = pd.DataFrame(index=frame.index)
    for name in columns:
        if name == ts:
            out[name] = _timestamps(frame[name])
        elif name == ROW_ID:
            out[name] = _plain(frame[name], "int")
        elif name in layout.tasks:
            out[name] = _label(frame[name])
        else:
            out[name] = _plain(frame[name], layout.type_of(name))
    return out.sort_values([ts, ROW_ID], kind="stable", ignore_index=True)


def _write(frame: pd.DataFrame, path: Path) -> None:
    # Microsecond timestamps: Spark cannot read Parquet's nanosecond TIMESTAMP type.
    frame.to_parquet(path, index=False, coerce_timestamps="us", allow_truncated_timestamps=False)


def _table_columns(path: Path) -> list[str]:
    """A table's column names, without reading its rows where the format allows."""
    if path.suffix.lower() in {".csv", ".tsv"} or (
        path.is_dir() and not any(path.rglob("*.parquet"))
    ):
        return list(read_table(path).columns)
    return list(pads.dataset(path, format="parquet").schema.names)


def _set_project(repo: Path, project: str) -> None:
    """Write the spec's Feast project name into every feature_store*.yaml of the repo."""
    for path in sorted(repo.glob("feature_store*.yaml")):
        text = path.read_text()
        updated = _PROJECT_LINE.sub(f"project: {project}", text, count=1)
        if updated != text:
            path.write_text(updated)


def build_sources(
    spec: DatasetSpec, repo: str | Path, data: str | Path | None = None
) -> BuildSummary:
    """Write the Feast sources of `spec`'s table (or of `data`) into `repo`.

    Raises SpecError naming the spec key and column for a column the table lacks or a numeric
    field holding non-numbers, DataError for rows that cannot be stored (null keys, ...).
    """
    repo = Path(repo)
    data = Path(data) if data is not None else spec.table_path()
    if not (repo / "feature_store.yaml").exists():
        raise DataError(f"{repo}: not a Feast repo (no feature_store.yaml)")
    if not data.exists():
        raise DataError(f"{data}: no such file or folder (the table of dataset {spec.name!r})")
    layout = FeastLayout(spec)
    needed = [ROW_ID, *spec.fields, *spec.tasks, *([spec.timestamp] if spec.timestamp else [])]

    splits = split_paths(data)
    histories: dict[str, pd.DataFrame] = {}
    if splits:
        for entity in layout.stored:
            path = data / entity.snapshot_file
            if path.exists():
                histories[entity.name] = read_table(path)
        # attributes with a history of their own are read from it, not from the parts
        elsewhere = {f for e in layout.stored if e.name in histories for f in e.features}
        kept = [c for c in needed if c not in elsewhere]
        parts = [read_table(p, columns=kept) for p in splits.values()]
        raw = pd.concat(parts, ignore_index=True)
        spec.check_columns(set(raw.columns).union(*(h.columns for h in histories.values())))
    else:
        spec.check_columns(_table_columns(data))
        raw = read_table(data, columns=needed)
    if raw.empty:
        raise DataError(f"{data}: the impression table is empty")

    # Types from the history of an entity's attributes where there is one, else the table.
    typed = {**{f"history:{n}": h for n, h in histories.items()}, "table": raw}
    spec = resolve_types(spec, typed)
    layout = FeastLayout(spec)
    snapshots: dict[str, pd.DataFrame] = {}
    for entity in layout.stored:
        if entity.name in histories:
            snapshots[entity.name] = snapshot_table(
                _with_time(histories[entity.name], layout), entity
            )
        else:
            snapshots[entity.name] = snapshots_from_impressions(_with_time(raw, layout), entity)
    impressions = impression_table(raw, layout)
    if impressions.empty:
        raise DataError(f"{data}: no impressions")

    out = repo / DATA_DIR
    out.mkdir(parents=True, exist_ok=True)
    for name, table in snapshots.items():
        _write(table, out / layout.entity(name).snapshot_file)
    _write(impressions, out / IMPRESSIONS_FILE)
    (repo / DATASET_FILE).write_text(spec.to_yaml())
    _set_project(repo, layout.project)
    return BuildSummary(
        data_dir=out,
        impressions=len(impressions),
        snapshots={name: len(table) for name, table in snapshots.items()},
        start=impressions[layout.timestamp].iloc[0],
        end=impressions[layout.timestamp].iloc[-1],
        spec=spec,
    )


def entity_ids(repo: str | Path, spec: DatasetSpec | None = None) -> dict[str, np.ndarray]:
    """Entity name -> the ids with online features once materialized, in first-seen order:
    an entity with a snapshot table takes its ids from it, one without from the impressions."""
    spec = spec or repo_spec(repo)
    layout = FeastLayout(spec)
    data = Path(repo) / DATA_DIR
    out: dict[str, np.ndarray] = {}
    for entity in layout.entities:
        path = data / (entity.snapshot_file if entity.features else IMPRESSIONS_FILE)
        out[entity.name] = pd.read_parquet(path, columns=[entity.key])[entity.key].unique()
    return out


def source_ids(repo: str | Path, spec: DatasetSpec | None = None) -> tuple[np.ndarray, ...]:
    """`entity_ids` as a tuple in the spec's entity order (the default spec: users, ads)."""
    return tuple(entity_ids(repo, spec).values())
