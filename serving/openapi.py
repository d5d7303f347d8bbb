"""The service's OpenAPI document, made to say everything a client can rely on.

BentoML generates the document from the API signatures, so it cannot know the rows' fields (they
come from the model's schema), the request limits (from settings), the answers' shapes (the APIs
return ready responses) or the statuses other than 200/400/404/500. This adds them, so a client
generated from /docs.json, and a fuzzer checking answers against it, see the real contract.
"""

from __future__ import annotations

import copy
from typing import Any

from aitm.dataset import DatasetSpec
from aitm.schema import FeatureSchema
from serving.requests import INT64, MAX_STRING
from serving.settings import ServingSettings

ERROR_SCHEMA = "Error"
ERROR_STATUSES = {
    "400": "Malformed JSON, or a body not matching the request model (`detail` lists the "
    "validation errors)",
    "404": "A {entities} without features in the online store",
    "413": "Body, rows or candidates over the service's limits",
    "422": "A well-formed request the model cannot take: unknown or missing field, a value of "
    "the wrong type or too long, an unknown objective",
    "415": "A body that is not `application/json`",
    "429": "Over the service's limit of requests in flight: retry later",
    "500": "An internal error (a bug: please report it)",
    "503": "The online store or the model cannot answer now: retry later",
}


VERSION_HEADER = "X-Model-Version"


def _version_header(required: bool) -> dict[str, Any]:
    """The served model's tag: on every answer of the model's handler; an error answered
    before it (the body checks, the limit on requests in flight) carries none."""
    return {
        VERSION_HEADER: {
            "description": "The model version (BentoML tag) that answered",
            "required": required,
            "schema": {"type": "string"},
        }
    }


def _error_responses(spec: DatasetSpec) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}
    entities = " or ".join(spec.entities)
    return {
        status: {
            "description": text.format(entities=entities),
            "headers": _version_header(required=False),
            "content": {"application/json": {"schema": ref}},
        }
        for status, text in ERROR_STATUSES.items()
    }


def _probabilities(tasks: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": tasks,
        "additionalProperties": False,
        "properties": {t: {"type": "number", "minimum": 0, "maximum": 1} for t in tasks},
    }


def _predict_answer(tasks: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["request_id", "model_version", "tasks", "predictions"],
        "properties": {
            "request_id": {"type": "string"},
            "model_version": {"type": "string"},
            "tasks": {"type": "array", "items": {"type": "string", "enum": tasks}},
            "predictions": {"type": "array", "items": _probabilities(tasks)},
        },
    }


def _rank_answer(tasks: list[str], key: str, key_dtype: str) -> dict[str, Any]:
    candidate = {
        "type": "object",
        "required": [key, "objective", "weight", "score", "probabilities"],
        "properties": {
            key: {"type": "integer" if key_dtype == "int" else "string"},
            "objective": {"type": "string", "enum": tasks},
            "weight": {"type": "number"},
            "score": {"type": "number", "minimum": 0},
            "probabilities": _probabilities(tasks),
        },
    }
    return {
        "type": "object",
        "required": ["request_id", "model_version", "monotone", "candidates"],
        "properties": {
            "request_id": {"type": "string"},
            "model_version": {"type": "string"},
            "monotone": {"type": "boolean"},
            "candidates": {"type": "array", "items": candidate},
        },
    }


def _row(schema: FeatureSchema) -> dict[str, Any]:
    types = {
        "int": {"type": "integer", "minimum": -INT64, "maximum": INT64 - 1, "nullable": True},
        "str": {"type": "string", "maxLength": MAX_STRING, "nullable": True},
        "float": {"type": "number", "nullable": True},
    }
    return {
        "type": "object",
        "description": "Raw feature values; an unseen value is scored as unknown, null too "
        "(a number field's null is scored as missing)",
        "required": schema.field_names,
        "additionalProperties": False,
        "properties": {f.name: dict(types[f.dtype]) for f in schema.fields},
    }


def _openapi_30_bounds(node: Any) -> None:
    """Pydantic writes JSON Schema 2020 exclusive bounds (`exclusiveMinimum: 0`); OpenAPI 3.0
    wants `minimum: 0, exclusiveMinimum: true`. Rewrite them in place."""
    if isinstance(node, dict):
        for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            value = node.get(bound)
            if isinstance(value, int | float) and not isinstance(value, bool):
                node[plain], node[bound] = value, True
        for child in node.values():
            _openapi_30_bounds(child)
    elif isinstance(node, list):
        for child in node:
            _openapi_30_bounds(child)


def _openapi_30_nullable(node: Any) -> None:
    """Pydantic writes an optional value as `anyOf: [{...}, {type: null}]`; OpenAPI 3.0 has no
    null type, it wants `{..., nullable: true}`. Rewrite them in place."""
    if isinstance(node, dict):
        options = node.get("anyOf")
        if isinstance(options, list) and {"type": "null"} in options:
            rest = [o for o in options if o != {"type": "null"}]
            if len(rest) == 1 and isinstance(rest[0], dict) and "$ref" not in rest[0]:
                del node["anyOf"]
                node.update(rest[0], nullable=True)
        for child in node.values():
            _openapi_30_nullable(child)
    elif isinstance(node, list):
        for child in node:
            _openapi_30_nullable(child)


def document(
    generated: dict[str, Any],
    schema: FeatureSchema,
    settings: ServingSettings,
    spec: DatasetSpec,
) -> dict[str, Any]:
    """BentoML's generated document (`Service.openapi_spec.asdict()`) with the model's fields,
    the limits, the answers' shapes and every status the model routes answer with; the /rank
    names (keys, context, the candidate's key) are the served dataset `spec`'s."""
    doc = copy.deepcopy(generated)
    _openapi_30_bounds(doc)
    _openapi_30_nullable(doc)
    tasks = list(schema.tasks)
    key = spec.candidate_entity.key
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas[ERROR_SCHEMA] = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string", "description": "what was wrong"},
            "request_id": {"type": "string"},
            "detail": {"description": "BentoML's validation errors (400 only)"},
        },
    }
    schemas["Candidate"]["properties"]["objective"]["enum"] = tasks
    answers = {
        "/predict": _predict_answer(tasks),
        "/rank": _rank_answer(tasks, key, schema.field(key).dtype),
    }
    for route, answer in answers.items():
        operation = doc["paths"][route]["post"]
        operation["responses"] = {
            "200": {"description": "Successful Response",
                    "headers": _version_header(required=True),
                    "content": {"application/json": {"schema": answer}}},
            **_error_responses(spec),
        }  # fmt: skip
        operation["requestBody"]["required"] = True
    request = doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    rows = request["schema"]["properties"]["rows"]
    rows.update(minItems=1, maxItems=settings.max_rows, items=_row(schema))
    request = doc["paths"]["/rank"]["post"]["requestBody"]["content"]["application/json"]
    candidates = request["schema"]["properties"]["candidates"]
    candidates.update(minItems=1, maxItems=settings.max_candidates)
    doc["paths"]["/readyz"]["get"]["responses"]["503"] = {
        "description": "Not ready: the online store cannot be reached"
    }
    return doc
