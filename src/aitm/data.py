"""Tables in, checked and encoded arrays out: simulated splits or a user's own Parquet/CSV."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds

from aitm.config import DataConfig
from aitm.schema import FeatureSchema, numeric_values

TRUE_PREFIX = "true_p_"  # column holding the true end-to-end probability of a task, if known


class DataError(ValueError):
    """A table that cannot be used for training or evaluation; the message says why."""


_TEXT_SUFFIXES = {".csv", ".tsv"}


def _read_text(path: Path, columns: list[str] | None) -> pd.DataFrame:
    frame = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    frame.columns = [str(c) for c in frame.columns]
    if columns is not None:
        frame = frame[[c for c in columns if c in frame.columns]]
    return frame


def read_table(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """A Parquet file, a folder of Parquet parts, a CSV file, or a folder of CSV files (read
    in name order), as one frame."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.suffix.lower() in _TEXT_SUFFIXES:
        return _read_text(path, columns)
    if path.is_dir() and not any(path.rglob("*.parquet")):
        texts = sorted(p for p in path.iterdir() if p.suffix.lower() in _TEXT_SUFFIXES)
        if not texts:
            raise DataError(f"{path}: a folder with neither Parquet nor CSV files")
        return pd.concat([_read_text(p, columns) for p in texts], ignore_index=True)
    dataset = ds.dataset(path, format="parquet")
    if columns is not None:
        columns = [c for c in columns if c in dataset.schema.names]
    return dataset.to_table(columns=columns).to_pandas()


def split_paths(path: str | Path) -> dict[str, Path]:
    """The train/val/test parts of a simulated folder, or {} if `path` is a single table."""
    path = Path(path)
    return {s: path / s for s in ("train", "val", "test") if (path / s).is_dir()}


def check_frame(frame: pd.DataFrame, config: DataConfig, *, require_labels: bool = True) -> None:
    """Raise DataError naming the column and the count of bad rows, before any training."""
    if frame.empty:
        raise DataError("the table is empty: 0 rows")
    needed = list(config.fields) + (list(config.tasks) if require_labels else [])
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(f"missing columns: {missing} (table has {len(frame.columns)} columns)")
    for name in config.numeric:
        try:
            numeric_values(name, frame[name])
        except ValueError as exc:
            raise DataError(str(exc)) from None
    if not require_labels:
        return
    problems = []
    for task in config.tasks:
        column = frame[task]
        nulls = int(column.isna().sum())
        if nulls:
            problems.append(f"label {task!r}: {nulls} null rows")
        bad = int((~column.dropna().isin([0, 1])).sum())
        if bad:
            problems.append(f"label {task!r}: {bad} rows outside {{0, 1}}")
    if not problems:
        labels = frame[list(config.tasks)].to_numpy()
        for t in range(1, len(config.tasks)):
            broken = int((labels[:, t] > labels[:, t - 1]).sum())
            if broken:
                problems.append(
                    f"label {config.tasks[t]!r}: {broken} rows with {config.tasks[t]}=1 but "
                    f"{config.tasks[t - 1]}=0 (funnel order broken)"
                )
    if problems:
        raise DataError("bad labels: " + "; ".join(problems))


@dataclass(frozen=True)
class EncodedData:
    """Model-ready arrays: x (N, F) field indices, int64, or float64 when some field is numeric
    (see `FeatureSchema.encode`); y (N, T) float32 labels."""

    x: np.ndarray
    y: np.ndarray | None
    true_p: np.ndarray | None = None  # (N, T) true end-to-end probabilities, if known

    def __len__(self) -> int:
        return len(self.x)


def _row_major(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    return np.ascontiguousarray(frame[columns].to_numpy(dtype=np.float32))


def encode(frame: pd.DataFrame, schema: FeatureSchema, *, with_labels: bool = True) -> EncodedData:
    x = schema.encode(frame)
    # Row-major: a frame's to_numpy() is column-major, and gathering batches of rows from
    # that layout took 8 times longer.
    y = _row_major(frame, list(schema.tasks)) if with_labels else None
    true_columns = [TRUE_PREFIX + t for t in schema.tasks]
    true_p = None
    if all(c in frame.columns for c in true_columns):
        true_p = _row_major(frame, true_columns)
    return EncodedData(x=x, y=y, true_p=true_p)


def load_split(
    path: str | Path, config: DataConfig, *, require_labels: bool = True
) -> pd.DataFrame:
    """Read the columns a config needs (and true probabilities if present), then check them."""
    columns = list(config.fields) + list(config.tasks) + [TRUE_PREFIX + t for t in config.tasks]
    if config.timestamp:
        columns.append(config.timestamp)
    frame = read_table(path, columns=columns)
    check_frame(frame, config, require_labels=require_labels)
    return frame


def time_split(
    frame: pd.DataFrame, timestamp: str | None, val_fraction: float = 0.1, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out the latest `val_fraction` of rows by time (randomly if there is no timestamp)."""
    n_val = max(1, int(round(len(frame) * val_fraction)))
    if n_val >= len(frame):
        raise DataError(f"too few rows ({len(frame)}) to hold out a validation split")
    if timestamp and timestamp in frame.columns:
        order = np.argsort(frame[timestamp].to_numpy(), kind="stable")
    else:
        order = np.random.default_rng(seed).permutation(len(frame))
    return frame.iloc[order[:-n_val]], frame.iloc[order[-n_val:]]
