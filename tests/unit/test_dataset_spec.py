"""The dataset spec: what it accepts, what it refuses (naming the key and the column), and the
names every layer derives from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from aitm.dataset import DEFAULT_SPEC, DatasetSpec, SpecError, load_spec

ROOT = Path(__file__).resolve().parents[2]


def _raw(**changes):
    raw = {
        "name": "credit-cards",
        "table": "data/sim",
        "timestamp": "event_timestamp",
        "tasks": ["click", "application", "approval", "activation"],
        "entities": {
            "user": {"key": "user_id", "fields": ["age_band", "income"]},
            "ad": {"key": "ad_id", "fields": ["card_type"]},
        },
        "context": ["position", "hour"],
        "numeric": ["income"],
        "candidate": "ad",
    }
    raw.update(changes)
    return raw


def test_the_issue_example_keys_are_accepted_and_names_derive_from_them():
    spec = DatasetSpec.parse(_raw())
    assert spec.fields == ["user_id", "age_band", "income", "ad_id", "card_type",
                           "position", "hour"]  # fmt: skip
    assert spec.feature_service == "credit_cards_v1"
    assert spec.slug == "credit_cards"
    assert spec.model_name == "credit-cards"
    assert list(spec.request_entities) == ["user"]
    assert spec.candidate_entity.key == "ad"[:2] + "_id"
    assert spec.field_type("income") == "float"
    assert spec.role("hour") == "context" and spec.role("card_type") == "entity:ad"


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"tasks": ["click"]}, ["tasks", "at least 2"]),
        ({"candidate": "business"}, ["candidate", "business"]),
        ({"context": ["position", "age_band"]}, ["age_band", "entities.user.fields", "context"]),
        ({"context": ["position", "position"]}, ["position", "named twice"]),
        ({"numeric": ["salary"]}, ["numeric", "salary"]),
        ({"numeric": ["ad_id"]}, ["numeric", "ad_id", "key"]),
        ({"tasks": ["click", "age_band"]}, ["age_band", "tasks"]),
        ({"colour": "red"}, ["colour", "unknown key"]),
        ({"types": {"hour": "float"}}, ["types", "hour"]),
        ({"ranges": {"hour": [23, 0]}}, ["ranges", "hour"]),
        ({"name": "9lives"}, ["name", "9lives"]),
    ],
)
def test_a_bad_spec_is_refused_naming_the_key_and_the_column(changes, words):
    with pytest.raises(SpecError) as error:
        DatasetSpec.parse(_raw(**changes), "bad.yaml")
    for word in words:
        assert word in str(error.value)
    assert str(error.value).startswith("bad.yaml:")


def test_a_missing_required_key_is_named():
    raw = _raw()
    del raw["candidate"]
    with pytest.raises(SpecError, match="candidate: required key is missing"):
        DatasetSpec.parse(raw)


def test_columns_the_table_lacks_are_named_with_their_key():
    spec = DatasetSpec.parse(_raw())
    with pytest.raises(SpecError) as error:
        spec.check_columns(["user_id", "age_band", "ad_id", "card_type", "position", "hour",
                            "click", "application", "approval", "event_timestamp"])  # fmt: skip
    text = str(error.value)
    assert "entities.user.fields: column 'income'" in text
    assert "tasks: column 'activation'" in text


def test_a_numeric_field_holding_strings_is_refused():
    spec = DatasetSpec.parse(_raw())
    spec.check_numeric("income", pd.Series([1.0, np.nan]).dtype)
    with pytest.raises(SpecError, match="numeric: column 'income' holds object"):
        spec.check_numeric("income", pd.Series(["high", "low"]).dtype)


def test_the_shipped_specs_load():
    default = load_spec()
    assert default.name == "aitm" and default.feature_service == "aitm_v1"
    assert Path(DEFAULT_SPEC).is_file()
    ali = load_spec(ROOT / "datasets" / "ali_ccp.yaml")
    assert ali.tasks == ["click", "purchase"] and ali.timestamp is None
    assert set(ali.numeric) <= set(ali.fields) and ali.candidate == "item"
    full = load_spec(ROOT / "datasets" / "ali_ccp_full.yaml")
    assert full.candidate_entity.key == "205"


def test_the_text_round_trips_with_an_absolute_table(tmp_path):
    (tmp_path / "t.parquet").write_bytes(b"")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(_raw(table="t.parquet")))
    spec = DatasetSpec.from_yaml(tmp_path / "s.yaml")
    assert spec.table_path() == tmp_path / "t.parquet"  # relative to the spec's folder
    again = DatasetSpec.from_text(spec.to_yaml())
    assert again.table_path() == (tmp_path / "t.parquet").resolve()
    assert again.fingerprint == spec.fingerprint


def test_the_fingerprint_changes_with_what_a_model_depends_on():
    spec = DatasetSpec.parse(_raw())
    assert DatasetSpec.parse(_raw(table="elsewhere")).fingerprint == spec.fingerprint
    assert DatasetSpec.parse(_raw(context=["hour"])).fingerprint != spec.fingerprint


def test_the_environment_names_the_spec_where_no_path_is_given(tmp_path, monkeypatch):
    path = tmp_path / "mine.yaml"
    path.write_text(DatasetSpec.parse(_raw()).to_yaml())
    monkeypatch.setenv("AITM_DATASET", str(path))
    assert load_spec().name == "credit-cards"
