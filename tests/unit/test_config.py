"""One typed config: unknown keys are errors, YAML round trips."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from aitm.config import Config


def test_defaults_follow_the_paper():
    config = Config()
    assert config.model.embedding_dim == 5
    assert config.model.tower_dims == (128, 64, 32)
    assert config.model.dropout == (0.0, 0.0, 0.0)
    assert config.loss.calibrator_weight == 2.0
    assert config.train.learning_rate == 1e-3
    assert config.train.batch_size == 2000
    assert config.data.tasks == ["click", "application", "approval", "activation"]


def test_unknown_keys_are_rejected(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  batch_sise: 10\n")
    with pytest.raises(ValidationError, match="batch_sise"):
        Config.from_yaml(path)


def test_yaml_round_trip(tmp_path):
    config = Config.model_validate(
        {"data": {"fields": ["a", "b"], "tasks": ["x", "y"], "timestamp": None}}
    )
    path = tmp_path / "c.yaml"
    path.write_text(config.to_yaml())
    assert Config.from_yaml(path) == config


@pytest.mark.parametrize(
    "data",
    [
        {"fields": ["a"], "tasks": ["x"]},
        {"fields": [], "tasks": ["x", "y"]},
        {"fields": ["a", "x"], "tasks": ["x", "y"]},
        {"fields": ["a", "a"], "tasks": ["x", "y"]},
    ],
)
def test_data_config_rejects_inconsistent_columns(data):
    with pytest.raises(ValidationError):
        Config.model_validate({"data": data})
