"""Request models, OpenAPI names and start-up checks derived from a dataset spec that is not
the simulator's: customer/offer entities, string customer ids, numeric and non-identifier
context fields, per-candidate context."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from aitm.dataset import DEFAULT_SPEC, DatasetSpec, SpecError, load_spec
from aitm.schema import FeatureSchema, FieldSpec
from serving.errors import RequestError
from serving.openapi import document
from serving.requests import check_rows, rank_models
from serving.settings import ServingSettings
from serving.spec import SpecMismatchError, check_expected, served_spec

TASKS = ["view", "apply", "fund"]
RAW = {
    "name": "lending",
    "table": "t",
    "tasks": TASKS,
    "entities": {
        "customer": {"key": "customer_id", "fields": ["segment"]},
        "offer": {"key": "offer_id", "fields": ["product"]},
    },
    "context": ["surface", "slot", "101", "score"],
    "candidate_context": ["distance_km"],
    "numeric": ["score", "distance_km"],
    "candidate": "offer",
    "types": {"customer_id": "str", "offer_id": "int", "slot": "int"},
    "ranges": {"slot": [1, 5]},
}


def _schema(spec: DatasetSpec) -> FeatureSchema:
    fields = tuple(
        FieldSpec(n, spec.field_type(n) or "str", () if n in spec.numeric else ("a",), 4)
        for n in spec.fields
    )
    return FeatureSchema(fields=fields, tasks=tuple(spec.tasks), extra={"dataset": RAW})


@pytest.fixture
def spec() -> DatasetSpec:
    return DatasetSpec.parse(RAW)


@pytest.fixture
def models(spec):
    return rank_models(spec, _schema(spec))


def _body(**change) -> dict:
    body = {
        "customer_id": "c-17",
        "context": {"surface": "app", "slot": 2, "101": "x9", "score": 0.5},
        "candidates": [
            {"offer_id": 7, "weight": 1.5, "objective": "fund", "distance_km": 3},
            {"offer_id": 8, "weight": 2.0, "objective": "view", "distance_km": None},
        ],
    }
    body.update(change)
    return body


def _errors(models, body) -> list[tuple[tuple, str]]:
    with pytest.raises(ValidationError) as info:
        models.body.model_validate(body)
    return [(e["loc"], e["type"]) for e in info.value.errors()]


def test_a_good_request_is_accepted_and_read_back_by_the_spec_names(models):
    parsed = models.body.model_validate(_body(monotone=True))
    values = dict(parsed)  # what BentoML passes the API: attribute -> value
    assert models.keys_of(values) == {"customer_id": "c-17"}
    assert values["monotone"] is True
    assert models.candidate_key == "offer_id"
    assert [c.key for c in parsed.candidates] == [7, 8]
    assert models.context_of(parsed.context, parsed.candidates) == {
        "surface": "app", "slot": 2, "101": "x9", "score": 0.5, "distance_km": [3.0, None],
    }  # fmt: skip
    null_score = _body()
    null_score["context"]["score"] = None  # a numeric field may be null (missing)
    assert models.body.model_validate(null_score).context.field_3 is None


def test_the_request_models_name_the_spec_fields_in_json_schema(models):
    schema = models.body.model_json_schema(mode="serialization")
    assert set(schema["properties"]) == {"customer_id", "context", "candidates", "monotone"}
    assert schema["properties"]["customer_id"]["type"] == "string"
    assert schema["additionalProperties"] is False
    context = schema["$defs"]["Context"]
    assert context["required"] == ["surface", "slot", "101", "score"]
    slot = context["properties"]["slot"]
    assert (slot["minimum"], slot["maximum"]) == (1, 5)
    candidate = schema["$defs"]["Candidate"]
    assert candidate["required"] == ["offer_id", "weight", "objective", "distance_km"]


@pytest.mark.parametrize(
    ("change", "where"),
    [
        # the simulator's name for the request key: the spec's key is missing, the other unknown
        (lambda b: {**{k: v for k, v in b.items() if k != "customer_id"}, "user_id": "c"},
         {(("customer_id",), "missing"), (("user_id",), "extra_forbidden")}),
        (lambda b: {**b, "customer_id": 17}, {(("customer_id",), "string_type")}),
        (lambda b: {**b, "customer_id": "c" * 201}, {(("customer_id",), "string_too_long")}),
        (lambda b: {**b, "context": {**b["context"], "slot": "2"}},
         {(("context", "slot"), "int_type")}),
        (lambda b: {**b, "context": {**b["context"], "slot": 9}},
         {(("context", "slot"), "less_than_equal")}),
        (lambda b: {**b, "context": {**b["context"], "score": "high"}},
         {(("context", "score"), "float_type")}),
        (lambda b: {**b, "context": {**b["context"], "score": True}},
         {(("context", "score"), "float_type")}),
        (lambda b: {**b, "context": {**b["context"], "101": 3}},
         {(("context", "101"), "string_type")}),
        (lambda b: {**b, "context": {**b["context"], "colour": "red"}},
         {(("context", "colour"), "extra_forbidden")}),
        (lambda b: {**b, "context": {k: v for k, v in b["context"].items() if k != "101"}},
         {(("context", "101"), "missing")}),
        (lambda b: {**b, "candidates": [{**b["candidates"][0], "offer_id": "abc"}]},
         {(("candidates", 0, "offer_id"), "int_type")}),
        (lambda b: {**b, "candidates": [{**b["candidates"][0], "ad_id": 7}]},
         {(("candidates", 0, "ad_id"), "extra_forbidden")}),
        (lambda b: {**b, "candidates": [{**b["candidates"][0], "distance_km": "far"}]},
         {(("candidates", 0, "distance_km"), "float_type")}),
        (lambda b: {**b, "monotone": "yes"}, {(("monotone",), "bool_type")}),
    ],
)  # fmt: skip
def test_a_bad_request_is_refused_naming_the_field(models, change, where):
    assert set(_errors(models, change(_body()))) == where


def test_spec_names_that_collide_with_the_body_are_refused(spec):
    raw = {**RAW, "candidate_context": ["weight"], "numeric": ["score"]}
    clash = DatasetSpec.parse(raw)
    with pytest.raises(SpecError, match=r"\['weight'\] cannot be served"):
        rank_models(clash, _schema(clash))


def test_the_default_spec_keeps_the_simulator_request(spec):
    default = load_spec(DEFAULT_SPEC)
    fields = tuple(FieldSpec(n, default.field_type(n) or "str", ("a",), 4) for n in default.fields)
    models = rank_models(default, FeatureSchema(fields=fields, tasks=("click", "application")))
    body = {
        "user_id": 1,
        "context": {"position": 1, "hour": 12, "channel": "feed"},
        "candidates": [{"ad_id": 3, "weight": 1.0, "objective": "click"}],
    }
    parsed = models.body.model_validate(body)
    assert models.keys_of(dict(parsed)) == {"user_id": 1}
    assert models.candidate_key == "ad_id"
    assert models.context_of(parsed.context, parsed.candidates) == body["context"]


def test_predict_rows_take_numbers_or_null_in_numeric_fields(spec):
    schema = _schema(spec)
    row = {n: "a" for n in schema.field_names}
    row.update(offer_id=1, slot=1, score=0.5, distance_km=None)
    columns = check_rows([row, {**row, "score": 3}, {**row, "score": None}], schema, 5)
    assert columns["score"] == [0.5, 3, None]
    for bad in ("0.5", True, math.inf):
        with pytest.raises(RequestError, match="field 'score' needs a number") as info:
            check_rows([{**row, "score": bad}], schema, 5)
        assert info.value.status == 422


def test_served_spec_is_the_artifact_one_or_the_checked_default(spec, tmp_path, monkeypatch):
    assert served_spec(_schema(spec), "lending:1") == spec
    other = tmp_path / "lending.yaml"
    other.write_text(spec.to_yaml())
    monkeypatch.setenv("AITM_DATASET", str(other))  # an old artifact is the simulator's anyway
    default = load_spec(DEFAULT_SPEC)
    fields = tuple(FieldSpec(n, "str", ("a",), 4) for n in default.fields)
    old = FeatureSchema(fields=fields, tasks=("click", "application"))  # no spec carried
    assert served_spec(old, "aitm:1").name == default.name
    other = FeatureSchema(fields=fields[:-1], tasks=("click", "application"))
    with pytest.raises(SpecMismatchError, match=r"carries no dataset spec.*\['channel'\]"):
        served_spec(other, "aitm:2")


def test_a_deployment_refuses_a_model_of_another_spec(spec):
    check_expected(spec, "lending:1", None)
    check_expected(spec, "lending:1", spec)
    with pytest.raises(
        SpecMismatchError,
        match="model lending:1 was trained on dataset 'lending' but AITM_DATASET names 'aitm'",
    ):
        check_expected(spec, "lending:1", load_spec(DEFAULT_SPEC))
    changed = DatasetSpec.parse({**RAW, "tasks": [*TASKS, "repay"]})
    with pytest.raises(SpecMismatchError, match="fingerprint"):
        check_expected(spec, "lending:1", changed)


def test_the_openapi_document_uses_the_spec_names(spec, models):
    settings = ServingSettings(max_rows=7, max_candidates=9)
    body = models.body.model_json_schema(mode="serialization")
    defs = body.pop("$defs")

    def post(schema):
        return {
            "post": {
                "responses": {"200": {}},
                "requestBody": {"content": {"application/json": {"schema": schema}}},
            }
        }

    generated = {
        "paths": {
            "/predict": post({"type": "object", "properties": {"rows": {"type": "array"}}}),
            "/rank": post(body),
            "/readyz": {"get": {"responses": {"200": {}}}},
        },
        "components": {"schemas": defs},
    }
    doc = document(generated, _schema(spec), settings, spec)
    text = str(doc)
    assert "user_id" not in text and "ad_id" not in text
    rank = doc["paths"]["/rank"]["post"]
    answer = rank["responses"]["200"]["content"]["application/json"]["schema"]
    candidate = answer["properties"]["candidates"]["items"]
    assert candidate["required"][0] == "offer_id"
    assert candidate["properties"]["offer_id"] == {"type": "integer"}
    assert rank["responses"]["404"]["description"].startswith("A customer or offer without")
    score = doc["components"]["schemas"]["Context"]["properties"]["score"]
    assert score["type"] == "number" and score["nullable"] is True and "anyOf" not in score
    row = doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    row = row["schema"]["properties"]["rows"]["items"]
    assert row["properties"]["score"] == {"type": "number", "nullable": True}
    assert row["properties"]["customer_id"]["type"] == "string"
