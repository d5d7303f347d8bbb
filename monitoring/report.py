"""The monitoring report: Evidently metrics and tests over one window, read back by name.

`run_report(window_frame, reference, config)` builds an Evidently `Report` of built-in metrics
(`ValueDrift`, `DriftedColumnsCount`, `MeanValue`) and the funnel metrics of
`monitoring.metrics`, runs it against the reference, and returns a `MonitoringResult`: every
figure under its own name and one `TestOutcome` per configured test (pass, fail, or skipped
with the reason, e.g. too few labelled positives). Results are looked up through the metric
objects (`snapshot.context.get_metric_result(metric)`), never by position.

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
from evidently.core.report import Snapshot
from evidently.legacy.tests.base_test import TestStatus
from evidently.metrics import DriftedColumnsCount, MeanValue, ValueDrift
from evidently.tests import gte, lte

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


def _dataset(
    frame: pd.DataFrame, categorical: list[str], numeric: list[str], tasks: list[str]
) -> Dataset:
    numbers = [*numeric, *(prob_column(t) for t in tasks), *tasks]
    table = frame[[*categorical, *numbers]].copy()
    table[[*numeric, *tasks]] = table[[*numeric, *tasks]].astype(np.float64)
    definition = DataDefinition(categorical_columns=categorical, numerical_columns=numbers)
    return Dataset.from_pandas(table, data_definition=definition)


def _status(result) -> str:
    statuses = [t.status for t in result.tests]
    return FAIL if any(s in (TestStatus.FAIL, TestStatus.ERROR) for s in statuses) else PASS


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
    tasks = reference.tasks
    ref = reference.frame
    # An all-null column has no distribution to compare (Evidently refuses it).
    candidates = drift_fields(reference, config)
    empty = [f for f in candidates if _empty(frame, f) or _empty(ref, f)]
    fields = [f for f in candidates if f not in empty]
    numeric = [f for f in reference.numeric if f in fields]
    categorical = [f for f in fields if f not in numeric]
    threshold = {f: config.numeric_drift_threshold if f in numeric else config.drift_threshold
                 for f in fields}  # fmt: skip
    labelled = frame[frame[LABELLED]] if LABELLED in frame else frame.iloc[:0]

    field_drift = {
        f: ValueDrift(column=f, threshold=threshold[f], tests=[],
                      method=config.numeric_drift_method if f in numeric else config.drift_method)
        for f in fields
    }  # fmt: skip
    drifted = (
        DriftedColumnsCount(
            columns=fields, cat_method=config.drift_method, cat_threshold=config.drift_threshold,
            num_method=config.numeric_drift_method, num_threshold=config.numeric_drift_threshold,
            tests=[], share_tests=[lte(config.max_drifted_share)],
        )
        if fields
        else None
    )  # fmt: skip
    prediction_drift = {
        t: ValueDrift(column=prob_column(t), method=config.prediction_drift_method,
                      threshold=config.prediction_drift_threshold,
                      tests=[lte(config.prediction_drift_threshold)])
        for t in tasks
    }  # fmt: skip
    mean_predicted = {t: MeanValue(column=prob_column(t), tests=[]) for t in tasks}
    pairs = [pair_name(a, b) for a, b in zip(tasks, tasks[1:])]
    violations = {
        p: MonotonicityViolations(tasks=tasks, pair=p, tests=[]) for p in pairs
    } | {ALL_PAIRS: MonotonicityViolations(tasks=tasks, pair=ALL_PAIRS,
                                           tests=[lte(config.max_violation_rate)])}  # fmt: skip
    coverage = LabelCoverage(labels=tasks, tests=[gte(config.min_label_coverage)])

    # Label metrics only where the labelled rows hold enough positives to say anything.
    skipped: dict[str, str] = {}
    observed, rate_change, calibration, auc = {}, {}, {}, {}
    reference_auc = {t: exact_auc(ref[t].to_numpy(), ref[prob_column(t)].to_numpy()) for t in tasks}
    for t in tasks:
        positives = int(labelled[t].sum()) if len(labelled) else 0
        if positives < config.min_positives or int(ref[t].sum()) < config.min_positives:
            skipped[t] = (
                f"{positives} labelled positives in the window, "
                f"{int(ref[t].sum())} in the reference; min_positives={config.min_positives}"
            )
            continue
        limit = config.max_rate_change
        observed[t] = MeanValue(column=t, tests=[])
        rate_change[t] = ConversionRateChange(label=t, tests=[gte(-limit), lte(limit)])
        gap = config.max_calibration_change
        calibration[t] = CalibrationGap(label=t, prediction=prob_column(t),
                                        tests=[gte(-gap), lte(gap)])  # fmt: skip
        floor = reference_auc[t] - config.max_auc_drop
        auc[t] = StepAuc(label=t, prediction=prob_column(t), tests=[gte(floor)])

    metrics = [
        coverage, *([drifted] if drifted else []), *field_drift.values(),
        *prediction_drift.values(), *mean_predicted.values(), *observed.values(),
        *rate_change.values(), *calibration.values(), *auc.values(), *violations.values(),
    ]  # fmt: skip
    versions = frame["model_version"].value_counts().to_dict() if "model_version" in frame else {}
    report = Report(metrics, include_tests=True)
    snapshot = report.run(
        current_data=_dataset(frame, categorical, numeric, tasks),
        reference_data=_dataset(ref, categorical, numeric, tasks),
        timestamp=window.end.to_pydatetime().replace(tzinfo=None),
        metadata={"window_start": window.start.isoformat(), "window_end": window.end.isoformat()},
        tags=["aitm", "window"],
    )
    get = snapshot.context.get_metric_result

    def value(metric) -> float:
        return float(get(metric).value)

    tests: list[TestOutcome] = []
    cov = get(coverage)
    tests.append(TestOutcome("label_coverage", LABEL_COVERAGE, _status(cov), float(cov.value),
                             f">= {config.min_label_coverage}"))  # fmt: skip
    scores = {f: value(m) for f, m in field_drift.items()}
    drifted_names = [f for f, s in scores.items() if s >= threshold[f]]
    condition = f"share of drifted fields <= {config.max_drifted_share}"
    left_out = f"; no values, not tested: {', '.join(empty)}" if empty else ""
    if drifted is None:
        share = 0.0
        tests.append(TestOutcome("feature_drift", FEATURE_DRIFT, SKIPPED, None, condition,
                                 f"no input field to test{left_out}"))  # fmt: skip
    else:
        drift_result = get(drifted)
        share = float(drift_result.share.value)
        detail = f"drifted: {', '.join(drifted_names) or 'none'}{left_out}"
        tests.append(TestOutcome("feature_drift", FEATURE_DRIFT, _status(drift_result), share,
                                 condition, detail))  # fmt: skip
    for t, m in prediction_drift.items():
        tests.append(TestOutcome(f"prediction_drift[{t}]", PREDICTION_DRIFT, _status(get(m)),
                                 value(m), f"<= {config.prediction_drift_threshold}"))  # fmt: skip
    for t in tasks:
        labelled_tests = (
            ("conversion_rate", CONVERSION_RATE, rate_change,
             f"|observed / reference - 1| <= {config.max_rate_change}"),
            ("calibration", CALIBRATION, calibration,
             f"|window's (observed / predicted) / reference's - 1| <= "
             f"{config.max_calibration_change}"),
            ("auc", AUC, auc, f">= reference {reference_auc[t]:.4f} - {config.max_auc_drop}"),
        )  # fmt: skip
        for name, group, metrics_by_task, condition in labelled_tests:
            if t in skipped:
                tests.append(TestOutcome(f"{name}[{t}]", group, SKIPPED, None, "", skipped[t]))
            else:
                m = metrics_by_task[t]
                outcome = TestOutcome(f"{name}[{t}]", group, _status(get(m)), value(m), condition)
                tests.append(outcome)
    overall = violations[ALL_PAIRS]
    tests.append(TestOutcome("monotonicity", MONOTONICITY, _status(get(overall)), value(overall),
                             f"share of rows with a later step above an earlier <= "
                             f"{config.max_violation_rate}"))  # fmt: skip

    steps = {}
    for t in tasks:
        has = t in observed
        steps[t] = StepSummary(
            task=t,
            prediction_drift=value(prediction_drift[t]),
            mean_predicted=value(mean_predicted[t]),
            labelled_rows=len(labelled),
            positives=int(labelled[t].sum()) if len(labelled) else 0,
            observed_rate=value(observed[t]) if has else None,
            reference_rate=float(ref[t].mean()),
            rate_change=value(rate_change[t]) if has else None,
            calibration_gap=calibration_gap(labelled, t, prob_column(t)) if has else None,
            reference_calibration_gap=calibration_gap(ref, t, prob_column(t)),
            calibration_change=value(calibration[t]) if has else None,
            auc=value(auc[t]) if has else None,
            reference_auc=reference_auc[t],
        )
    return MonitoringResult(
        window=window,
        rows=len(frame),
        labelled_rows=len(labelled),
        label_coverage=float(cov.value),
        model_versions={str(k): int(v) for k, v in versions.items()},
        reference_model=reference.info.get("model_tag"),
        feature_drift=scores,
        drifted_fields=drifted_names,
        drifted_share=share,
        steps=steps,
        violations={p: value(m) for p, m in violations.items()},
        tests=tests,
        numeric_fields=numeric,
        empty_fields=empty,
        snapshot=snapshot,
    )
