"""Model outputs made into answers: monotone option, violations, unknown values, ranking."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from aitm.schema import UNKNOWN_INDEX, FeatureSchema
from serving.errors import RequestError

Columns = Mapping[str, Sequence[Any]]  # field -> one raw value per row


class Encoder:
    """The schema's encoding by plain dict lookups: the same values as `schema.encode` for
    checked request values (ints, strings, None; numbers for numeric fields), ~30x faster on a
    few rows than pandas. x is int64, or float64 (NaN for a missing number) when the schema has
    numeric fields."""

    def __init__(self, schema: FeatureSchema) -> None:
        self.names = schema.field_names
        self.fields = schema.fields
        self.maps = [{v: i + 1 for i, v in enumerate(f.vocabulary)} for f in schema.fields]
        self.dtype = np.float64 if schema.numeric_positions else np.int64

    def __call__(self, data: Columns | pd.DataFrame) -> tuple[np.ndarray, dict[str, int]]:
        """Raw columns (or a frame) -> (N, F) encoded rows, plus per categorical field the count
        of non-null unknown values. RequestError (422) naming the field for a numeric field's
        value that is not a number."""
        n = len(data) if isinstance(data, pd.DataFrame) else len(data[self.names[0]])
        x = np.empty((len(self.names), n), dtype=self.dtype)
        unknown = {}
        for j, (spec, index) in enumerate(zip(self.fields, self.maps)):
            values = data[spec.name]
            if isinstance(values, pd.Series):
                values = values.tolist()
            if spec.is_numeric:
                x[j] = spec.standardize(_numbers(spec.name, values))
                continue
            column = [index.get(v, UNKNOWN_INDEX) for v in values]
            x[j] = column
            if UNKNOWN_INDEX in column:
                count = sum(
                    1 for v, c in zip(values, column) if c == UNKNOWN_INDEX and v is not None
                )
                if count:
                    unknown[spec.name] = count
        return np.ascontiguousarray(x.T), unknown


def _numbers(name: str, values: Sequence[Any]) -> np.ndarray:
    """A numeric field's request values (int or float, None for missing) -> float64, NaN for
    None."""
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        if v is None:
            out[i] = np.nan
        elif isinstance(v, int | float | np.number) and not isinstance(v, bool | np.bool_):
            out[i] = v
        else:
            raise RequestError(f"numeric field {name!r}: {v!r} is not a number")
    return out


def encode(
    schema: FeatureSchema, frame: Columns | pd.DataFrame
) -> tuple[np.ndarray, dict[str, int]]:
    """`Encoder(schema)(frame)`, for one-off calls."""
    return Encoder(schema)(frame)


def violations(probs: np.ndarray) -> int:
    """Rows where a later funnel step is more probable than an earlier one."""
    if probs.shape[1] < 2:
        return 0
    return int((np.diff(probs, axis=1) > 0).any(axis=1).sum())


def monotone(probs: np.ndarray) -> np.ndarray:
    """Running minimum along the funnel: p(step t) <= p(step t-1) for every row."""
    return np.minimum.accumulate(probs, axis=1)


def per_task(probs: np.ndarray, tasks: Sequence[str]) -> list[dict[str, float]]:
    return [dict(zip(tasks, row)) for row in np.asarray(probs, dtype=np.float64).tolist()]


@dataclass(frozen=True)
class Ranked:
    order: np.ndarray  # candidate positions, best first
    scores: np.ndarray  # (N,) score of each candidate, in request order


def rank(
    probs: np.ndarray, tasks: Sequence[str], weights: Sequence[float], objectives: Sequence[str]
) -> Ranked:
    """score = weight * p(objective); ties keep the request order."""
    column = [list(tasks).index(o) for o in objectives]
    chosen = probs[np.arange(len(probs)), column]
    scores = np.asarray(weights, dtype=np.float64) * chosen
    order = np.argsort(-scores, kind="stable")
    return Ranked(order=order, scores=scores)
