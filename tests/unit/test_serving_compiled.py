"""The traced model serves the same probabilities as the eager one, for every model kind."""

from __future__ import annotations

from typing import get_args

import numpy as np
import pytest
import torch

from aitm.checkpoint import Predictor
from aitm.config import Config, ModelConfig, ModelKind
from aitm.model import build_model
from aitm.schema import FeatureSchema, FieldSpec
from serving.compiled import TraceMismatchError, traced_forward


def _predictor(kind: str) -> Predictor:
    schema = FeatureSchema(
        fields=(
            FieldSpec("user_id", "int", tuple(range(30)), 5),
            FieldSpec("city", "str", ("a", "b", "c"), 5),
            FieldSpec("hour", "int", tuple(range(24)), 5),
        ),
        tasks=("click", "application", "approval"),
    )
    config = Config(model=ModelConfig(kind=kind, tower_dims=(16, 8), dropout=(0.1, 0.1)))
    torch.manual_seed(0)
    model = build_model(schema, config.model).eval()
    return Predictor(model=model, schema=schema, config=config)


@pytest.mark.parametrize("kind", get_args(ModelKind))
def test_traced_forward_matches_the_eager_model(kind):
    predictor = _predictor(kind)
    forward = traced_forward(predictor, max_rows=300)
    rng = np.random.default_rng(1)
    for n in (1, 2, 33, 300):
        x = np.stack([rng.integers(0, c, n) for c in predictor.schema.cardinalities], axis=1)
        np.testing.assert_allclose(forward(x), predictor.predict_encoded(x), atol=1e-6)


def test_a_trace_that_differs_stops_start_up():
    class DataDependent(torch.nn.Module):
        """Output depends on the data through Python control flow: a trace freezes one branch."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logits = x[:, :3].float()
            return logits if bool((x[:, 0] > 15).any()) else -logits

    predictor = _predictor("aitm")
    predictor = Predictor(model=DataDependent(), schema=predictor.schema, config=predictor.config)
    with pytest.raises(TraceMismatchError, match="AITM_TORCHSCRIPT=false"):
        traced_forward(predictor, max_rows=64)
