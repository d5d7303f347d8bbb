"""Request bodies typed from the served model's dataset spec, and the checks that need the
model's schema (field names, types).

A /rank body has one top-level key per request entity (for the default spec `user_id`), a
`context` object with exactly the spec's context fields, `candidates` (each the candidate
entity's key, `weight`, `objective` and the spec's candidate_context fields) and `monotone`. The
models are built at start-up with `pydantic.create_model`; field names that are no Python
identifiers (Ali-CCP's "101") travel as aliases, so the JSON names are always the spec's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, create_model

from aitm.dataset import DatasetSpec, SpecError
from aitm.schema import FeatureSchema
from serving.errors import RequestError

INT64 = 2**63  # ids and ints outside int64 are refused, never passed on to the store
MAX_STRING = 200  # characters in a string field's value (channel, city, ...)
Id = Annotated[StrictInt, Field(ge=-INT64, le=INT64 - 1)]
# Names a /rank body and its candidates use themselves; a spec's names must differ.
BODY_KEYS = ("context", "candidates", "monotone")
CANDIDATE_KEYS = ("weight", "objective")
_FORBID = ConfigDict(extra="forbid")


def _bound(value: float, dtype: str) -> float | int:
    return int(value) if dtype == "int" and float(value).is_integer() else value


def value_type(dtype: str, bounds: tuple[float, float] | None = None) -> Any:
    """The request type of a field: "int" a JSON integer in int64 (or in `bounds`), "str" a
    string of at most MAX_STRING characters, "float" a finite JSON number (int or float) or
    null. `bounds` are inclusive, the spec's `ranges`."""
    if dtype == "str":
        return Annotated[StrictStr, Field(max_length=MAX_STRING)]
    low, high = bounds if bounds is not None else (None, None)
    if dtype == "int":
        low = -INT64 if low is None else _bound(low, dtype)
        high = INT64 - 1 if high is None else _bound(high, dtype)
        return Annotated[StrictInt, Field(ge=low, le=high)]
    if dtype == "float":
        return Annotated[float, Field(strict=True, allow_inf_nan=False, ge=low, le=high)] | None
    raise ValueError(f"unknown field type {dtype!r}: expected int, str or float")


def key_type(dtype: str) -> Any:
    """An entity key's request type: an int64 JSON integer or a string."""
    if dtype not in ("int", "str"):
        raise ValueError(f"an entity key is an int or a str, not {dtype!r}")
    return Id if dtype == "int" else value_type("str")


@dataclass(frozen=True)
class RankModels:
    """The /rank request models of one spec and schema (see `rank_models`).

    Attribute names are generated (`key_0`, `field_0`, ...); `request_keys` and the others map
    each spec name to the attribute holding it.
    """

    body: type[BaseModel]  # the whole body: request keys, context, candidates, monotone
    context: type[BaseModel]
    candidate: type[BaseModel]
    request_keys: tuple[tuple[str, str], ...]  # (key name, body attribute)
    candidate_key: str  # the candidate entity's key name (the answer's name for it too)
    context_fields: tuple[tuple[str, str], ...]  # (field, context attribute)
    candidate_fields: tuple[tuple[str, str], ...]  # (candidate_context field, attribute)

    def keys_of(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Request key name -> value, from the body's attributes (what BentoML passes)."""
        return {name: body[attr] for name, attr in self.request_keys}

    def context_of(self, context: BaseModel, candidates: Sequence[BaseModel]) -> dict[str, Any]:
        """The lookup's context: each context field's value, and each candidate_context
        field's values (one per candidate)."""
        out = {name: getattr(context, attr) for name, attr in self.context_fields}
        for name, attr in self.candidate_fields:
            out[name] = [getattr(c, attr) for c in candidates]
        return out


def rank_models(
    spec: DatasetSpec, schema: FeatureSchema, base: type[BaseModel] = BaseModel
) -> RankModels:
    """The /rank models for `spec`, typed from the model's `schema` (int, str, float), bounded
    by the spec's ranges. `base` is the body's base class (BentoML's `IODescriptor` in the
    service). SpecError if a spec name collides with the body's own keys."""
    keys = [e.key for e in spec.request_entities.values()]
    candidate_key = spec.candidate_entity.key
    clash = sorted(set(keys) & set(BODY_KEYS))
    clash += sorted({candidate_key, *spec.candidate_context} & set(CANDIDATE_KEYS))
    if clash:
        raise SpecError(
            f"dataset {spec.name!r}: column(s) {clash} cannot be served: /rank uses "
            f"{list(BODY_KEYS)} in the body and {list(CANDIDATE_KEYS)} in each candidate"
        )

    def typed(names: Sequence[str]) -> dict[str, Any]:
        return {
            f"field_{i}": (
                value_type(schema.field(name).dtype, spec.ranges.get(name)),
                Field(alias=name),
            )
            for i, name in enumerate(names)
        }

    context = create_model(
        "Context",
        __config__=_FORBID,
        __doc__="Request-time fields of a /rank call, the same for every candidate.",
        **typed(spec.context),
    )
    candidate = create_model(
        "Candidate",
        __config__=_FORBID,
        key=(key_type(schema.field(candidate_key).dtype), Field(alias=candidate_key)),
        weight=(float, Field(gt=0, allow_inf_nan=False)),  # business value of the objective
        objective=(StrictStr, ...),  # a task name; score = weight * p(objective)
        **typed(spec.candidate_context),
    )
    request_keys = {
        f"key_{i}": (key_type(schema.field(k).dtype), Field(alias=k)) for i, k in enumerate(keys)
    }
    forbid = type("RankBody", (base,), {"model_config": _FORBID, "__module__": __name__})
    body = create_model(
        "Input",
        __base__=forbid,
        __module__=__name__,
        **request_keys,
        context=(context, ...),
        candidates=(list[candidate], ...),
        monotone=(StrictBool, False),
    )
    return RankModels(
        body=body,
        context=context,
        candidate=candidate,
        request_keys=tuple((k, f"key_{i}") for i, k in enumerate(keys)),
        candidate_key=candidate_key,
        context_fields=tuple((n, f"field_{i}") for i, n in enumerate(spec.context)),
        candidate_fields=tuple((n, f"field_{i}") for i, n in enumerate(spec.candidate_context)),
    )


def check_rows(
    rows: Sequence[Mapping[str, Any]], schema: FeatureSchema, limit: int
) -> dict[str, list[Any]]:
    """Raw rows -> columns (field -> one value per row) in schema order; RequestError naming
    what is wrong."""
    if not rows:
        raise RequestError("rows is empty: send at least one row")
    if len(rows) > limit:
        raise RequestError(f"{len(rows)} rows exceed the limit of {limit} per request", 413)
    names = schema.field_names
    known = set(names)
    columns: dict[str, list[Any]] = {n: [row.get(n) for row in rows] for n in names}
    problems: list[str] = []
    for i, row in enumerate(rows):
        if row.keys() != known:
            unknown = sorted(set(row) - known)
            missing = [n for n in names if n not in row]
            if unknown:
                problems.append(f"row {i}: unknown fields {unknown}")
            if missing:
                problems.append(f"row {i}: missing fields {missing}")
        if len(problems) >= 10:
            break
    for name in names:  # a column at a time: one type check per field, not per row and field
        want = schema.field(name).dtype
        for i, value in enumerate(columns[name]):
            if value is None:
                continue
            if want == "int":  # a JSON integer within int64 (not a bool, float or string)
                ok = type(value) is int and -INT64 <= value < INT64
            elif want == "float":  # a finite JSON number, int or float (not a bool or string)
                ok = (type(value) is int and -INT64 <= value < INT64) or (
                    type(value) is float and math.isfinite(value)
                )
            else:
                ok = type(value) is str and len(value) <= MAX_STRING
            if not ok:
                got = f"row {i}: field {name!r} needs {_wanted(want)}, got {value!r}"
                problems.append(got[:200])
                break
    if problems:
        raise RequestError("; ".join(problems[:10]))
    return columns


def _wanted(dtype: str) -> str:
    if dtype == "float":
        return "a number (a finite JSON number, or null)"
    return "int (int64)" if dtype == "int" else f"str (at most {MAX_STRING} characters)"


def check_candidates(candidates: Sequence[Any], tasks: Sequence[str], limit: int) -> None:
    if not candidates:
        raise RequestError("candidates is empty: send at least one candidate")
    if len(candidates) > limit:
        raise RequestError(
            f"{len(candidates)} candidates exceed the limit of {limit} per request", 413
        )
    bad = sorted({c.objective for c in candidates if c.objective not in tasks})
    if bad:
        raise RequestError(f"unknown objective {bad}: must be one of {list(tasks)}")
