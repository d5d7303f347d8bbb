"""Custom Great Expectations 1.x expectations for what no built-in one checks: that labels
depend on the features (not shuffled) and that no single feature predicts a label (no leak).

Importing this module registers two table metrics and two expectations with GE; features/
validation.py imports it lazily, beside great_expectations itself. The statistics live in
features/label_signal.py, free of GE.
"""

from __future__ import annotations

from typing import Any, ClassVar

from great_expectations.core.metric_domain_types import MetricDomainTypes
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import BatchExpectation
from great_expectations.expectations.metrics.metric_provider import metric_value
from great_expectations.expectations.metrics.table_metric_provider import TableMetricProvider

from features.label_signal import field_label_aucs, label_signal

_STAT_KEYS = ("fields", "tasks", "min_positives", "max_rows", "seed")


def _table(execution_engine: PandasExecutionEngine, metric_domain_kwargs: dict):
    frame, _, _ = execution_engine.get_compute_domain(
        domain_kwargs=metric_domain_kwargs, domain_type=MetricDomainTypes.TABLE
    )
    return frame


def _stat_kwargs(kwargs: dict) -> dict[str, Any]:
    return {
        "min_positives": kwargs["min_positives"],
        "max_rows": kwargs["max_rows"],
        "seed": kwargs["seed"],
    }


class TableLabelSignal(TableMetricProvider):
    """{task: {"positives", "auc", "z"}} for the tasks with enough positives."""

    metric_name = "table.aitm_label_signal"
    value_keys = _STAT_KEYS

    @metric_value(engine=PandasExecutionEngine)
    def _pandas(
        cls,  # noqa: N805 (GE binds metric functions as classmethods)
        execution_engine,
        metric_domain_kwargs,
        metric_value_kwargs,
        metrics,
        runtime_configuration,
    ):
        frame = _table(execution_engine, metric_domain_kwargs)
        kw = metric_value_kwargs
        signals = label_signal(frame, kw["fields"], kw["tasks"], **_stat_kwargs(kw))
        return {
            s.task: {"positives": s.positives, "auc": round(s.auc, 4), "z": round(s.z, 2)}
            for s in signals
        }


class TableFieldLabelAuc(TableMetricProvider):
    """{"field|task": auc} of each field's out-of-fold per-value rate."""

    metric_name = "table.aitm_field_label_auc"
    value_keys = _STAT_KEYS

    @metric_value(engine=PandasExecutionEngine)
    def _pandas(
        cls,  # noqa: N805 (GE binds metric functions as classmethods)
        execution_engine,
        metric_domain_kwargs,
        metric_value_kwargs,
        metrics,
        runtime_configuration,
    ):
        frame = _table(execution_engine, metric_domain_kwargs)
        kw = metric_value_kwargs
        aucs = field_label_aucs(frame, kw["fields"], kw["tasks"], **_stat_kwargs(kw))
        return {f"{field}|{task}": round(auc, 4) for (field, task), auc in aucs.items()}


class ExpectLabelsToDependOnFeatures(BatchExpectation):
    """Every task with at least `min_positives` positives is ranked by a naive-Bayes score of
    per-field lifts (fitted out of fold) with an AUC at least `min_z` standard errors above 0.5.
    Shuffled labels, independent of the features, fail it."""

    fields: list[str]
    tasks: list[str]
    min_z: float = 3.0
    min_positives: int = 100
    max_rows: int = 200_000
    seed: int = 0

    metric_dependencies = ("table.aitm_label_signal",)
    success_keys = ("min_z", *_STAT_KEYS)
    domain_keys: ClassVar[tuple[str, ...]] = ()

    def _validate(self, metrics: dict, runtime_configuration=None, execution_engine=None):
        signal = metrics["table.aitm_label_signal"]
        min_z = self._get_success_kwargs()["min_z"]
        weak = sorted(task for task, s in signal.items() if s["z"] < min_z)
        return {
            "success": not weak,
            "result": {"observed_value": signal, "details": {"tasks_without_signal": weak}},
        }


class ExpectNoFeatureToPredictLabels(BatchExpectation):
    """No field's out-of-fold per-value rate ranks any task (with at least `min_positives`
    positives) with an AUC above `max_auc`: a field that is (nearly) a label is a leak."""

    fields: list[str]
    tasks: list[str]
    max_auc: float = 0.95
    min_positives: int = 20
    max_rows: int = 200_000
    seed: int = 0

    metric_dependencies = ("table.aitm_field_label_auc",)
    success_keys = ("max_auc", *_STAT_KEYS)
    domain_keys: ClassVar[tuple[str, ...]] = ()

    def _validate(self, metrics: dict, runtime_configuration=None, execution_engine=None):
        aucs = metrics["table.aitm_field_label_auc"]
        max_auc = self._get_success_kwargs()["max_auc"]
        leaks = {key: auc for key, auc in aucs.items() if auc > max_auc}
        worst = max(aucs.items(), key=lambda item: item[1]) if aucs else None
        return {
            "success": not leaks,
            "result": {
                "observed_value": {"max_field_auc": dict([worst])} if worst else {},
                "details": {"leaking": leaks},
            },
        }
