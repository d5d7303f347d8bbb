"""Typed request bodies and the checks that need the model's schema (field names, types)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from aitm.schema import FeatureSchema
from serving.errors import RequestError

INT64 = 2**63  # ids and ints outside int64 are refused, never passed on to the store
MAX_STRING = 200  # characters in a string field's value (channel, city, ...)
Id = Annotated[StrictInt, Field(ge=-INT64, le=INT64 - 1)]


class Context(BaseModel):
    """Request-time fields of a /rank call, the same for every candidate."""

    model_config = ConfigDict(extra="forbid")
    position: StrictInt = Field(ge=0, le=1_000)
    hour: StrictInt = Field(ge=0, le=23)
    channel: StrictStr = Field(max_length=MAX_STRING)


class Candidate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ad_id: Id
    weight: float = Field(gt=0, allow_inf_nan=False)  # business value of the objective
    objective: StrictStr  # a task name; score = weight * p(objective)


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
    return "int (int64)" if dtype == "int" else f"str (at most {MAX_STRING} characters)"


def check_candidates(candidates: Sequence[Candidate], tasks: Sequence[str], limit: int) -> None:
    if not candidates:
        raise RequestError("candidates is empty: send at least one candidate")
    if len(candidates) > limit:
        raise RequestError(
            f"{len(candidates)} candidates exceed the limit of {limit} per request", 413
        )
    bad = sorted({c.objective for c in candidates if c.objective not in tasks})
    if bad:
        raise RequestError(f"unknown objective {bad}: must be one of {list(tasks)}")
