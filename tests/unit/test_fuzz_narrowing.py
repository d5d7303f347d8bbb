"""The fuzz document's id narrowing: exactly the ids with features, as a range where it can."""

from tests.reliability.api_fuzz import _narrow


def test_a_contiguous_integer_range_becomes_minimum_and_maximum():
    schema = {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1, "enum": [1]}
    _narrow(schema, [12, 10, 11, 11])
    assert schema == {"type": "integer", "minimum": 10, "maximum": 12}


def test_gaps_or_strings_become_an_enum_of_every_id():
    gapped = {"type": "integer"}
    _narrow(gapped, [3, 1, 7])
    assert gapped["enum"] == [1, 3, 7] and "maximum" not in gapped
    names = {"type": "string"}
    _narrow(names, ["b", "a"])
    assert names["enum"] == ["a", "b"]
