"""Thresholds of the data validation, in one typed config. Unknown keys are an error."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ValidationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_rows: int = Field(default=1_000, ge=1)  # fewer rows than this fail the batch
    # Share of a categorical column's values that must be in the training vocabulary.
    known_share: float = Field(default=0.95, ge=0.0, le=1.0)
    # Categorical fields with more distinct values than this (ids) get no vocabulary check.
    max_vocabulary: int = Field(default=1_000, ge=1)
    # Positive rate of every funnel step: within [low, high] times the reference's rate.
    rate_bounds: tuple[float, float] = (0.5, 2.0)
    # ... widened, for a window too small to tell, to its expected count +- rate_z standard
    # deviations (3.29: a two-sided 0.1% false alarm per step on binomial noise).
    rate_z: float = Field(default=3.29, gt=0.0)
    # Inclusive ranges of number-valued fields, beside (and over) the dataset spec's `ranges`.
    ranges: dict[str, tuple[float, float]] = Field(default_factory=dict)
    # Distinct values every field needs (a constant field is refused).
    min_distinct: int = Field(default=2, ge=1)
    examples: int = Field(default=5, ge=0)  # unexpected values shown per failed expectation
    # Timestamps later than the run time plus this many seconds are in the future: refused.
    future_tolerance_s: float = Field(default=3_600.0, ge=0.0)
    # Shuffled labels: the out-of-fold AUC of a naive-Bayes sum of per-field lifts must be at
    # least this many standard errors above 0.5, for every task with enough positives.
    label_signal_z: float = Field(default=3.0, gt=0.0)
    label_signal_min_positives: int = Field(default=100, ge=2)
    # Leaking labels: no field's out-of-fold per-value rate may rank a task with an AUC above
    # this (clean simulated data: at most 0.79), for every task with enough positives.
    leak_max_auc: float = Field(default=0.95, gt=0.5, le=1.0)
    leak_min_positives: int = Field(default=20, ge=2)
    statistics_rows: int = Field(default=200_000, ge=1_000)  # rows sampled for both statistics

    @model_validator(mode="after")
    def _check(self) -> ValidationConfig:
        low, high = self.rate_bounds
        if not 0.0 <= low <= 1.0 <= high:
            raise ValueError(
                f"rate_bounds must satisfy 0 <= low <= 1 <= high, got {self.rate_bounds}"
            )
        for name, (lo, hi) in self.ranges.items():
            if lo > hi:
                raise ValueError(f"ranges[{name!r}]: low {lo} exceeds high {hi}")
        return self

    def for_spec(self, floors: Any) -> ValidationConfig:
        """This config with a dataset spec's floors (`spec.floors`: min_rows, min_distinct,
        known_share) in place of the defaults; values set explicitly here are kept."""
        update = {}
        for name in ("min_rows", "min_distinct", "known_share"):
            value = getattr(floors, name, None)
            if value is not None and name not in self.model_fields_set:
                update[name] = value
        return self.model_copy(update=update) if update else self
