"""Model outputs made into answers: monotone option, violations, unknown values, ranking."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from aitm.schema import UNKNOWN_INDEX, FeatureSchema


def encode(schema: FeatureSchema, frame: pd.DataFrame) -> tuple[np.ndarray, dict[str, int]]:
    """Raw frame -> (N, F) indices, plus per field the count of non-null values unknown to it."""
    x = schema.encode(frame)
    unknown = {}
    for j, name in enumerate(schema.field_names):
        count = int(((x[:, j] == UNKNOWN_INDEX) & frame[name].notna().to_numpy()).sum())
        if count:
            unknown[name] = count
    return x, unknown


def violations(probs: np.ndarray) -> int:
    """Rows where a later funnel step is more probable than an earlier one."""
    if probs.shape[1] < 2:
        return 0
    return int((np.diff(probs, axis=1) > 0).any(axis=1).sum())


def monotone(probs: np.ndarray) -> np.ndarray:
    """Running minimum along the funnel: p(step t) <= p(step t-1) for every row."""
    return np.minimum.accumulate(probs, axis=1)


def per_task(probs: np.ndarray, tasks: Sequence[str]) -> list[dict[str, float]]:
    return [dict(zip(tasks, map(float, row))) for row in probs]


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
