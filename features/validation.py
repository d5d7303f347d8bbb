"""Great Expectations checks of impression/training frames against a reference frame.

`build_suite` turns a dataset spec (its fields, types, ranges, entity keys, tasks in funnel
order; or the fields of a trained model's FeatureSchema) and a reference frame into an
ExpectationSuite; `validate` runs it on a frame, writes GE data docs, and returns a
`ValidationResult`, raising `ValidationError` listing the failed expectations by default.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from aitm.dataset import ROW_ID, DatasetSpec, load_spec
from aitm.schema import FeatureSchema
from features.config import ValidationConfig
from features.fields import FeastLayout

if TYPE_CHECKING:
    import great_expectations as gx
    import great_expectations.expectations as gxe

# Names as GE 1.x matches them against a pandas column's dtype (object columns: per value).
_INT_TYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
              "Int8Dtype", "Int16Dtype", "Int32Dtype", "Int64Dtype"]  # fmt: skip
_TIME_TYPES = ["datetime64[s]", "datetime64[ms]", "datetime64[us]", "datetime64[ns]"]
_STR_TYPES = ["str", "StringDtype"]
SUITE_NAME = "aitm_features"
DOCS_SITE = "aitm_validation"
CHECK_KEY = "aitm_check"  # meta key naming the hostile-data check an expectation implements


class ValidationError(ValueError):
    """A frame that failed validation; `.result` holds the details."""

    def __init__(self, result: ValidationResult) -> None:
        self.result = result
        super().__init__(result.describe())


@dataclass(frozen=True)
class FailedExpectation:
    expectation: str  # e.g. "expect_column_values_to_not_be_null"
    column: str | None  # the column, "a>=b" for a column pair, None for table expectations
    unexpected_count: int | None
    unexpected_percent: float | None
    examples: tuple[Any, ...]
    observed: Any = None  # observed value of aggregate expectations (mean, row count)
    error: str | None = None  # exception raised while evaluating, e.g. a missing column
    check: str | None = None  # the hostile-data check it implements, e.g. "no_label_leak"

    def describe(self) -> str:
        where = f" on {self.column}" if self.column else ""
        named = f"[{self.check}] " if self.check else ""
        parts = [f"{named}{self.expectation}{where}"]
        if self.unexpected_count is not None:
            pct = (
                f" ({self.unexpected_percent:.2f}%)" if self.unexpected_percent is not None else ""
            )
            parts.append(f"{self.unexpected_count} unexpected rows{pct}")
        if self.examples:
            parts.append(f"e.g. {list(self.examples)}")
        if self.observed is not None:
            parts.append(f"observed {self.observed}")
        if self.error:
            parts.append(f"error: {self.error.strip().splitlines()[-1][:200]}")
        return ", ".join(parts)


@dataclass(frozen=True)
class ValidationResult:
    success: bool
    evaluated: int  # expectations run
    failed: tuple[FailedExpectation, ...] = ()
    docs_dir: Path | None = None
    rows: int = 0

    @property
    def failed_expectations(self) -> set[str]:
        return {f.expectation for f in self.failed}

    @property
    def failed_checks(self) -> set[str]:
        """Names of the hostile-data checks that failed (see `_hostile_data_expectations`)."""
        return {f.check for f in self.failed if f.check}

    def describe(self) -> str:
        if self.success:
            return f"validation passed: {self.evaluated} expectations on {self.rows} rows"
        lines = [
            f"validation failed: {len(self.failed)} of {self.evaluated} expectations "
            f"on {self.rows} rows"
        ]
        lines += [f"  - {f.describe()}" for f in self.failed]
        if self.docs_dir is not None:
            lines.append(f"data docs: {self.docs_dir / 'index.html'}")
        return "\n".join(lines)


@dataclass(frozen=True)
class _Reference:
    """What the suite needs from the reference frame."""

    layout: FeastLayout  # the dataset spec's names
    types: dict[str, list[str]]
    vocabularies: dict[str, list[Any]]
    rates: dict[str, float]
    fields: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)  # every column of the reference frame
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)


def _type_family(column: pd.Series) -> list[str]:
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return _type_family(pd.Series(dtype.categories))
    if pd.api.types.is_integer_dtype(dtype):
        return _INT_TYPES
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return _TIME_TYPES
    if pd.api.types.is_float_dtype(dtype):
        return ["float16", "float32", "float64"]
    return _STR_TYPES


def spec_of_fields(fields: Sequence[str] | FeatureSchema | None) -> DatasetSpec | None:
    """The dataset spec a model's FeatureSchema carries (`extra["dataset"]`), if any."""
    if isinstance(fields, FeatureSchema) and isinstance(fields.extra.get("dataset"), dict):
        return DatasetSpec.parse(fields.extra["dataset"], "the model's dataset spec")
    return None


def validation_config(
    spec: DatasetSpec, config: ValidationConfig | None = None
) -> ValidationConfig:
    """The validation thresholds for a dataset: `config` (default: every default) with the
    spec's floors (min_rows, min_distinct, known_share) where the config leaves them unset."""
    return (config or ValidationConfig()).for_spec(spec.floors)


def _observed_range(column: pd.Series) -> tuple[float, float] | None:
    """The reference's [min, max] widened by its span each side: a new extreme passes, a
    change of unit (x100) or of sign does not."""
    values = pd.to_numeric(column, errors="coerce").dropna()
    if not len(values):
        return None
    low, high = float(values.min()), float(values.max())
    span = high - low or max(abs(high), 1.0)
    return low - span, high + span


def _reference(
    fields: Sequence[str] | FeatureSchema,
    reference: pd.DataFrame,
    config: ValidationConfig,
    layout: FeastLayout,
) -> _Reference:
    names = fields.field_names if isinstance(fields, FeatureSchema) else list(fields)
    tasks, ts = list(layout.tasks), layout.timestamp
    absent = [c for c in [*names, *tasks, ts] if c not in reference.columns]
    if absent:
        raise ValueError(f"the reference frame lacks columns {absent}")
    if reference.empty:
        raise ValueError("the reference frame is empty")
    types = {c: _type_family(reference[c]) for c in [*names, *tasks, ts]}
    # Number-valued fields get ranges: the spec's and the config's, else (numeric fields) the
    # reference's observed one.
    ranges = {c: r for c, r in {**layout.spec.ranges, **config.ranges}.items() if c in names}
    for name in names:
        if name not in ranges and layout.spec.field_type(name) == "float":
            observed = _observed_range(reference[name])
            if observed is not None:
                ranges[name] = observed
    vocabularies: dict[str, list[Any]] = {}
    for name in names:
        if name in layout.keys or name in ranges or layout.spec.field_type(name) == "float":
            continue  # ids churn by design; number-valued fields get ranges instead
        if isinstance(fields, FeatureSchema):
            if fields.field(name).dtype == "float":
                continue
            values = list(fields.field(name).vocabulary)
        else:
            values = reference[name].dropna().unique().tolist()
        if len(values) <= config.max_vocabulary:
            vocabularies[name] = sorted(values, key=str)
    rates = {t: float(reference[t].mean()) for t in tasks}
    return _Reference(
        layout=layout,
        types=types,
        vocabularies=vocabularies,
        rates=rates,
        fields=names,
        columns=list(reference.columns),
        ranges=ranges,
    )


def build_suite(
    fields: Sequence[str] | FeatureSchema | None,
    reference: pd.DataFrame,
    config: ValidationConfig | None = None,
    *,
    spec: DatasetSpec | None = None,
    window: tuple[datetime, datetime] | None = None,
    now: datetime | None = None,
    rows: int | None = None,
) -> gx.ExpectationSuite:
    """Expectations for frames like `reference`; `window` bounds their timestamps (inclusive),
    `now` (default: the wall clock) is the run time that no timestamp may pass, `rows` (default:
    the reference's) the size of the frames checked, which sets how much a rate may vary.

    `spec` (default: the one a FeatureSchema carries, else the default spec) names the tasks,
    entity keys, timestamp, types and ranges; `fields` (default: the spec's) the fields
    checked. The spec's floors replace the config's defaults (`ValidationConfig.for_spec`)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    spec = spec or spec_of_fields(fields) or load_spec()
    layout = FeastLayout(spec)
    config = validation_config(spec, config)
    ref = _reference(fields if fields is not None else list(spec.fields), reference, config, layout)
    tasks, ts = list(layout.tasks), layout.timestamp
    expectations: list[gxe.Expectation] = []
    expectations.append(gxe.ExpectTableRowCountToBeBetween(min_value=config.min_rows))
    for column, types in ref.types.items():
        expectations.append(gxe.ExpectColumnToExist(column=column))
        expectations.append(gxe.ExpectColumnValuesToBeInTypeList(column=column, type_list=types))
    for column in [*layout.keys, ts]:
        expectations.append(gxe.ExpectColumnValuesToNotBeNull(column=column))
    for column, values in ref.vocabularies.items():
        expectations.append(
            gxe.ExpectColumnValuesToBeInSet(
                column=column, value_set=values, mostly=config.known_share
            )
        )
    for column, (low, high) in ref.ranges.items():
        expectations.append(
            gxe.ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high)
        )
    low_factor, high_factor = config.rate_bounds
    for task in tasks:
        expectations.append(gxe.ExpectColumnValuesToNotBeNull(column=task))
        expectations.append(gxe.ExpectColumnValuesToBeInSet(column=task, value_set=[0, 1]))
        low, high = _rate_bounds(
            ref.rates[task], rows or len(reference), low_factor, high_factor, config
        )
        expectations.append(
            gxe.ExpectColumnMeanToBeBetween(column=task, min_value=low, max_value=high)
        )
    for upper, lower in zip(tasks, tasks[1:]):
        expectations.append(
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=upper, column_B=lower, or_equal=True
            )
        )
    if window is not None:
        expectations.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=ts, min_value=_naive_utc(window[0]), max_value=_naive_utc(window[1])
            )
        )
    expectations += _hostile_data_expectations(ref, config, now=now)
    # Built unbound (no context); run_suite adds it to an ephemeral context.
    return gx.ExpectationSuite(name=SUITE_NAME, expectations=expectations)


def _rate_bounds(
    rate: float, rows: int, low_factor: float, high_factor: float, config: ValidationConfig
) -> tuple[float, float]:
    """The factor bounds around the reference's rate, widened to the `rate_z` interval of a
    window of `rows` rows: a window of few positives (a sample, a sparse step) does not fail
    on its noise alone, while a large window keeps the factor bounds."""
    expected = rate * rows
    noise = config.rate_z * math.sqrt(max(expected, 1.0))
    low = min(rate * low_factor, max(expected - noise, 0.0) / rows)
    high = max(rate * high_factor, (expected + noise) / rows)
    return low, min(high, 1.0)


def _check(expectation: gxe.Expectation, name: str) -> gxe.Expectation:
    """Tag an expectation with the name of the check it implements (shown on failure)."""
    expectation.meta = {**(expectation.meta or {}), CHECK_KEY: name}
    return expectation


def _hostile_data_expectations(
    ref: _Reference, config: ValidationConfig, *, now: datetime | None
) -> list[gxe.Expectation]:
    """Checks against hostile data: duplicated impressions, timestamps in the future, constant
    features, labels shuffled away from the features, labels leaking into a feature."""
    import great_expectations.expectations as gxe

    from features.expectations import ExpectLabelsToDependOnFeatures, ExpectNoFeatureToPredictLabels

    layout = ref.layout
    ts = layout.timestamp
    now = now or datetime.now(UTC)
    stats = {"fields": ref.fields, "tasks": list(layout.tasks), "max_rows": config.statistics_rows}
    expectations: list[gxe.Expectation] = []
    if ROW_ID in ref.columns:
        expectations.append(
            _check(gxe.ExpectColumnValuesToBeUnique(column=ROW_ID), "no_duplicate_impressions")
        )
    # The same entities at the same time. Without a time column two identical rows can be two
    # real impressions (the Ali-CCP sample has such), so only the row id is checked.
    if layout.spec.timestamp:
        replay = [*layout.keys, ts]
        expectations.append(
            _check(
                gxe.ExpectCompoundColumnsToBeUnique(column_list=replay),
                "no_duplicate_impressions",
            )
        )
    latest = _naive_utc(now) + timedelta(seconds=config.future_tolerance_s)
    expectations.append(
        _check(
            gxe.ExpectColumnValuesToBeBetween(column=ts, max_value=latest),
            "no_future_timestamps",
        )
    )
    for name in ref.fields:
        expectations.append(
            _check(
                gxe.ExpectColumnUniqueValueCountToBeBetween(
                    column=name, min_value=config.min_distinct
                ),
                "no_constant_features",
            )
        )
    expectations.append(
        _check(
            ExpectLabelsToDependOnFeatures(
                **stats,
                min_z=config.label_signal_z,
                min_positives=config.label_signal_min_positives,
            ),
            "labels_not_shuffled",
        )
    )
    expectations.append(
        _check(
            ExpectNoFeatureToPredictLabels(
                **stats, max_auc=config.leak_max_auc, min_positives=config.leak_min_positives
            ),
            "no_label_leak",
        )
    )
    return expectations


def _for_ge(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as GE's type checks understand it: categories as plain values, and
    timestamps as naive UTC (GE 1.x matches no type name against a tz-aware dtype)."""
    out = frame.copy(deep=False)
    for name in out.columns:
        dtype = out[name].dtype
        if isinstance(dtype, pd.CategoricalDtype):
            out[name] = out[name].astype(out[name].cat.categories.dtype)
        elif isinstance(dtype, pd.DatetimeTZDtype):
            out[name] = out[name].dt.tz_convert("UTC").dt.tz_localize(None)
    return out


def _naive_utc(value: datetime | str | pd.Timestamp) -> datetime:
    ts = pd.Timestamp(value)
    return (ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo else ts).to_pydatetime()


def _failure(result: Any, examples: int) -> FailedExpectation:
    config = result.expectation_config
    kwargs = config.kwargs
    column = kwargs.get("column")
    details = result.result or {}
    if column is None and "column_A" in kwargs:
        column = f"{kwargs['column_A']}>={kwargs['column_B']}"
    elif column is None and "column_list" in kwargs:
        column = "+".join(kwargs["column_list"])
    elif config.type == "expect_no_feature_to_predict_labels":
        leaking = (details.get("details") or {}).get("leaking") or {}
        column = ",".join(sorted({key.split("|")[0] for key in leaking})) or None
    error = None
    if result.exception_info and result.exception_info.get("raised_exception"):
        error = result.exception_info.get("exception_message") or "raised an exception"
    observed = details.get("observed_value")
    if isinstance(observed, list):
        observed = None  # type lists and the like; unexpected examples say more
    return FailedExpectation(
        expectation=config.type,
        column=column,
        unexpected_count=details.get("unexpected_count"),
        unexpected_percent=details.get("unexpected_percent"),
        examples=tuple(details.get("partial_unexpected_list") or ())[:examples],
        observed=observed,
        error=error,
        check=(config.meta or {}).get(CHECK_KEY),
    )


def run_suite(
    frame: pd.DataFrame,
    suite: gx.ExpectationSuite,
    *,
    docs_dir: str | Path | None = None,
    examples: int = 5,
    raise_on_failure: bool = True,
) -> ValidationResult:
    """Validate `frame` with `suite` in an ephemeral GE context; data docs go to `docs_dir`."""
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction

    context = gx.get_context(mode="ephemeral")
    source = context.data_sources.add_pandas("frames")
    asset = source.add_dataframe_asset("frame")
    batch = asset.add_batch_definition_whole_dataframe("whole")
    suite = context.suites.add(suite)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="aitm_frame", data=batch, suite=suite)
    )
    actions = []
    if docs_dir is not None:
        docs_dir = Path(docs_dir).resolve()
        docs_dir.mkdir(parents=True, exist_ok=True)
        context.add_data_docs_site(
            site_name=DOCS_SITE,
            site_config={
                "class_name": "SiteBuilder",
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir),
                },
            },
        )
        actions.append(UpdateDataDocsAction(name="data_docs", site_names=[DOCS_SITE]))
    result_format = {"result_format": "SUMMARY", "partial_unexpected_count": examples}
    batch_parameters = {"dataframe": _for_ge(frame)}
    if actions:
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name="aitm_checkpoint",
                validation_definitions=[definition],
                actions=actions,
                result_format=result_format,
            )
        )
        run = checkpoint.run(batch_parameters=batch_parameters)
        (suite_result,) = run.run_results.values()
    else:  # no data docs to write: skip the checkpoint's bookkeeping (about a second)
        suite_result = definition.run(
            batch_parameters=batch_parameters, result_format=result_format
        )
    failed = tuple(_failure(r, examples) for r in suite_result.results if not r.success)
    result = ValidationResult(
        success=bool(suite_result.success) and not failed,
        evaluated=len(suite_result.results),
        failed=failed,
        docs_dir=docs_dir,
        rows=len(frame),
    )
    if not result.success and raise_on_failure:
        raise ValidationError(result)
    return result


def validate(
    frame: pd.DataFrame,
    reference: pd.DataFrame,
    fields: Sequence[str] | FeatureSchema | None = None,
    config: ValidationConfig | None = None,
    *,
    spec: DatasetSpec | None = None,
    window: tuple[datetime, datetime] | None = None,
    now: datetime | None = None,
    docs_dir: str | Path | None = None,
    raise_on_failure: bool = True,
) -> ValidationResult:
    """Check `frame` against expectations built from `reference` and `spec` (fields: the
    model's, default the spec's); `now` is the run time no timestamp may pass (default: the
    wall clock)."""
    config = config or ValidationConfig()
    suite = build_suite(
        fields, reference, config, spec=spec, window=window, now=now, rows=len(frame)
    )
    return run_suite(
        frame,
        suite,
        docs_dir=docs_dir,
        examples=config.examples,
        raise_on_failure=raise_on_failure,
    )
