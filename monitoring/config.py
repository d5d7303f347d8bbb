"""Monitoring thresholds: one typed config, defaults here only, unknown keys are errors."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field


class MonitoringConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Feature drift of the model inputs: categorical fields (embedded ids and categories) by
    # one test, numeric fields (dtype "float" in the model's schema) by another.
    drift_method: str = "jensenshannon"  # Evidently stat test per categorical field
    drift_threshold: float = Field(default=0.1, gt=0)  # a field drifted at or above this score
    numeric_drift_method: str = "wasserstein"  # per numeric field (distance in reference stds)
    numeric_drift_threshold: float = Field(default=0.1, gt=0)
    max_drifted_share: float = Field(default=0.2, ge=0, le=1)  # TEST: share of drifted fields
    # Categorical fields with more categories than this (user and ad ids) are left out of the
    # drift test: their per-id frequencies are too sparse in a window to compare.
    drift_max_categories: int = Field(default=100, ge=2)
    # Prediction drift: distribution of every step's probability.
    prediction_drift_method: str = "wasserstein"
    prediction_drift_threshold: float = Field(default=0.1, gt=0)  # TEST per step
    # Conversion rates, on labelled rows only.
    max_rate_change: float = Field(default=0.25, gt=0)  # TEST: |observed / reference - 1|
    # TEST: |(observed / predicted) in the window / (observed / predicted) in the reference - 1|
    max_calibration_change: float = Field(default=0.3, gt=0)
    min_label_coverage: float = Field(default=0.8, ge=0, le=1)  # TEST: labelled share of rows
    min_positives: int = Field(default=30, ge=1)  # fewer positives: rate and AUC tests skipped
    max_auc_drop: float = Field(default=0.1, ge=0)  # TEST: AUC >= reference AUC - this
    # Funnel order of the raw probabilities.
    max_violation_rate: float = Field(default=0.01, ge=0, le=1)  # TEST: any adjacent pair
    min_rows: int = Field(default=100, ge=1)  # a smaller window is an error, not a report

    @classmethod
    def from_yaml(cls, path: str | Path | None) -> MonitoringConfig:
        if path is None:
            return cls()
        raw = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: a monitoring config is a mapping, got {type(raw).__name__}")
        return cls.model_validate(raw)
