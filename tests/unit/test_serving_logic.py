"""Serving logic without a server: request checks, scoring, settings, body limit."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest

from aitm.schema import FeatureSchema, FieldSpec
from serving import scoring
from serving.errors import RequestError
from serving.middleware import BodyLimit
from serving.requests import Candidate, check_candidates, check_rows
from serving.settings import ServingSettings

TASKS = ("click", "application", "approval")


@pytest.fixture
def schema() -> FeatureSchema:
    return FeatureSchema(
        fields=(
            FieldSpec("user_id", "int", (10, 11, 12), 4),
            FieldSpec("city", "str", ("a", "b"), 4),
        ),
        tasks=TASKS,
    )


def test_check_rows_builds_columns_in_schema_order(schema):
    columns = check_rows([{"city": "a", "user_id": 11}, {"user_id": 99, "city": None}], schema, 5)
    assert list(columns) == ["user_id", "city"]
    assert columns == {"user_id": [11, 99], "city": ["a", None]}


@pytest.mark.parametrize(
    ("rows", "status", "message"),
    [
        ([], 422, "rows is empty"),
        ([{"user_id": 1, "city": "a"}] * 6, 413, "6 rows exceed the limit of 5"),
        ([{"user_id": 1, "city": "a", "zip": 1}], 422, "unknown fields ['zip']"),
        ([{"user_id": 1}], 422, "missing fields ['city']"),
        ([{"user_id": "1", "city": "a"}], 422, "field 'user_id' needs int"),
        ([{"user_id": True, "city": "a"}], 422, "field 'user_id' needs int"),
        ([{"user_id": 1.5, "city": "a"}], 422, "field 'user_id' needs int"),
        ([{"user_id": 1, "city": 3}], 422, "field 'city' needs str"),
        ([{"user_id": 2**63, "city": "a"}], 422, "field 'user_id' needs int"),
    ],
)
def test_check_rows_names_what_is_wrong(schema, rows, status, message):
    with pytest.raises(RequestError) as info:
        check_rows(rows, schema, 5)
    assert info.value.status == status
    assert message in str(info.value)


def test_check_candidates():
    ok = Candidate(ad_id=1, weight=2.0, objective="click")
    check_candidates([ok], TASKS, 3)
    with pytest.raises(RequestError, match="empty"):
        check_candidates([], TASKS, 3)
    with pytest.raises(RequestError, match="4 candidates exceed the limit of 3"):
        check_candidates([ok] * 4, TASKS, 3)
    with pytest.raises(RequestError, match=r"unknown objective \['buy'\]"):
        check_candidates([Candidate(ad_id=1, weight=1, objective="buy")], TASKS, 3)
    with pytest.raises(ValueError, match="less than"):
        Candidate(ad_id=2**70, weight=1, objective="click")
    with pytest.raises(ValueError, match="greater than 0"):
        Candidate(ad_id=1, weight=0, objective="click")


def test_encode_counts_unknown_values_but_not_nulls(schema):
    columns = {"user_id": [10, 99, 98], "city": ["a", "zz", None]}
    for data in (columns, pd.DataFrame(columns)):
        x, unknown = scoring.encode(schema, data)
        assert x.tolist() == [[1, 1], [0, 0], [0, 0]]
        assert unknown == {"user_id": 2, "city": 1}


def test_monotone_and_violations():
    probs = np.array([[0.5, 0.6, 0.1], [0.5, 0.4, 0.3], [0.2, 0.1, 0.15]])
    assert scoring.violations(probs) == 2
    fixed = scoring.monotone(probs)
    assert fixed.tolist() == [[0.5, 0.5, 0.1], [0.5, 0.4, 0.3], [0.2, 0.1, 0.1]]
    assert scoring.violations(fixed) == 0


def test_rank_by_weight_times_objective_probability_stable_on_ties():
    probs = np.array([[0.1, 0.05, 0.01], [0.2, 0.1, 0.02], [0.1, 0.05, 0.01]])
    ranked = scoring.rank(probs, TASKS, [1.0, 1.0, 20.0], ["click", "click", "approval"])
    np.testing.assert_allclose(ranked.scores, [0.1, 0.2, 0.2])
    assert ranked.order.tolist() == [1, 2, 0]


def test_settings_from_env():
    settings = ServingSettings.from_env({"AITM_MAX_ROWS": "7", "AITM_FEAST_ONLINE": "redis"})
    assert settings.max_rows == 7 and settings.feast_online == "redis"
    with pytest.raises(ValueError):
        ServingSettings.from_env({"AITM_MAX_ROWS": "0"})


def _call(app, headers, chunks):
    sent, messages = (
        [],
        [
            {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
            for i, c in enumerate(chunks)
        ],
    )

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "headers": headers}
    asyncio.run(BodyLimit(app, max_bytes=10)(scope, receive, send))
    return sent


def test_body_limit_refuses_large_bodies_with_413():
    seen = []

    async def app(scope, receive, send):
        seen.append((await receive())["body"])

    sent = _call(app, [(b"content-length", b"11")], [b"x" * 11])
    assert sent[0]["status"] == 413 and not seen
    sent = _call(app, [], [b"x" * 6, b"x" * 6])  # chunked, no length
    assert sent[0]["status"] == 413 and not seen
    _call(app, [], [b"abc", b"de"])
    assert seen == [b"abcde"]


def test_encoder_matches_the_schema_encoding(schema):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "user_id": [int(v) for v in rng.integers(8, 15, 200)],
            "city": [None if v == "n" else v for v in rng.choice(["a", "b", "c", "n"], 200)],
        }
    )
    x, unknown = scoring.Encoder(schema)(frame)
    np.testing.assert_array_equal(x, schema.encode(frame))
    assert x.flags.c_contiguous
    np.testing.assert_array_equal(scoring.Encoder(schema)(frame.to_dict("list"))[0], x)
    assert unknown["city"] == int((frame["city"] == "c").sum())
