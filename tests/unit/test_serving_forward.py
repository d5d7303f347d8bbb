"""The served forward gives the Predictor's probabilities, for every model kind."""

from __future__ import annotations

from typing import get_args

import numpy as np
import pytest
import torch

from aitm.catalog import build_model
from aitm.config import Config, ModelConfig, ModelKind
from aitm.inference import Predictor
from aitm.schema import FeatureSchema, FieldSpec
from serving.forward import model_forward

FIELDS = (
    FieldSpec("user_id", "int", tuple(range(30)), 5),
    FieldSpec("city", "str", ("a", "b", "c"), 5),
    FieldSpec("hour", "int", tuple(range(24)), 5),
)
INCOME = FieldSpec("income", "float", (), 5, mean=3.0, std=2.0)


def _predictor(kind: str, fields: tuple[FieldSpec, ...] = FIELDS) -> Predictor:
    schema = FeatureSchema(fields=fields, tasks=("click", "application", "approval"))
    config = Config(model=ModelConfig(kind=kind, tower_dims=(16, 8), dropout=(0.1, 0.1)))
    torch.manual_seed(0)
    model = build_model(schema, config.model)  # in training mode: dropout on until served
    return Predictor(model=model, schema=schema, config=config)


def _rows(schema: FeatureSchema, n: int, rng: np.random.Generator) -> np.ndarray:
    """Rows as `schema.encode` makes them: float64 with a numeric field, a tenth of it NaN."""
    x = np.stack([rng.integers(0, c, n) for c in schema.cardinalities], axis=1)
    numeric = list(schema.numeric_positions)
    if not numeric:
        return x
    x = x.astype(np.float64)
    values = rng.normal(size=(n, len(numeric)))
    values[rng.random(values.shape) < 0.1] = np.nan
    x[:, numeric] = values
    return x


@pytest.mark.parametrize("kind", get_args(ModelKind))
@pytest.mark.parametrize("numeric", [False, True])
def test_the_served_forward_matches_the_predictor(kind, numeric):
    predictor = _predictor(kind, (*FIELDS, INCOME) if numeric else FIELDS)
    forward = model_forward(predictor)
    rng = np.random.default_rng(1)
    for n in (1, 2, 33, 300):
        x = _rows(predictor.schema, n, rng)
        got = forward(x)
        assert got.shape == (n, 3)
        np.testing.assert_allclose(got, predictor.predict_encoded(x), rtol=0, atol=1e-6)
        np.testing.assert_array_equal(forward(x), got)  # eval mode: no dropout
