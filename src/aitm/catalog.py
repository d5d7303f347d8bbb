"""Every model by its `ModelConfig.kind`, and `build_model`, which sizes one by the schema.

Each constructor is called as `constructor(cardinalities, num_tasks, config, numeric=positions)`
and returns a module from (B, F) field indices to (B, T) end-to-end logits.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

from aitm.baselines import ESMM, PLE, MixtureOfExperts, MultiTowerMLP
from aitm.config import ModelConfig
from aitm.model import AITM
from aitm.schema import FeatureSchema

MODELS: dict[str, Callable[..., nn.Module]] = {
    "aitm": AITM,
    "mlp": MultiTowerMLP,
    "esmm": ESMM,
    "omoe": partial(MixtureOfExperts, multi_gate=False),
    "mmoe": partial(MixtureOfExperts, multi_gate=True),
    "ple": PLE,
}


def build_model(schema: FeatureSchema, config: ModelConfig) -> nn.Module:
    """The model a config names, sized by the schema."""
    dims = {f.embedding_dim for f in schema.fields}
    if dims != {config.embedding_dim}:
        raise ValueError(
            f"schema embedding sizes {sorted(dims)} differ from model.embedding_dim "
            f"{config.embedding_dim}"
        )
    if config.kind not in MODELS:
        raise ValueError(f"unknown model kind {config.kind!r}; expected one of {sorted(MODELS)}")
    constructor = MODELS[config.kind]
    numeric = schema.numeric_positions
    return constructor(schema.cardinalities, len(schema.tasks), config, numeric=numeric)
