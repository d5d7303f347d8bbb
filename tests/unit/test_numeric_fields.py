"""Numeric fields: statistics, encoding, missing values, the model's embedding of them, the
serving encoder and forward, LightGBM, and the config sections that name them."""

from __future__ import annotations

from typing import get_args

import numpy as np
import pandas as pd
import pytest
import torch

from aitm.catalog import build_model
from aitm.config import Config, DataConfig, ModelConfig, ModelKind
from aitm.data import DataError, check_frame, encode
from aitm.inference import Predictor
from aitm.layers import FieldEmbedding
from aitm.schema import CLIP_STD, FeatureSchema, FieldSpec, build_schema
from serving import scoring
from serving.errors import RequestError
from serving.forward import model_forward


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "device": ["ios", "ios", "android", "web"],
            "income": [10.0, 30.0, np.nan, 20.0],
            "age": [20, 40, 30, 30],  # integers, declared numeric
            "click": [1, 0, 0, 1],
            "buy": [1, 0, 0, 0],
        }
    )


def _schema(**kwargs) -> FeatureSchema:
    fields = ["device", "income", "age"]
    return build_schema(_frame(), fields, ["click", "buy"], numeric=["income", "age"], **kwargs)


def test_numeric_fields_get_training_statistics_and_no_vocabulary():
    schema = _schema()
    income, age = schema.field("income"), schema.field("age")
    assert income.dtype == age.dtype == "float"
    assert income.vocabulary == () and income.cardinality == 2
    assert income.mean == pytest.approx(20.0) and income.std == pytest.approx(np.std([10, 30, 20]))
    assert age.mean == pytest.approx(30.0)
    assert schema.numeric_positions == (1, 2)
    assert schema.cardinalities == [4, 2, 2]


def test_encode_is_float64_standardized_with_nan_for_missing_and_clipped():
    schema = _schema()
    rows = pd.DataFrame(
        {"device": ["ios", "tablet", "web"], "income": [20.0, None, 1e9], "age": [30, 30, -1e9]}
    )
    x = schema.encode(rows)
    assert x.dtype == np.float64
    assert x[:, 0].tolist() == [1.0, 0.0, 3.0]  # categorical indices, unknown -> 0
    assert x[0, 1] == pytest.approx(0.0) and np.isnan(x[1, 1]) and x[2, 1] == CLIP_STD
    assert x[2, 2] == -CLIP_STD
    sd = np.std([10, 30, 20])
    assert encode(_frame(), schema).x[:, 1][[0, 1, 3]] == pytest.approx([-10 / sd, 10 / sd, 0.0])


def test_encode_stays_int64_without_numeric_fields():
    schema = build_schema(_frame(), ["device", "age"], ["click", "buy"])
    assert schema.encode(_frame()).dtype == np.int64


def test_numeric_schema_round_trips_and_old_dicts_still_load():
    schema = _schema(embedding_dim=3)
    again = FeatureSchema.from_json(schema.to_json())
    assert again == schema
    np.testing.assert_array_equal(again.encode(_frame()), schema.encode(_frame()))
    old = {
        "tasks": ["click", "buy"],
        "fields": [{"name": "hour", "dtype": "int", "embedding_dim": 5, "vocabulary": [1, 2]}],
    }
    assert FeatureSchema.from_dict(old).field("hour").vocabulary == (1, 2)
    assert "mean" not in FeatureSchema.from_dict(old).to_dict()["fields"][0]


def test_strings_in_a_numeric_column_are_rejected_naming_the_column():
    schema = _schema()
    bad = _frame().assign(income=["1.5", "2", None, "x"])
    with pytest.raises(ValueError, match="numeric field 'income' holds string"):
        schema.encode(bad)
    with pytest.raises(ValueError, match="numeric field 'income'"):
        build_schema(bad, ["income"], ["click", "buy"], numeric=["income"])
    with pytest.raises(ValueError, match="numeric field 'income' holds bool"):
        schema.encode(_frame().assign(income=[True, False, True, True]))
    config = DataConfig(fields=["device", "income"], tasks=["click", "buy"], numeric=["income"])
    with pytest.raises(DataError, match="'income'"):
        check_frame(bad, config)
    check_frame(_frame(), config)


def test_numeric_field_must_be_a_field_and_have_sane_statistics():
    with pytest.raises(ValueError, match="not among the fields"):
        build_schema(_frame(), ["device"], ["click", "buy"], numeric=["income"])
    with pytest.raises(ValueError, match="std > 0"):
        FieldSpec("v", "float", (), 4, mean=0.0, std=0.0)
    with pytest.raises(ValueError, match="takes no vocabulary"):
        FieldSpec("v", "float", (1.0,), 4)
    constant = build_schema(_frame().assign(age=7), ["age"], ["click", "buy"], numeric=["age"])
    assert constant.field("age").std == 1.0


def test_data_config_numeric_is_a_subset_of_fields():
    assert DataConfig().numeric == []
    with pytest.raises(ValueError, match="not fields"):
        DataConfig(fields=["a"], tasks=["x", "y"], numeric=["b"])
    with pytest.raises(ValueError, match="duplicates"):
        DataConfig(fields=["a"], tasks=["x", "y"], numeric=["a", "a"])


def test_numeric_embedding_is_value_times_row_one_or_row_zero_when_missing():
    emb = FieldEmbedding([3, 2, 4], dim=2, numeric=[1])
    with torch.no_grad():
        emb.table.weight.copy_(torch.arange(18, dtype=torch.float32).view(9, 2))
    x = torch.tensor([[0.0, 2.5, 1.0], [2.0, float("nan"), 3.0]], dtype=torch.float64)
    out = emb(x)
    # field 1's rows are 3 (missing) and 4 (value); field 2's start at 5.
    assert out.tolist() == [[0.0, 1.0, 20.0, 22.5, 12.0, 13.0], [4.0, 5.0, 6.0, 7.0, 16.0, 17.0]]
    out.sum().backward()
    grad = emb.table.weight.grad
    assert grad[4].tolist() == [2.5, 2.5] and grad[3].tolist() == [1.0, 1.0]


def test_numeric_embedding_checks_its_positions():
    with pytest.raises(ValueError, match="cardinality 2"):
        FieldEmbedding([3, 5], dim=2, numeric=[1])
    with pytest.raises(ValueError, match="outside"):
        FieldEmbedding([3, 2], dim=2, numeric=[2])


def test_categorical_embedding_takes_float_indices_like_int_ones():
    emb = FieldEmbedding([3, 4], dim=2)
    x = torch.tensor([[0, 3], [2, 1]])
    assert torch.equal(emb(x.double()), emb(x))


def _predictor(kind: str, transfer: str = "ait") -> Predictor:
    schema = FeatureSchema(
        fields=(
            FieldSpec("user_id", "int", tuple(range(30)), 5),
            FieldSpec("income", "float", (), 5, mean=50.0, std=10.0),
            FieldSpec("city", "str", ("a", "b", "c"), 5),
        ),
        tasks=("click", "application", "approval"),
    )
    model = ModelConfig(kind=kind, transfer=transfer, tower_dims=(16, 8), dropout=(0.1, 0.1))
    config = Config(model=model)
    torch.manual_seed(0)
    return Predictor(model=build_model(schema, config.model).eval(), schema=schema, config=config)


@pytest.mark.parametrize("kind", get_args(ModelKind))
def test_the_served_forward_matches_the_predictor_with_numeric_fields(kind):
    predictor = _predictor(kind)
    forward = model_forward(predictor)
    frame = pd.DataFrame(
        {
            "user_id": list(range(20)),
            "income": [None if i % 4 == 0 else 30.0 + 3 * i for i in range(20)],
            "city": ["a", "b", "c", "zz"] * 5,
        }
    )
    x = predictor.schema.encode(frame)
    assert x.dtype == np.float64 and np.isnan(x[:, 1]).sum() == 5
    np.testing.assert_allclose(forward(x), predictor.predict_encoded(x), atol=1e-6)
    np.testing.assert_allclose(
        predictor.predict(frame).to_numpy(), predictor.predict_encoded(x), atol=0
    )


def test_serving_encoder_matches_the_schema_with_numeric_fields():
    schema = _predictor("mlp").schema
    rng = np.random.default_rng(0)
    columns = {
        "user_id": [int(v) for v in rng.integers(25, 35, 50)],
        "income": [
            None if v < 0.2 else (int(v * 100) if v < 0.5 else v * 100) for v in rng.random(50)
        ],
        "city": [str(v) for v in rng.choice(["a", "b", "q"], 50)],
    }
    x, unknown = scoring.Encoder(schema)(columns)
    assert x.dtype == np.float64 and x.flags.c_contiguous
    np.testing.assert_array_equal(x, schema.encode(pd.DataFrame(columns)))
    assert np.isnan(x[:, 1]).sum() == sum(v is None for v in columns["income"])
    assert set(unknown) == {"user_id", "city"}  # numeric fields have no unknown values
    with pytest.raises(RequestError, match="numeric field 'income': '3' is not a number"):
        scoring.Encoder(schema)({**columns, "income": ["3"] * 50})
    with pytest.raises(RequestError, match="numeric field 'income'"):
        scoring.Encoder(schema)({**columns, "income": [True] * 50})


def test_serving_encoder_stays_int64_without_numeric_fields():
    schema = FeatureSchema(fields=(FieldSpec("city", "str", ("a",), 4),), tasks=("x", "y"))
    x, _ = scoring.Encoder(schema)({"city": ["a", None]})
    assert x.dtype == np.int64 and x.tolist() == [[1], [0]]


def test_lightgbm_uses_a_numeric_column_as_a_real_value():
    pytest.importorskip("lightgbm")
    from aitm.evaluation import exact_auc
    from aitm.gbdt import GBDTConfig, fit_per_task

    rng = np.random.default_rng(0)
    n = 3000
    value = rng.normal(size=n)
    value[rng.random(n) < 0.1] = np.nan
    x = np.stack([rng.integers(0, 5, n).astype(np.float64), value], axis=1)
    # A threshold no categorical split over 3000 distinct values could learn from 2000 rows.
    click = rng.random(n) < np.where(np.nan_to_num(value, nan=-9) > 0.3, 0.7, 0.1)
    buy = click & (rng.random(n) < 0.5)
    y = np.stack([click, buy], axis=1).astype(np.float32)
    config = GBDTConfig(max_rounds=40, early_stopping_rounds=10, num_threads=1)
    fit = fit_per_task(
        ("click", "buy"), x[:2000], y[:2000], x[2000:2500], y[2000:2500], config, numeric=[1]
    )
    assert fit.numeric == (1,)
    infos = fit.models[0].booster_.dump_model()["feature_infos"]
    assert infos["f0"]["values"] and not infos["f1"]["values"]  # categorical f0, real-valued f1
    probs = fit.predict_proba(x[2500:])
    assert exact_auc(y[2500:, 0], probs[:, 0]) > 0.75
    lower = x[2500:].copy()
    lower[:, 1] = -2.0
    assert fit.predict_proba(lower)[:, 0].mean() < probs[:, 0].mean()
