"""Vocabularies, the unknown index, and the schema's round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aitm.data import encode
from aitm.schema import FeatureSchema, build_schema


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "device": ["ios", "ios", "android", "ios", "web", "android"],
            "hour": [1, 1, 1, 2, 2, 3],
            "city": pd.Categorical(["a", "b", "a", "a", "c", "b"]),
            "click": [1, 0, 0, 1, 0, 0],
            "buy": [1, 0, 0, 0, 0, 0],
        }
    )


def test_vocabulary_is_most_frequent_first_and_respects_min_count():
    schema = build_schema(_frame(), ["device", "hour", "city"], ["click", "buy"], min_count=2)
    assert schema.field("device").vocabulary == ("ios", "android")
    assert schema.field("hour").vocabulary == (1, 2)
    assert schema.field("city").vocabulary == ("a", "b")
    assert schema.field("device").dtype == "str"
    assert schema.field("hour").dtype == "int"
    assert schema.cardinalities == [3, 3, 3]


def test_unknown_rare_and_null_values_map_to_index_zero():
    schema = build_schema(_frame(), ["device", "hour", "city"], ["click", "buy"], min_count=2)
    rows = pd.DataFrame(
        {
            "device": ["ios", "web", None, "tablet"],
            "hour": [2, 3, 99, 1],
            "city": ["b", "c", "a", None],
        }
    )
    assert schema.encode(rows).tolist() == [[1, 2, 2], [0, 0, 0], [0, 0, 1], [0, 1, 0]]


def test_int_fields_accept_integral_floats_and_numeric_strings_else_unknown():
    schema = build_schema(_frame(), ["hour"], ["click", "buy"])
    got = schema.field("hour").encode(pd.Series([1.0, "2", "x", 2.5, None], dtype=object))
    assert got.tolist() == [1, 2, 0, 0, 0]


def test_categorical_columns_encode_like_plain_ones():
    schema = build_schema(_frame(), ["device"], ["click", "buy"])
    values = ["web", "ios", "nope", "android"]
    plain = schema.field("device").encode(pd.Series(values))
    categorical = schema.field("device").encode(pd.Series(pd.Categorical(values)))
    assert plain.tolist() == categorical.tolist() == [3, 1, 0, 2]


def test_schema_round_trips_through_json():
    schema = build_schema(_frame(), ["device", "hour", "city"], ["click", "buy"], embedding_dim=7)
    again = FeatureSchema.from_json(schema.to_json())
    assert again == schema
    frame = _frame()
    np.testing.assert_array_equal(again.encode(frame), schema.encode(frame))


def test_encode_names_missing_columns():
    schema = build_schema(_frame(), ["device", "hour"], ["click", "buy"])
    with pytest.raises(ValueError, match=r"missing field columns: \['hour'\]"):
        schema.encode(pd.DataFrame({"device": ["ios"]}))


def test_mixed_or_fractional_fields_are_rejected_with_the_field_name():
    with pytest.raises(ValueError, match="'f' mixes value types"):
        build_schema(pd.DataFrame({"f": ["a", 1], "y": [0, 0], "z": [0, 0]}), ["f"], ["y", "z"])
    with pytest.raises(ValueError, match="'g' holds non-integral"):
        build_schema(pd.DataFrame({"g": [0.5, 1.0], "y": [0, 0], "z": [0, 0]}), ["g"], ["y", "z"])


def test_encoded_arrays_are_row_major_for_batch_gathers():
    schema = build_schema(_frame(), ["device", "hour", "city"], ["click", "buy"], min_count=1)
    data = encode(_frame(), schema)
    assert data.x.flags.c_contiguous and data.y.flags.c_contiguous
    assert data.y.tolist() == _frame()[["click", "buy"]].to_numpy(dtype=np.float32).tolist()
