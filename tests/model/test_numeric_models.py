"""Every model kind trains on a frame with a numeric field and answers to its value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aitm.config import Config, DataConfig, ModelConfig, TrainConfig
from aitm.inference import Predictor
from aitm.training import train

pytestmark = pytest.mark.slow

KINDS = [
    ("aitm", "ait"),
    ("aitm", "none"),
    ("aitm", "probability"),
    ("mlp", "ait"),
    ("esmm", "ait"),
    ("omoe", "ait"),
    ("mmoe", "ait"),
    ("ple", "ait"),
]
SMALL = {"tower_dims": (16, 8), "dropout": (0.0, 0.0), "expert_dims": (16,), "num_experts": 2}


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.normal(50.0, 10.0, n)
    income[rng.random(n) < 0.1] = np.nan
    click = rng.random(n) < np.where(np.nan_to_num(income, nan=50.0) > 50.0, 0.6, 0.1)
    buy = click & (rng.random(n) < 0.5)
    return pd.DataFrame(
        {
            "city": rng.choice(["a", "b", "c"], n),
            "income": income,
            "click": click.astype(int),
            "buy": buy.astype(int),
        }
    )


@pytest.mark.parametrize(("kind", "transfer"), KINDS)
def test_every_model_kind_trains_on_a_numeric_field_and_answers_to_it(kind, transfer):
    config = Config(
        data=DataConfig(fields=["city", "income"], tasks=["click", "buy"], numeric=["income"]),
        model=ModelConfig(kind=kind, transfer=transfer, **SMALL),
        train=TrainConfig(max_epochs=1, batch_size=64, learning_rate=1e-2, progress=False),
    )
    result = train(config, _frame(256, 0), _frame(128, 1))
    assert result.schema.field("income").dtype == "float"
    assert result.history[0].train_loss > 0 and np.isfinite(result.history[0].train_loss)

    assert result.model.embedding.numeric == (1,)
    predictor = Predictor(result.model, result.schema, config)
    spec = result.schema.field("income")
    # Standardized 1.2 and 1.6: the same index if the value were taken for a category.
    incomes = [spec.mean + 1.2 * spec.std, spec.mean + 1.6 * spec.std, None]
    probs = predictor.predict(pd.DataFrame({"city": ["a"] * 3, "income": incomes})).to_numpy()
    assert np.isfinite(probs).all()
    assert np.abs(probs[0] - probs[1]).max() > 1e-6  # the value changes the prediction
    assert np.abs(probs[2] - probs[0]).max() > 1e-6  # missing is not any one value
