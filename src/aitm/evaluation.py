"""Exact metrics of end-to-end funnel predictions: AUC, log loss, calibration, monotonicity."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


def exact_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve from ranks (ties share their mean rank); NaN if one class only."""
    y = np.asarray(labels).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    sorted_scores = s[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(s)]
    ranks = np.empty(len(s), dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def log_loss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-7) -> float:
    p = np.clip(np.asarray(probs, dtype=np.float64), eps, 1 - eps)
    y = np.asarray(labels, dtype=np.float64)
    return float(-(y * np.log(p) + (1 - y) * np.log1p(-p)).mean())


def violation_mask(probs: np.ndarray) -> np.ndarray:
    """(N, T) end-to-end probabilities -> (N,) rows where some step exceeds the one before."""
    probs = np.asarray(probs)
    return (probs[:, 1:] > probs[:, :-1]).any(axis=1)


@dataclass(frozen=True)
class Calibration:
    mean_prediction: float
    observed_rate: float
    ratio: float  # mean prediction / observed rate; 1 is calibrated


@dataclass(frozen=True)
class Evaluation:
    rows: int
    auc: dict[str, float]
    logloss: dict[str, float]
    calibration: dict[str, Calibration]
    violation_rate: float
    oracle_auc: dict[str, float] | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        if self.oracle_auc is None:
            out.pop("oracle_auc")
        return out

    @property
    def auc_sum(self) -> float:
        return float(sum(self.auc.values()))


def evaluate(
    tasks: list[str] | tuple[str, ...],
    labels: np.ndarray,
    probs: np.ndarray,
    true_probs: np.ndarray | None = None,
) -> Evaluation:
    """labels, probs and true_probs are (N, T) in funnel order."""
    labels = np.asarray(labels)
    probs = np.asarray(probs)
    if labels.shape != probs.shape or labels.ndim != 2 or labels.shape[1] != len(tasks):
        raise ValueError(
            f"labels {labels.shape} and probs {probs.shape} must both be (N, {len(tasks)})"
        )
    calibration = {}
    for t, task in enumerate(tasks):
        mean_p, rate = float(probs[:, t].mean()), float(labels[:, t].mean())
        calibration[task] = Calibration(mean_p, rate, mean_p / rate if rate > 0 else float("nan"))
    oracle = None
    if true_probs is not None:
        oracle = {task: exact_auc(labels[:, t], true_probs[:, t]) for t, task in enumerate(tasks)}
    return Evaluation(
        rows=len(labels),
        auc={task: exact_auc(labels[:, t], probs[:, t]) for t, task in enumerate(tasks)},
        logloss={task: log_loss(labels[:, t], probs[:, t]) for t, task in enumerate(tasks)},
        calibration=calibration,
        violation_rate=float(violation_mask(probs).mean()) if len(probs) else 0.0,
        oracle_auc=oracle,
    )


def finite(values: dict[str, float | None]) -> dict[str, float]:
    """The finite entries as floats: a kfp Metrics artifact takes no NaN and no None."""
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(v)}
