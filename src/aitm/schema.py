"""The feature schema: fields, vocabularies and tasks, derived once from training data.

It travels inside the model artifact so that serving and monitoring encode exactly as training did.
Index 0 of every field is the unknown bucket: values never seen, rarer than `min_count`, or null.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np
import pandas as pd

FieldType = Literal["int", "str"]
UNKNOWN_INDEX = 0


@dataclass(frozen=True)
class FieldSpec:
    name: str
    dtype: FieldType
    vocabulary: tuple[Any, ...]  # raw values; value vocabulary[i] has index i + 1
    embedding_dim: int

    @property
    def cardinality(self) -> int:
        """Rows of this field's embedding table, the unknown bucket included."""
        return len(self.vocabulary) + 1

    @cached_property
    def _index(self) -> pd.Index:
        return pd.Index(self.vocabulary, dtype="int64" if self.dtype == "int" else "object")

    def encode(self, values: pd.Series | np.ndarray | list) -> np.ndarray:
        """Raw values (N,) -> indices (N,) int64, unknown or null values -> 0."""
        series = values if isinstance(values, pd.Series) else pd.Series(values)
        if isinstance(series.dtype, pd.CategoricalDtype):
            category_index = self.encode(series.cat.categories)
            codes = series.cat.codes.to_numpy()
            out = np.where(codes >= 0, category_index[codes], UNKNOWN_INDEX)
            return out.astype(np.int64)
        if self.dtype == "int":
            series = _as_int_values(series)
        else:
            series = series.astype(object)
        positions = self._index.get_indexer(series)
        return (positions + 1).astype(np.int64)  # -1 (not found) becomes 0


def _as_int_values(series: pd.Series) -> pd.Series:
    if pd.api.types.is_integer_dtype(series.dtype):
        return series
    numeric = pd.to_numeric(series, errors="coerce")
    integral = numeric.notna() & (numeric == np.floor(numeric))
    return numeric.where(integral).astype("Int64")


@dataclass(frozen=True)
class FeatureSchema:
    fields: tuple[FieldSpec, ...]
    tasks: tuple[str, ...]  # funnel order
    min_count: int = 1
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the Feast feature service

    def __post_init__(self) -> None:
        if not self.fields:
            raise ValueError("a feature schema needs at least one field")
        if len(self.tasks) < 2:
            raise ValueError(f"a feature schema needs at least 2 tasks, got {self.tasks}")

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def cardinalities(self) -> list[int]:
        return [f.cardinality for f in self.fields]

    def field(self, name: str) -> FieldSpec:
        for spec in self.fields:
            if spec.name == name:
                return spec
        raise KeyError(f"no field {name!r} in the schema (fields: {self.field_names})")

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """A frame holding every field -> indices (N, F) int64, in schema order."""
        missing = [name for name in self.field_names if name not in frame.columns]
        if missing:
            raise ValueError(f"missing field columns: {missing}")
        out = np.empty((len(frame), len(self.fields)), dtype=np.int64)
        for j, spec in enumerate(self.fields):
            out[:, j] = spec.encode(frame[spec.name])
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "tasks": list(self.tasks),
            "min_count": self.min_count,
            "extra": self.extra,
            "fields": [
                {
                    "name": f.name,
                    "dtype": f.dtype,
                    "embedding_dim": f.embedding_dim,
                    "vocabulary": list(f.vocabulary),
                }
                for f in self.fields
            ],
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FeatureSchema:
        fields = tuple(
            FieldSpec(
                name=f["name"],
                dtype=f["dtype"],
                vocabulary=tuple(f["vocabulary"]),
                embedding_dim=int(f["embedding_dim"]),
            )
            for f in raw["fields"]
        )
        return cls(
            fields=fields,
            tasks=tuple(raw["tasks"]),
            min_count=int(raw.get("min_count", 1)),
            extra=dict(raw.get("extra", {})),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> FeatureSchema:
        return cls.from_dict(json.loads(text))


def infer_field_type(name: str, column: pd.Series) -> FieldType:
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return infer_field_type(name, pd.Series(dtype.categories))
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        values = column.dropna()
        if (values == np.floor(values)).all():
            return "int"
        raise ValueError(
            f"field {name!r} holds non-integral numbers; fields take integers or strings"
        )
    values = column.dropna()
    kinds = {type(v) for v in values.head(10_000)}
    if kinds <= {str}:
        return "str"
    raise ValueError(f"field {name!r} mixes value types {sorted(k.__name__ for k in kinds)}")


def build_schema(
    frame: pd.DataFrame,
    fields: list[str],
    tasks: list[str],
    *,
    min_count: int = 1,
    embedding_dim: int = 5,
) -> FeatureSchema:
    """Vocabulary per field: values seen at least `min_count` times, most frequent first."""
    specs = []
    for name in fields:
        column = frame[name]
        dtype = infer_field_type(name, column)
        counts = column.value_counts(dropna=True, sort=False)
        counts = counts[counts >= min_count]
        if dtype == "int":
            counts.index = counts.index.astype("int64")
        counts = counts.sort_index().sort_values(ascending=False, kind="stable")
        vocabulary = counts.index.to_numpy()
        vocabulary = tuple(int(v) for v in vocabulary) if dtype == "int" else tuple(vocabulary)
        specs.append(FieldSpec(name, dtype, vocabulary, embedding_dim))
    return FeatureSchema(fields=tuple(specs), tasks=tuple(tasks), min_count=min_count)
