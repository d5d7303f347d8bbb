"""The reference window: the promoted model's evaluation window, its predictions and labels.

The training workflow builds it from its evaluation window and the registry stores it with the
model it promotes (registry.store); the monitoring job compares every window of logged
predictions with it. A reference folder is self-describing:

    reference.parquet  model input fields (raw values), p_<task> per task, <task> labels
    schema.json        the model's feature schema (fields, vocabularies, tasks in funnel order)
    reference.json     model tag, evaluation window, rows

Every name the monitoring layer uses (fields, which of them are numbers, the funnel's steps)
comes from that schema and the dataset spec inside it, never from the simulator's names. No
Evidently here: the training workflow imports this module to write the folder.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aitm.dataset import DatasetSpec, spec_of
from aitm.schema import FeatureSchema

FRAME = "reference.parquet"
SCHEMA = "schema.json"
INFO = "reference.json"
PROB_PREFIX = "p_"  # column of a task's predicted end-to-end probability
NUMERIC = "float"  # FieldSpec dtype of a numeric field (a number, not a category)


def prob_column(task: str) -> str:
    return PROB_PREFIX + task


def numeric_fields(schema: FeatureSchema) -> list[str]:
    """The schema's numeric fields, in schema order; every other field is a category."""
    return [f.name for f in schema.fields if f.dtype == NUMERIC]


@dataclass(frozen=True)
class Reference:
    frame: pd.DataFrame
    schema: FeatureSchema
    info: dict[str, Any]
    path: Path

    @property
    def tasks(self) -> list[str]:
        """The model's funnel steps, in order."""
        return list(self.schema.tasks)

    @property
    def fields(self) -> list[str]:
        """The model's input fields, in schema order."""
        return self.schema.field_names

    @property
    def numeric(self) -> list[str]:
        return numeric_fields(self.schema)

    @property
    def spec(self) -> DatasetSpec | None:
        """The dataset spec the model was trained on (carried in its schema), or None for a
        model trained without one."""
        return spec_of(self.schema)


def write_reference(
    out_dir: str | Path,
    frame: pd.DataFrame,
    probs: np.ndarray,
    schema: FeatureSchema,
    info: dict[str, Any],
) -> Path:
    """Write a reference folder from model inputs + labels (`frame`) and (N, T) `probs`."""
    tasks = list(schema.tasks)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (len(frame), len(tasks)):
        raise ValueError(f"probs must be ({len(frame)}, {len(tasks)}), got {probs.shape}")
    missing = [c for c in [*schema.field_names, *tasks] if c not in frame.columns]
    if missing:
        raise ValueError(f"the reference frame lacks columns {missing}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame({name: _plain(frame[name]) for name in schema.field_names})
    for t, task in enumerate(tasks):
        table[prob_column(task)] = probs[:, t]
    for task in tasks:
        table[task] = frame[task].to_numpy(dtype=np.float64)
    table.to_parquet(out / FRAME, index=False)
    (out / SCHEMA).write_text(schema.to_json())
    (out / INFO).write_text(json.dumps({"rows": len(table), **info}, indent=2, default=str))
    return out


def _plain(column: pd.Series) -> pd.Series:
    """Categoricals as their raw values (what the service logs)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.astype(column.cat.categories.dtype).reset_index(drop=True)
    return column.reset_index(drop=True)


def build_reference(
    model_dir: str | Path, frame: pd.DataFrame, out_dir: str | Path, info: dict[str, Any]
) -> Path:
    """Predict the evaluation window with the model and write the reference folder."""
    from aitm.inference import Predictor

    predictor = Predictor.load(model_dir)
    probs = predictor.predict(frame).to_numpy()
    return write_reference(out_dir, frame, probs, predictor.schema, info)


def load_reference(path: str | Path) -> Reference:
    path = Path(path)
    for name in (FRAME, SCHEMA, INFO):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path}: not a reference folder, {name} is missing")
    schema = FeatureSchema.from_json((path / SCHEMA).read_text())
    frame = pd.read_parquet(path / FRAME)
    info = json.loads((path / INFO).read_text())
    return Reference(frame=frame, schema=schema, info=info, path=path)


def copy_with_info(source: str | Path, out_dir: str | Path, **info: Any) -> Path:
    """A copy of a reference folder at out_dir/<name>, its info extended (the model tag once it
    is registered); the source stays as it was."""
    target = Path(out_dir) / Path(source).name
    shutil.copytree(source, target)
    old = json.loads((Path(source) / INFO).read_text())
    (target / INFO).write_text(json.dumps({**old, **info}, indent=2, default=str))
    return target
