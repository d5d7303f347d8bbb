"""The feature schema: fields, vocabularies and tasks, derived once from training data.

It travels inside the model artifact so that serving and monitoring encode exactly as training did.
Index 0 of every categorical field is the unknown bucket: values never seen, rarer than
`min_count`, or null. A numeric field (dtype "float") has no vocabulary: it is standardized with
the training frame's mean and std, and a missing value encodes as NaN.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from aitm.config import Config
    from aitm.dataset import DatasetSpec

FieldType = Literal["int", "str", "float"]
UNKNOWN_INDEX = 0
# Standardized values are clipped to +-CLIP_STD: a value far outside the training range would
# otherwise scale its embedding without bound and saturate every layer above it.
CLIP_STD = 5.0
_NUMBER_KINDS = {"integer", "floating", "mixed-integer-float", "decimal", "empty"}


@dataclass(frozen=True)
class FieldSpec:
    name: str
    dtype: FieldType
    vocabulary: tuple[Any, ...]  # raw values; value vocabulary[i] has index i + 1; () if numeric
    embedding_dim: int
    mean: float = 0.0  # numeric fields: the training frame's mean and std (others ignore them)
    std: float = 1.0

    def __post_init__(self) -> None:
        if self.is_numeric:
            if self.vocabulary:
                raise ValueError(f"numeric field {self.name!r} takes no vocabulary")
            if not (math.isfinite(self.mean) and math.isfinite(self.std) and self.std > 0):
                raise ValueError(
                    f"numeric field {self.name!r} needs a finite mean and a std > 0, got "
                    f"{self.mean}, {self.std}"
                )

    @property
    def is_numeric(self) -> bool:
        return self.dtype == "float"

    @property
    def cardinality(self) -> int:
        """Rows of this field's embedding table: the unknown bucket and the vocabulary, or for a
        numeric field 2 (the "missing" and the "value" vector)."""
        return 2 if self.is_numeric else len(self.vocabulary) + 1

    def standardize(self, values: np.ndarray) -> np.ndarray:
        """Raw numbers (N,) float64, NaN for missing -> standardized and clipped, NaN kept."""
        return np.clip((values - self.mean) / self.std, -CLIP_STD, CLIP_STD)

    @cached_property
    def _index(self) -> pd.Index:
        return pd.Index(self.vocabulary, dtype="int64" if self.dtype == "int" else "object")

    def encode(self, values: pd.Series | np.ndarray | list) -> np.ndarray:
        """Raw values (N,) -> indices (N,) int64, unknown or null values -> 0; for a numeric
        field the standardized values (N,) float64, null -> NaN."""
        series = values if isinstance(values, pd.Series) else pd.Series(values)
        if self.is_numeric:
            return self.standardize(numeric_values(self.name, series))
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


def numeric_values(name: str, series: pd.Series) -> np.ndarray:
    """A numeric field's raw column -> float64 (N,), null -> NaN; ValueError naming the field
    if it holds anything but numbers (strings, booleans)."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        series = series.astype(dtype.categories.dtype if len(dtype.categories) else float)
        dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or not (
        pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_object_dtype(dtype)
    ):
        raise ValueError(f"numeric field {name!r} holds {dtype} values, not numbers")
    if pd.api.types.is_object_dtype(dtype):
        kind = pd.api.types.infer_dtype(series, skipna=True)
        if kind not in _NUMBER_KINDS:
            raise ValueError(f"numeric field {name!r} holds {kind} values, not numbers")
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


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

    @property
    def numeric_positions(self) -> tuple[int, ...]:
        """Positions (in field order) of the numeric fields; () when every field is a category."""
        return tuple(j for j, f in enumerate(self.fields) if f.is_numeric)

    def field(self, name: str) -> FieldSpec:
        for spec in self.fields:
            if spec.name == name:
                return spec
        raise KeyError(f"no field {name!r} in the schema (fields: {self.field_names})")

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """A frame holding every field -> (N, F) in schema order: indices as int64 when every
        field is a category; else float64, categorical columns holding their index (exact up to
        2^53) and numeric ones the standardized value or NaN."""
        missing = [name for name in self.field_names if name not in frame.columns]
        if missing:
            raise ValueError(f"missing field columns: {missing}")
        dtype = np.float64 if self.numeric_positions else np.int64
        out = np.empty((len(frame), len(self.fields)), dtype=dtype)
        for j, spec in enumerate(self.fields):
            out[:, j] = spec.encode(frame[spec.name])
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "tasks": list(self.tasks),
            "min_count": self.min_count,
            "extra": self.extra,
            "fields": [_field_dict(f) for f in self.fields],
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FeatureSchema:
        fields = tuple(
            FieldSpec(
                name=f["name"],
                dtype=f["dtype"],
                vocabulary=tuple(f["vocabulary"]),
                embedding_dim=int(f["embedding_dim"]),
                # Absent in artifacts written before numeric fields existed.
                mean=float(f.get("mean", 0.0)),
                std=float(f.get("std", 1.0)),
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


def _field_dict(f: FieldSpec) -> dict[str, Any]:
    out = {
        "name": f.name,
        "dtype": f.dtype,
        "embedding_dim": f.embedding_dim,
        "vocabulary": list(f.vocabulary),
    }
    if f.is_numeric:
        out.update(mean=f.mean, std=f.std)
    return out


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
            f"field {name!r} holds non-integral numbers; categorical fields take integers or "
            "strings (list a number-valued field in data.numeric)"
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
    numeric: list[str] | tuple[str, ...] = (),
) -> FeatureSchema:
    """Vocabulary per categorical field: values seen at least `min_count` times, most frequent
    first. Fields in `numeric` are numbers: their mean and std over the frame's non-missing
    values (std 1 for a constant or empty column)."""
    unknown = [name for name in numeric if name not in fields]
    if unknown:
        raise ValueError(f"numeric fields {unknown} are not among the fields {list(fields)}")
    specs = []
    for name in fields:
        column = frame[name]
        if name in numeric:
            specs.append(_numeric_spec(name, column, embedding_dim))
            continue
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


def fit_schema(frame: pd.DataFrame, config: Config) -> FeatureSchema:
    """The schema of a config's data section, its vocabularies and statistics from the frame."""
    return build_schema(
        frame,
        list(config.data.fields),
        list(config.data.tasks),
        min_count=config.data.min_count,
        embedding_dim=config.model.embedding_dim,
        numeric=list(config.data.numeric),
    )


def with_dataset(schema: FeatureSchema, spec: DatasetSpec) -> FeatureSchema:
    """The schema carrying the dataset spec (`extra["dataset"]`, every field's type filled in)
    and its feature service (`extra["feature_service"]`); read back by `aitm.dataset.spec_of`.

    ValueError if the spec's fields, tasks or numeric fields differ from the schema's.
    """
    numeric = [f.name for f in schema.fields if f.is_numeric]
    for what, ours, theirs in (
        ("fields", schema.field_names, list(spec.fields)),
        ("tasks", list(schema.tasks), list(spec.tasks)),
        ("numeric fields", numeric, [c for c in spec.fields if c in spec.numeric]),
    ):
        if ours != theirs:
            raise ValueError(
                f"dataset {spec.name!r}: its {what} {theirs} differ from the schema's {ours}"
            )
    types = {f.name: f.dtype for f in schema.fields if not f.is_numeric}
    content = spec.with_types(types).model_dump(mode="json", exclude={"base_dir"})
    extra = {**schema.extra, "dataset": content, "feature_service": spec.feature_service}
    return replace(schema, extra=extra)


def _numeric_spec(name: str, column: pd.Series, embedding_dim: int) -> FieldSpec:
    values = numeric_values(name, column)
    values = values[np.isfinite(values)]
    mean = float(values.mean()) if len(values) else 0.0
    std = float(values.std()) if len(values) else 0.0
    return FieldSpec(name, "float", (), embedding_dim, mean=mean, std=std if std > 0 else 1.0)
