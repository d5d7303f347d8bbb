"""The dataset spec inside the model artifact, the config built from a spec, and `aitm train
--dataset`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from aitm.checkpoint import save_artifact
from aitm.cli import app
from aitm.config import Config, DataConfig, ModelConfig, TrainConfig
from aitm.dataset import DatasetSpec, SpecError, load_spec, spec_of
from aitm.inference import Predictor
from aitm.training import train

SPEC = """
name: shop
table: table.csv
timestamp: null
tasks: [click, buy]
entities:
  user: {key: user_id, fields: [income]}
  item: {key: item_id, fields: [brand]}
context: [hour]
numeric: [income]
candidate: item
min_count: 2
"""
SMALL = ModelConfig(tower_dims=(8, 4), dropout=(0.0, 0.0))


def _table(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.normal(40.0, 8.0, n)
    income[rng.random(n) < 0.1] = np.nan
    click = rng.random(n) < 0.3
    return pd.DataFrame(
        {
            "user_id": rng.integers(0, 20, n),
            "income": income,
            "item_id": rng.integers(100, 110, n),
            "brand": rng.choice(["x", "y"], n),
            "hour": rng.integers(0, 24, n),
            "click": click.astype(int),
            "buy": (click & (rng.random(n) < 0.4)).astype(int),
        }
    )


def _config(spec: DatasetSpec) -> Config:
    train_config = TrainConfig(max_epochs=1, batch_size=64, progress=False)
    return Config(model=SMALL, train=train_config).with_dataset(spec)


def test_data_config_from_a_spec_takes_its_names_and_min_count():
    spec = DatasetSpec.from_text(SPEC)
    data = DataConfig.from_spec(spec)
    assert data.fields == ["user_id", "income", "item_id", "brand", "hour"]
    assert data.tasks == ["click", "buy"] and data.numeric == ["income"]
    assert data.timestamp is None and data.min_count == 2
    loose = spec.model_copy(update={"min_count": None})
    assert DataConfig.from_spec(loose, min_count=3).min_count == 3
    assert DataConfig.from_spec(loose).min_count == DataConfig().min_count
    config = Config(model=SMALL).with_dataset(spec)
    assert config.data == data and config.model == SMALL


def test_default_data_config_is_the_default_spec():
    spec = load_spec()
    assert DataConfig().fields == spec.fields and DataConfig().tasks == spec.tasks


def test_an_artifact_trained_with_a_spec_carries_it(tmp_path):
    spec = DatasetSpec.from_text(SPEC, base_dir=str(tmp_path))
    result = train(_config(spec), _table(), _table(100, 1), dataset=spec)
    assert result.schema.extra["feature_service"] == "shop_v1"
    path = save_artifact(result, tmp_path / "model")
    loaded = Predictor.load(path)
    again = spec_of(loaded.schema)
    assert isinstance(again, DatasetSpec)
    assert again.fields == spec.fields and again.numeric == ["income"]
    # Types resolved from the training data; the numeric field stays float.
    assert again.types == {"user_id": "int", "item_id": "int", "brand": "str", "hour": "int"}
    assert again.field_type("income") == "float"
    assert again.model_dump(exclude={"types"}) == spec.model_dump(exclude={"types"})
    assert loaded.schema.extra["feature_service"] == spec.feature_service
    probs = loaded.predict(_table(5, 2))
    assert probs.shape == (5, 2) and np.isfinite(probs.to_numpy()).all()


def test_spec_of_is_none_without_a_spec_and_a_mismatched_spec_is_refused():
    spec = DatasetSpec.from_text(SPEC)
    config = _config(spec)
    result = train(config, _table(), _table(100, 1))
    assert spec_of(result.schema) is None
    other = spec.model_copy(update={"tasks": ["buy", "click"]})
    with pytest.raises(ValueError, match=r"dataset 'shop': its tasks \['buy', 'click'\] differ"):
        train(config, _table(), _table(100, 1), schema=result.schema, dataset=other)


def test_cli_train_with_a_bad_spec_exits_2_with_the_spec_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC.replace("numeric: [income]", "numeric: [salary]"))
    run = CliRunner().invoke(app, ["train", "--dataset", str(bad), "--out", str(tmp_path / "m")])
    assert run.exit_code == 2
    with pytest.raises(SpecError) as expected:
        load_spec(bad)
    assert str(expected.value) in run.output
    assert "numeric: column 'salary'" in run.output
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_cli_train_with_a_spec_reads_its_table_and_the_artifact_carries_it(tmp_path):
    (tmp_path / "spec.yaml").write_text(SPEC)
    _table(400).to_csv(tmp_path / "table.csv", index=False)
    config = tmp_path / "config.yaml"
    config.write_text(
        Config(model=SMALL, train=TrainConfig(batch_size=64, progress=False)).to_yaml()
    )
    out = tmp_path / "model"
    args = ["train", "--dataset", str(tmp_path / "spec.yaml"), "--out", str(out)]
    run = CliRunner().invoke(app, [*args, "--config", str(config), "--epochs", "1"])
    assert run.exit_code == 0, run.output
    assert set(json.loads(run.stdout)["val_auc"]) == {"click", "buy"}
    loaded = Predictor.load(out)
    assert loaded.config.data.numeric == ["income"] and loaded.config.data.min_count == 2
    assert spec_of(loaded.schema).name == "shop"


def test_cli_train_needs_data_or_a_spec(tmp_path):
    run = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "m")])
    assert run.exit_code == 2 and "give --data" in run.output
