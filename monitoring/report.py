"""The monitoring report: Evidently metrics and tests over one window, read back by name.

`run_report(window_frame, reference, config)` builds an Evidently `Report` of built-in metrics
(`ValueDrift`, `DriftedColumnsCount`, `MeanValue`) and the funnel metrics of
`monitoring.metrics`, runs it against the reference, and returns a `MonitoringResult`: every
figure under its own name and one `TestOutcome` per configured test (pass, fail, or skipped
with the reason, e.g. too few labelled positives). Results are looked up through the metric
objects (`snapshot.context.get_metric_result(metric)`), never by position. A step's conversion
rate is tested by Evidently's comparison with the reference: `eq(Reference(relative=...))` on
the `MeanValue` of its label.

Every name comes from the model's schema (`reference.schema`): its fields (numeric ones, dtype
"float", are numerical columns for Evidently, the others categorical) and its funnel steps, two
or more, whatever they are called. Per-step results and tests are named by those steps.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.core.metric_types import TestStatus
from evidently.core.report import Snapshot
from evidently.metrics import DriftedColumnsCount, MeanValue, ValueDrift
from evidently.tests import Reference as ReferenceValue
from evidently.tests import eq, gte, lte

from aitm.evaluation import exact_auc
from monitoring.config import MonitoringConfig
from monitoring.logs import LABELLED, Window
from monitoring.metrics import (
    ALL_PAIRS,
    CalibrationGap,
    ConversionRateChange,
    LabelCoverage,
    MonotonicityViolations,
    StepAuc,
    calibration_gap,
    pair_name,
)
from monitoring.reference import Reference, prob_column

PASS, FAIL, SKIPPED = "pass", "fail", "skipped"
# Groups of tests; a failure in one of DRIFT_GROUPS can trigger retraining.
FEATURE_DRIFT, PREDICTION_DRIFT = "feature_drift", "prediction_drift"
CONVERSION_RATE, CALIBRATION, AUC = "conversion_rate", "calibration", "auc"
MONOTONICITY, LABEL_COVERAGE = "monotonicity", "label_coverage"
DRIFT_GROUPS = (FEATURE_DRIFT, PREDICTION_DRIFT, CONVERSION_RATE, CALIBRATION, AUC)


@dataclass(frozen=True)
class TestOutcome:
    name: str  # e.g. "conversion_rate[<step>]"
    group: str
    status: str  # pass, fail, skipped
    value: float | None
    condition: str  # e.g. "|value| <= 0.25"
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def describe(self) -> str:
        value = "n/a" if self.value is None else f"{self.value:.4f}"
        extra = f" ({self.detail})" if self.detail else ""
        return f"{self.status.upper():7} {self.name}: {value}, wants {self.condition}{extra}"


@dataclass(frozen=True)
class StepSummary:
    task: str
    prediction_drift: float
    mean_predicted: float  # over every row of the window
    labelled_rows: int
    positives: int
    observed_rate: float | None  # on labelled rows; None without labels
    reference_rate: float
    rate_change: float | None  # observed / reference - 1
    calibration_gap: float | None  # observed / mean predicted on labelled rows - 1
    reference_calibration_gap: float
    calibration_change: float | None  # (1 + gap) / (1 + reference gap) - 1: the tested value
    auc: float | None
    reference_auc: float


@dataclass
class MonitoringResult:
    window: Window
    rows: int
    labelled_rows: int
    label_coverage: float
    model_versions: dict[str, int]
    reference_model: str | None
    feature_drift: dict[str, float]  # drift score per input field in the test
    drifted_fields: list[str]
    drifted_share: float
    steps: dict[str, StepSummary]  # per funnel step of the model, in funnel order
    violations: dict[str, float]  # per adjacent pair, and "all"
    tests: list[TestOutcome]
    numeric_fields: list[str] = field(default_factory=list)  # drift-tested as numbers
    # Fields without a single value in the window or the reference: left out of the drift test.
    empty_fields: list[str] = field(default_factory=list)
    snapshot: Snapshot | None = field(default=None, repr=False, compare=False)

    @property
    def failed(self) -> list[TestOutcome]:
        return [t for t in self.tests if t.failed]

    @property
    def passed(self) -> bool:
        return not self.failed

    @property
    def drift_failed(self) -> bool:
        """A failed drift, rate, calibration or AUC test: what retraining can fix."""
        return any(t.group in DRIFT_GROUPS for t in self.failed)

    def test(self, name: str) -> TestOutcome:
        for t in self.tests:
            if t.name == name:
                return t
        raise KeyError(f"no test {name!r}; tests: {[t.name for t in self.tests]}")

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("snapshot", "window")}
        out["window"] = {"start": self.window.start.isoformat(), "end": self.window.end.isoformat()}
        out["passed"] = self.passed
        out["failed_tests"] = [t.name for t in self.failed]
        return _finite(out)

    def describe(self) -> str:
        lines = [
            f"window {self.window.describe()}: {self.rows:,} predictions, "
            f"{self.labelled_rows:,} labelled ({self.label_coverage:.1%})",
            f"model versions: {self.model_versions} (reference: {self.reference_model})",
            f"drifted input fields: {self.drifted_fields or 'none'} "
            f"(share {self.drifted_share:.2f})",
        ]
        for s in self.steps.values():
            rate = "n/a" if s.observed_rate is None else f"{s.observed_rate:.4f}"
            lines.append(
                f"  {s.task:<12} observed {rate} (reference {s.reference_rate:.4f}), "
                f"predicted {s.mean_predicted:.4f}, prediction drift {s.prediction_drift:.3f}"
            )
        lines.append(f"funnel-order violations: {self.violations[ALL_PAIRS]:.4%} of rows")
        lines += [t.describe() for t in self.tests]
        failed = ", ".join(t.name for t in self.failed)
        lines.append(f"FAILED tests: {failed}" if failed else "all tests passed")
        return "\n".join(lines)


def _finite(value: Any) -> Any:
    """NaN and infinities as null: JSON has no NaN."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def drift_fields(reference: Reference, config: MonitoringConfig) -> list[str]:
    """Input fields in the drift test, in schema order: every numeric field, and categorical
    ones with at most drift_max_categories values."""
    numeric = set(reference.numeric)
    return [
        f.name
        for f in reference.schema.fields
        if f.name in numeric or len(f.vocabulary) <= config.drift_max_categories
    ]


def _empty(frame: pd.DataFrame, column: str) -> bool:
    return column not in frame or not frame[column].notna().any()


@dataclass(frozen=True)
class _DriftColumns:
    """The input fields in the drift test, by kind, and those left out for want of values."""

    fields: list[str]
    numeric: list[str]
    categorical: list[str]
    empty: list[str]
    threshold: dict[str, float]  # a field drifted at or above this score


def _drift_columns(
    frame: pd.DataFrame, reference: Reference, config: MonitoringConfig
) -> _DriftColumns:
    # An all-null column has no distribution to compare (Evidently refuses it).
    candidates = drift_fields(reference, config)
    empty = [f for f in candidates if _empty(frame, f) or _empty(reference.frame, f)]
    fields = [f for f in candidates if f not in empty]
    numeric = [f for f in reference.numeric if f in fields]
    threshold = {f: config.numeric_drift_threshold if f in numeric else config.drift_threshold
                 for f in fields}  # fmt: skip
    categorical = [f for f in fields if f not in numeric]
    return _DriftColumns(fields, numeric, categorical, empty, threshold)


@dataclass
class _Metrics:
    """The report's metrics by what they measure. Label metrics exist only for the steps with
    enough labelled positives; the others are in `skipped`, with the reason."""

    coverage: LabelCoverage
    drifted: DriftedColumnsCount | None  # None: no input field to test
    field_drift: dict[str, ValueDrift]
    prediction_drift: dict[str, ValueDrift]
    mean_predicted: dict[str, MeanValue]
    violations: dict[str, MonotonicityViolations]  # per adjacent pair, and ALL_PAIRS
    reference_auc: dict[str, float]
    observed: dict[str, MeanValue] = field(default_factory=dict)  # carries the rate test
    rate_change: dict[str, ConversionRateChange] = field(default_factory=dict)
    calibration: dict[str, CalibrationGap] = field(default_factory=dict)
    auc: dict[str, StepAuc] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def in_order(self) -> list:
        """Every metric, in the order of the HTML report."""
        return [
            self.coverage, *([self.drifted] if self.drifted else []), *self.field_drift.values(),
            *self.prediction_drift.values(), *self.mean_predicted.values(),
            *self.observed.values(), *self.rate_change.values(), *self.calibration.values(),
            *self.auc.values(), *self.violations.values(),
        ]  # fmt: skip


def _input_metrics(
    columns: _DriftColumns, config: MonitoringConfig
) -> tuple[dict[str, ValueDrift], DriftedColumnsCount | None]:
    """Drift per input field (scores only) and the share of drifted fields (tested)."""
    field_drift = {
        f: ValueDrift(column=f, threshold=columns.threshold[f], tests=[],
                      method=config.numeric_drift_method if f in columns.numeric
                      else config.drift_method)
        for f in columns.fields
    }  # fmt: skip
    if not columns.fields:
        return field_drift, None
    drifted = DriftedColumnsCount(
        columns=columns.fields, cat_method=config.drift_method,
        cat_threshold=config.drift_threshold, num_method=config.numeric_drift_method,
        num_threshold=config.numeric_drift_threshold, tests=[],
        share_tests=[lte(config.max_drifted_share)],
    )  # fmt: skip
    return field_drift, drifted


def _prediction_drift(task: str, config: MonitoringConfig) -> ValueDrift:
    limit = config.prediction_drift_threshold
    return ValueDrift(column=prob_column(task), method=config.prediction_drift_method,
                      threshold=limit, tests=[lte(limit)])  # fmt: skip


def _funnel_metrics(
    tasks: list[str], config: MonitoringConfig
) -> dict[str, MonotonicityViolations]:
    """Funnel-order violations per adjacent pair (values) and over any pair (tested)."""
    pairs = [pair_name(a, b) for a, b in zip(tasks, tasks[1:])]
    overall = MonotonicityViolations(tasks=tasks, pair=ALL_PAIRS,
                                     tests=[lte(config.max_violation_rate)])  # fmt: skip
    return {p: MonotonicityViolations(tasks=tasks, pair=p, tests=[]) for p in pairs} | {
        ALL_PAIRS: overall
    }


def _positives(frame: pd.DataFrame, task: str) -> int:
    return int(frame[task].sum()) if len(frame) else 0


def _add_label_metrics(metrics: _Metrics, task: str, config: MonitoringConfig) -> None:
    limit, gap = config.max_rate_change, config.max_calibration_change
    prediction = prob_column(task)
    # Evidently's comparison with the reference: the window's mean label (labelled rows: pandas
    # skips NaN) within limit x the reference's, i.e. |observed / reference - 1| <= limit.
    metrics.observed[task] = MeanValue(column=task, tests=[eq(ReferenceValue(relative=limit))])
    metrics.rate_change[task] = ConversionRateChange(label=task, tests=[])
    metrics.calibration[task] = CalibrationGap(label=task, prediction=prediction,
                                               tests=[gte(-gap), lte(gap)])  # fmt: skip
    floor = metrics.reference_auc[task] - config.max_auc_drop
    metrics.auc[task] = StepAuc(label=task, prediction=prediction, tests=[gte(floor)])


def _plan(reference: Reference, config: MonitoringConfig, columns: _DriftColumns,
          labelled: pd.DataFrame) -> _Metrics:  # fmt: skip
    tasks, ref = reference.tasks, reference.frame
    field_drift, drifted = _input_metrics(columns, config)
    metrics = _Metrics(
        coverage=LabelCoverage(labels=tasks, tests=[gte(config.min_label_coverage)]),
        drifted=drifted,
        field_drift=field_drift,
        prediction_drift={t: _prediction_drift(t, config) for t in tasks},
        mean_predicted={t: MeanValue(column=prob_column(t), tests=[]) for t in tasks},
        violations=_funnel_metrics(tasks, config),
        reference_auc={t: exact_auc(ref[t].to_numpy(), ref[prob_column(t)].to_numpy())
                       for t in tasks},
    )  # fmt: skip
    # Label metrics only where the labelled rows hold enough positives to say anything.
    for t in tasks:
        window, base = _positives(labelled, t), _positives(ref, t)
        if min(window, base) < config.min_positives:
            metrics.skipped[t] = (f"{window} labelled positives in the window, {base} in the "
                                  f"reference; min_positives={config.min_positives}")  # fmt: skip
        else:
            _add_label_metrics(metrics, t, config)
    return metrics


def _dataset(
    frame: pd.DataFrame, categorical: list[str], numeric: list[str], tasks: list[str]
) -> Dataset:
    numbers = [*numeric, *(prob_column(t) for t in tasks), *tasks]
    table = frame[[*categorical, *numbers]].copy()
    table[[*numeric, *tasks]] = table[[*numeric, *tasks]].astype(np.float64)
    definition = DataDefinition(categorical_columns=categorical, numerical_columns=numbers)
    return Dataset.from_pandas(table, data_definition=definition)


def _snapshot(metrics: _Metrics, frame: pd.DataFrame, reference: Reference,
              columns: _DriftColumns, window: Window) -> Snapshot:  # fmt: skip
    def data(table: pd.DataFrame) -> Dataset:
        return _dataset(table, columns.categorical, columns.numeric, reference.tasks)

    return Report(metrics.in_order(), include_tests=True).run(
        current_data=data(frame),
        reference_data=data(reference.frame),
        timestamp=window.end.to_pydatetime().replace(tzinfo=None),
        metadata={"window_start": window.start.isoformat(), "window_end": window.end.isoformat()},
        tags=["aitm", "window"],
    )


class _Results:
    """A run's results, looked up through the metric objects."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.get = snapshot.context.get_metric_result

    def value(self, metric) -> float:
        return float(self.get(metric).value)

    def status(self, metric) -> str:
        statuses = [t.status for t in self.get(metric).tests]
        return FAIL if any(s in (TestStatus.FAIL, TestStatus.ERROR) for s in statuses) else PASS

    def outcome(self, name: str, group: str, metric, condition: str) -> TestOutcome:
        """The outcome of the tests of a single-value metric."""
        return TestOutcome(name, group, self.status(metric), self.value(metric), condition)


def _drifted_share(metrics: _Metrics, results: _Results) -> float:
    return 0.0 if metrics.drifted is None else float(results.get(metrics.drifted).share.value)


def _feature_drift_test(metrics: _Metrics, results: _Results, columns: _DriftColumns,
                        drifted: list[str], config: MonitoringConfig) -> TestOutcome:  # fmt: skip
    condition = f"share of drifted fields <= {config.max_drifted_share}"
    left_out = f"; no values, not tested: {', '.join(columns.empty)}" if columns.empty else ""
    if metrics.drifted is None:
        return TestOutcome("feature_drift", FEATURE_DRIFT, SKIPPED, None, condition,
                           f"no input field to test{left_out}")  # fmt: skip
    return TestOutcome("feature_drift", FEATURE_DRIFT, results.status(metrics.drifted),
                       _drifted_share(metrics, results), condition,
                       f"drifted: {', '.join(drifted) or 'none'}{left_out}")  # fmt: skip


def _label_tests(metrics: _Metrics, results: _Results, task: str,
                 config: MonitoringConfig) -> list[TestOutcome]:  # fmt: skip
    """The rate, calibration and AUC tests of one step (skipped: too few positives). Each is
    (name, group, metric of the value, metric whose test decides, condition): the rate's test
    is Evidently's, on the label's mean; its value is the change the dashboard plots."""
    tests = (
        ("conversion_rate", CONVERSION_RATE, metrics.rate_change, metrics.observed,
         f"|observed / reference - 1| <= {config.max_rate_change}"),
        ("calibration", CALIBRATION, metrics.calibration, metrics.calibration,
         f"|window's (observed / predicted) / reference's - 1| <= "
         f"{config.max_calibration_change}"),
        ("auc", AUC, metrics.auc, metrics.auc,
         f">= reference {metrics.reference_auc[task]:.4f} - {config.max_auc_drop}"),
    )  # fmt: skip
    if task in metrics.skipped:
        reason = metrics.skipped[task]
        return [TestOutcome(f"{name}[{task}]", group, SKIPPED, None, "", reason)
                for name, group, *_ in tests]  # fmt: skip
    return [
        TestOutcome(f"{name}[{task}]", group, results.status(tested[task]),
                    results.value(valued[task]), condition)
        for name, group, valued, tested, condition in tests
    ]  # fmt: skip


def _tests(metrics: _Metrics, results: _Results, columns: _DriftColumns, drifted: list[str],
           tasks: list[str], config: MonitoringConfig) -> list[TestOutcome]:  # fmt: skip
    """One outcome per configured test, in the order of the summary."""
    coverage = results.outcome("label_coverage", LABEL_COVERAGE, metrics.coverage,
                               f">= {config.min_label_coverage}")  # fmt: skip
    prediction = [
        results.outcome(f"prediction_drift[{t}]", PREDICTION_DRIFT, m,
                        f"<= {config.prediction_drift_threshold}")
        for t, m in metrics.prediction_drift.items()
    ]  # fmt: skip
    monotonicity = results.outcome(
        "monotonicity", MONOTONICITY, metrics.violations[ALL_PAIRS],
        f"share of rows with a later step above an earlier <= {config.max_violation_rate}",
    )  # fmt: skip
    return [coverage, _feature_drift_test(metrics, results, columns, drifted, config),
            *prediction, *(o for t in tasks for o in _label_tests(metrics, results, t, config)),
            monotonicity]  # fmt: skip


def _step(metrics: _Metrics, results: _Results, task: str, labelled: pd.DataFrame,
          ref: pd.DataFrame) -> StepSummary:  # fmt: skip
    has = task not in metrics.skipped
    prediction = prob_column(task)

    def label_value(by_task: dict) -> float | None:
        return results.value(by_task[task]) if has else None

    return StepSummary(
        task=task,
        prediction_drift=results.value(metrics.prediction_drift[task]),
        mean_predicted=results.value(metrics.mean_predicted[task]),
        labelled_rows=len(labelled),
        positives=_positives(labelled, task),
        observed_rate=label_value(metrics.observed),
        reference_rate=float(ref[task].mean()),
        rate_change=label_value(metrics.rate_change),
        calibration_gap=calibration_gap(labelled, task, prediction) if has else None,
        reference_calibration_gap=calibration_gap(ref, task, prediction),
        calibration_change=label_value(metrics.calibration),
        auc=label_value(metrics.auc),
        reference_auc=metrics.reference_auc[task],
    )


def run_report(
    frame: pd.DataFrame,
    reference: Reference,
    config: MonitoringConfig,
    window: Window,
) -> MonitoringResult:
    """Evidently report of one window (rows of `monitoring.logs.load_window`)."""
    if len(frame) < config.min_rows:
        raise ValueError(
            f"the window {window.describe()} holds {len(frame)} logged predictions, fewer "
            f"than min_rows={config.min_rows}: nothing to monitor"
        )
    columns = _drift_columns(frame, reference, config)
    labelled = frame[frame[LABELLED]] if LABELLED in frame else frame.iloc[:0]
    metrics = _plan(reference, config, columns, labelled)
    snapshot = _snapshot(metrics, frame, reference, columns, window)
    results = _Results(snapshot)
    scores = {f: results.value(m) for f, m in metrics.field_drift.items()}
    drifted = [f for f, s in scores.items() if s >= columns.threshold[f]]
    tests = _tests(metrics, results, columns, drifted, reference.tasks, config)
    versions = frame["model_version"].value_counts().to_dict() if "model_version" in frame else {}
    return MonitoringResult(
        window=window,
        rows=len(frame),
        labelled_rows=len(labelled),
        label_coverage=results.value(metrics.coverage),
        model_versions={str(k): int(v) for k, v in versions.items()},
        reference_model=reference.info.get("model_tag"),
        feature_drift=scores,
        drifted_fields=drifted,
        drifted_share=_drifted_share(metrics, results),
        steps={t: _step(metrics, results, t, labelled, reference.frame) for t in reference.tasks},
        violations={p: results.value(m) for p, m in metrics.violations.items()},
        tests=tests,
        numeric_fields=columns.numeric,
        empty_fields=columns.empty,
        snapshot=snapshot,
    )
