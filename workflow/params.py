"""The pipeline's text parameters, parsed: the dataset spec and the config."""

from __future__ import annotations

from typing import Any

import yaml

from aitm.config import Config
from aitm.dataset import DatasetSpec, load_spec


def parse_spec(dataset_yaml: str) -> DatasetSpec:
    """The pipeline's dataset parameter (the spec's YAML text; empty means the default)."""
    return DatasetSpec.from_text(dataset_yaml) if dataset_yaml.strip() else load_spec()


def parse_config(config_yaml: str, spec: DatasetSpec | None = None) -> Config:
    """The pipeline's config parameter (YAML text; empty means every default). With a dataset
    spec, the data section and the gate's floors (where the spec sets them) come from it."""
    raw = yaml.safe_load(config_yaml) if config_yaml.strip() else {}
    if not isinstance(raw, dict):
        raise ValueError(f"config_yaml must hold a mapping, got {type(raw).__name__}")
    config = Config.model_validate(raw)
    if spec is None:
        return config
    floors = spec.floors
    update: dict[str, Any] = {"auc_floor": {**config.gate.auc_floor, **floors.auc_floor}}
    if floors.default_auc_floor is not None:
        update["default_auc_floor"] = floors.default_auc_floor
    gate = config.gate.model_copy(update=update)
    return config.with_dataset(spec).model_copy(update={"gate": gate})


def feature_service_of(dataset_yaml: str, override: str = "") -> str:
    """The feature service a run fetches by: the pipeline parameter if set, else the spec's."""
    return override or parse_spec(dataset_yaml).feature_service
