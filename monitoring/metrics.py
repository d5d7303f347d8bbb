"""Custom Evidently metrics for a conversion funnel.

Each is a `SingleValueMetric` (tests such as `lte(0.01)` attach to it) whose calculation reads
the window (and the reference) as plain columns:

- `MonotonicityViolations`: share of rows where a later step's probability exceeds the earlier
  step's, for one adjacent pair or for any pair ("all").
- `ConversionRateChange`: observed end-to-end rate of a step in the window over the reference's,
  minus 1, on labelled rows only: the value the dashboard plots. The test on it is Evidently's
  comparison with the reference, on the built-in `MeanValue` of the label (`monitoring.report`).
- `CalibrationGap`: the calibration gap (observed end-to-end rate over the mean predicted
  probability, on labelled rows) of the window against the reference's.
- `StepAuc`: exact AUC of a step on labelled rows.
- `LabelCoverage`: share of the window's rows whose labels arrived.

Labels are NaN where they have not arrived; every label metric drops those rows first.
"""

from __future__ import annotations

import abc
from typing import List, TypeVar  # noqa: UP035 - Evidently's pydantic v1 models want these

import numpy as np
import pandas as pd
from evidently.core.metric_types import SingleValueCalculation, SingleValueMetric

from aitm.evaluation import exact_auc
from monitoring.reference import prob_column

ALL_PAIRS = "all"


def pair_name(earlier: str, later: str) -> str:
    return f"{later}>{earlier}"


def _frame(dataset) -> pd.DataFrame:
    return dataset.as_dataframe()


def _labelled(frame: pd.DataFrame, label: str) -> pd.DataFrame:
    return frame[frame[label].notna()]


TMetric = TypeVar("TMetric", bound=SingleValueMetric)


class _EachWindow(SingleValueCalculation[TMetric], abc.ABC):
    """One value of the window, and one of the reference when there is one."""

    @abc.abstractmethod
    def value(self, frame: pd.DataFrame) -> float: ...

    def calculate(self, context, current_data, reference_data):
        current = self.result(self.value(_frame(current_data)))
        if reference_data is None:
            return current
        return current, self.result(self.value(_frame(reference_data)))


class _ChangeVsReference(SingleValueCalculation[TMetric], abc.ABC):
    """A statistic of the window over the reference's, minus 1."""

    @abc.abstractmethod
    def statistic(self, frame: pd.DataFrame) -> float: ...

    def calculate(self, context, current_data, reference_data):
        if reference_data is None:
            raise ValueError(f"{type(self.metric).__name__} needs the reference window")
        current = self.statistic(_frame(current_data))
        return self.result(float(current / self.statistic(_frame(reference_data)) - 1.0))


class MonotonicityViolations(SingleValueMetric):
    tasks: List[str]  # funnel order; reads their p_<task> columns  # noqa: UP006
    pair: str = ALL_PAIRS  # "<later>><earlier>" of two adjacent tasks, or "all"


class MonotonicityViolationsCalculation(_EachWindow[MonotonicityViolations]):
    def value(self, frame: pd.DataFrame) -> float:
        tasks = self.metric.tasks
        probs = frame[[prob_column(t) for t in tasks]].to_numpy(dtype=np.float64)
        later_gt = probs[:, 1:] > probs[:, :-1]  # (N, T-1)
        if self.metric.pair == ALL_PAIRS:
            bad = later_gt.any(axis=1)
        else:
            pairs = [pair_name(a, b) for a, b in zip(tasks, tasks[1:])]
            if self.metric.pair not in pairs:
                raise ValueError(f"pair must be one of {pairs} or {ALL_PAIRS!r}")
            bad = later_gt[:, pairs.index(self.metric.pair)]
        return float(bad.mean()) if len(bad) else 0.0

    def display_name(self) -> str:
        return f"Funnel-order violations ({self.metric.pair})"


class ConversionRateChange(SingleValueMetric):
    """A value for the dashboard only: a dashboard plots each window's own metric values, and
    Evidently's comparison with the reference yields a test status, not a value to plot."""

    label: str  # 0/1 end-to-end label column of the step (NaN: not arrived)


class ConversionRateChangeCalculation(_ChangeVsReference[ConversionRateChange]):
    def statistic(self, frame: pd.DataFrame) -> float:
        return _labelled(frame, self.metric.label)[self.metric.label].mean()

    def display_name(self) -> str:
        return f"Conversion rate change vs reference ({self.metric.label})"


class CalibrationGap(SingleValueMetric):
    """Value: the calibration ratio (observed / mean predicted) of the window over the
    reference's, minus 1. The model's own miscalibration on its evaluation window cancels, so
    the value moves only when the world moves away from what the model predicts."""

    label: str
    prediction: str  # predicted end-to-end probability of the same step


def calibration_gap(frame: pd.DataFrame, label: str, prediction: str) -> float:
    """observed / mean predicted - 1, on labelled rows."""
    rows = _labelled(frame, label)
    return float(rows[label].mean() / rows[prediction].mean() - 1.0)


class CalibrationGapCalculation(_ChangeVsReference[CalibrationGap]):
    def statistic(self, frame: pd.DataFrame) -> float:
        return 1.0 + calibration_gap(frame, self.metric.label, self.metric.prediction)

    def display_name(self) -> str:
        return f"Calibration gap change vs reference ({self.metric.label})"


class StepAuc(SingleValueMetric):
    label: str
    prediction: str


class StepAucCalculation(_EachWindow[StepAuc]):
    def value(self, frame: pd.DataFrame) -> float:
        rows = _labelled(frame, self.metric.label)
        labels, scores = rows[self.metric.label], rows[self.metric.prediction]
        return exact_auc(labels.to_numpy(), scores.to_numpy())

    def display_name(self) -> str:
        return f"AUC ({self.metric.label})"


class LabelCoverage(SingleValueMetric):
    labels: List[str]  # label columns of every step  # noqa: UP006


class LabelCoverageCalculation(SingleValueCalculation[LabelCoverage]):
    def calculate(self, context, current_data, reference_data):
        frame = _frame(current_data)
        covered = frame[self.metric.labels].notna().all(axis=1)
        return self.result(float(covered.mean()) if len(covered) else 0.0)

    def display_name(self) -> str:
        return "Label coverage (share of rows whose labels arrived)"
