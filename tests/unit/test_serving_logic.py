"""Serving logic without a server: request checks, scoring, settings, middlewares."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest

from aitm.dataset import DEFAULT_SPEC, DatasetSpec, load_spec
from aitm.schema import FeatureSchema, FieldSpec
from serving import scoring
from serving.errors import RequestError
from serving.middleware import BodyLimit, JSONOnly, OpenAPIDocument
from serving.online import fail_fast
from serving.openapi import document
from serving.requests import check_candidates, check_rows, rank_models
from serving.settings import TIMEOUT_S, ServingSettings

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


@pytest.fixture
def spec() -> DatasetSpec:
    """A spec whose fields are the schema fixture's."""
    raw = {"name": "t", "table": "t", "tasks": list(TASKS), "candidate": "user",
           "entities": {"user": {"key": "user_id", "fields": ["city"]}}}  # fmt: skip
    return DatasetSpec.parse(raw)


def _default_candidate():
    """The default spec's /rank candidate model (ad_id, weight, objective)."""
    spec = load_spec(DEFAULT_SPEC)
    fields = tuple(FieldSpec(n, spec.field_type(n) or "str", (), 4) for n in spec.fields)
    return rank_models(spec, FeatureSchema(fields=fields, tasks=TASKS)).candidate


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
        ([{"user_id": 1, "city": "x" * 201}], 422, "field 'city' needs str (at most 200"),
    ],
)
def test_check_rows_names_what_is_wrong(schema, rows, status, message):
    with pytest.raises(RequestError) as info:
        check_rows(rows, schema, 5)
    assert info.value.status == status
    assert message in str(info.value)


def test_check_candidates():
    Candidate = _default_candidate()  # noqa: N806 (a model class)
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


def test_settings_come_from_the_aitm_environment(monkeypatch):
    monkeypatch.setenv("AITM_MAX_ROWS", "7")
    monkeypatch.setenv("AITM_FEAST_ONLINE", "redis")
    monkeypatch.setenv("AITM_ACCESS_LOG", "true")
    monkeypatch.setenv("AITM_REDIS_CONNECTION", "redis:6379")
    monkeypatch.setenv("AITM_FEAST_REGISTRY", "/feast/registry.db")  # another layer's setting
    settings = ServingSettings()
    assert settings.max_rows == 7 and settings.feast_online == "redis" and settings.access_log
    assert settings.redis_connection == "redis:6379"
    monkeypatch.setenv("AITM_MAX_ROWS", "0")
    with pytest.raises(ValueError, match="max_rows"):
        ServingSettings()
    with pytest.raises(ValueError, match="rate_limit_rps"):
        ServingSettings(rate_limit_rps=500)  # an unknown setting is an error


def test_max_concurrency_becomes_bentomls_traffic_limit():
    traffic = ServingSettings(max_concurrency=8).traffic()
    assert traffic == {"timeout": TIMEOUT_S, "max_concurrency": 8}
    assert ServingSettings(max_concurrency=0).traffic() == {"timeout": TIMEOUT_S}  # 0: no limit
    with pytest.raises(ValueError, match="max_concurrency"):
        ServingSettings(max_concurrency=-1)


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


async def _ok_app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _request(middleware, path="/rank", headers=(), method="POST") -> list[dict]:
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "path": path, "method": method, "headers": list(headers)}
    asyncio.run(middleware(scope, receive, send))
    return sent


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        (b"application/json", 200),
        (b"Application/JSON; charset=utf-8", 200),
        (b"multipart/form-data", 415),
        (b"text/plain", 415),
        (None, 415),
    ],
)
def test_model_routes_take_json_bodies_only(content_type, status):
    headers = [(b"content-type", content_type)] if content_type else []
    sent = _request(JSONOnly(_ok_app), headers=headers)
    assert sent[0]["status"] == status
    if status == 415:
        assert b"content-type must be application/json" in sent[1]["body"]
    assert _request(JSONOnly(_ok_app), path="/metrics", method="GET")[0]["status"] == 200


def _generated_document() -> dict:
    """The parts of BentoML's generated document that `document` rewrites."""
    body = {"type": "object", "properties": {}}
    rank_body = {"type": "object", "properties": {"candidates": {"type": "array"}}}
    predict_body = {"type": "object", "properties": {"rows": {"type": "array"}}}

    def post(schema):
        return {
            "post": {
                "responses": {"200": {}},
                "requestBody": {"content": {"application/json": {"schema": schema}}},
            }
        }

    return {
        "paths": {
            "/predict": post(predict_body),
            "/rank": post(rank_body),
            "/readyz": {"get": {"responses": {"200": {}}}},
            "/livez": {"get": {"responses": {"200": {}}}},
        },
        "components": {
            "schemas": {
                "Candidate": {
                    "properties": {
                        "objective": {"type": "string"},
                        "weight": {"type": "number", "exclusiveMinimum": 0},
                    }
                },
                "Other": body,
            }
        },
    }


def test_openapi_document_states_fields_limits_answers_and_statuses(schema, spec):
    settings = ServingSettings(max_rows=7, max_candidates=9)
    generated = _generated_document()
    doc = document(generated, schema, settings, spec)
    assert generated == _generated_document()  # the input is not modified
    predict = doc["paths"]["/predict"]["post"]
    rows = predict["requestBody"]["content"]["application/json"]["schema"]["properties"]["rows"]
    assert (rows["minItems"], rows["maxItems"]) == (1, 7)
    row = rows["items"]
    assert row["required"] == ["user_id", "city"] and row["additionalProperties"] is False
    assert row["properties"]["user_id"]["type"] == "integer"
    assert row["properties"]["user_id"]["maximum"] == 2**63 - 1
    assert row["properties"]["city"] == {"type": "string", "maxLength": 200, "nullable": True}
    assert predict["requestBody"]["required"] is True
    for route in ("/predict", "/rank"):
        responses = doc["paths"][route]["post"]["responses"]
        assert set(responses) == {"200", "400", "404", "413", "415", "422", "429", "500", "503"}
        # Every answer of the model's handler names the model version; errors answered before
        # it (415, 429, ...) cannot, so the header is required on 200 only.
        assert responses["200"]["headers"]["X-Model-Version"]["required"] is True
        assert responses["503"]["headers"]["X-Model-Version"]["required"] is False
    answer = predict["responses"]["200"]["content"]["application/json"]["schema"]
    probabilities = answer["properties"]["predictions"]["items"]
    assert probabilities["required"] == list(TASKS)
    rank = doc["paths"]["/rank"]["post"]
    candidates = rank["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert candidates["candidates"]["maxItems"] == 9
    candidate = doc["components"]["schemas"]["Candidate"]["properties"]
    assert candidate["objective"]["enum"] == list(TASKS)
    assert candidate["weight"] == {"type": "number", "minimum": 0, "exclusiveMinimum": True}
    assert "503" in doc["paths"]["/readyz"]["get"]["responses"]


def test_openapi_document_middleware_builds_once_and_serves_it():
    builds = []

    def build():
        builds.append(1)
        return {"openapi": "3.0.2"}

    served = OpenAPIDocument(_ok_app, build=build)
    for _ in range(2):
        sent = _request(served, path="/docs.json", method="GET")
        assert sent[0]["status"] == 200 and sent[1]["body"] == b'{"openapi": "3.0.2"}'
    assert builds == [1]
    assert _request(served, path="/predict")[1]["body"] == b"ok"


def test_the_redis_connection_fails_fast_unless_told_otherwise():
    assert fail_fast("redis:6379") == (
        "redis:6379,retry=null,socket_connect_timeout=0.5,socket_timeout=1"
    )
    given = fail_fast("redis:6379,password=x,socket_timeout=5")
    assert given == "redis:6379,password=x,socket_timeout=5,retry=null,socket_connect_timeout=0.5"
