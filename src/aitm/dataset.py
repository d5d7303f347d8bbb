"""The dataset spec: the one place that knows a dataset's names.

One YAML file says which table to read, its funnel steps in order, which fields belong to which
entity (stored in Feast), which arrive with each request, and which are numbers. Feast, the
validation suite, the pipeline, serving and monitoring all derive their names from it at run
time, and its content travels inside the model artifact. `datasets/simulated.yaml` is the
default; the simulator is one spec among others.

    name: credit-cards
    table: data/sim
    timestamp: event_timestamp
    tasks: [click, application, approval, activation]
    entities:
      user: {key: user_id, fields: [age_band, gender]}
      ad:   {key: ad_id, fields: [business_id, card_type]}
    context: [position, hour, channel]
    numeric: []
    candidate: ad
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

FieldType = Literal["int", "str", "float"]
_SHIPPED = Path("datasets") / "simulated.yaml"
# Beside src/ in a checkout; in an image with the package installed, under its working folder.
DEFAULT_SPEC = next(
    (p for p in (Path(__file__).resolve().parents[2] / _SHIPPED, Path.cwd() / _SHIPPED)
     if p.is_file()),
    Path(__file__).resolve().parents[2] / _SHIPPED,
)  # fmt: skip
DATASET_ENV = "AITM_DATASET"  # names the spec where no path is given
ROW_ID = "impression_id"  # the row id carried through Feast retrieval (added when absent)
SNAPSHOT_TIME = "2020-01-01T00:00:00+00:00"  # every row's time when the table has none
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")


class SpecError(ValueError):
    """A dataset spec that cannot be used; the message names the key and the column."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EntitySpec(_Strict):
    """A Feast entity: its join key (itself a model field) and the attributes stored with it."""

    key: str
    fields: list[str] = Field(default_factory=list)


class FloorsSpec(_Strict):
    """Gate floors that suit the dataset (a 100-row sample cannot reach the default ones)."""

    default_auc_floor: float | None = Field(default=None, ge=0.0, le=1.0)
    auc_floor: dict[str, float] = Field(default_factory=dict)
    min_rows: int | None = Field(default=None, ge=1)  # validation: rows a window needs
    # validation: distinct values a field needs (1 lets a sample's constant fields pass)
    min_distinct: int | None = Field(default=None, ge=1)
    # validation: share of a category's values that must be in the training vocabulary
    known_share: float | None = Field(default=None, ge=0.0, le=1.0)


class DatasetSpec(_Strict):
    name: str
    table: str  # Parquet file, folder of parts, CSV file, folder of CSVs, or train/ val/ test/
    timestamp: str | None = None  # None: one snapshot time, a seeded random split
    tasks: list[str]  # funnel order
    entities: dict[str, EntitySpec]
    context: list[str] = Field(default_factory=list)  # arrive with each request, never stored
    # Arrive with each candidate of a /rank request (user x item crosses), never stored.
    candidate_context: list[str] = Field(default_factory=list)
    numeric: list[str] = Field(default_factory=list)  # numbers, not categories
    candidate: str  # the entity /rank ranks; the other entities' keys come with the request
    types: dict[str, FieldType] = Field(default_factory=dict)  # per-field types; else inferred
    # Inclusive bounds of number-valued fields, checked by validation (numeric fields without
    # one get the reference window's observed range).
    ranges: dict[str, tuple[float, float]] = Field(default_factory=dict)
    min_count: int | None = Field(default=None, ge=1)  # rarer category values share index 0
    version: int = Field(default=1, ge=1)  # feature-set version: names the feature service
    eval_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)  # held out when not split already
    seed: int = 0  # the random split when the table has no time column
    floors: FloorsSpec = Field(default_factory=FloorsSpec)
    # The folder of the spec file it was read from (see `table_path`).
    base_dir: str | None = Field(default=None, exclude=True)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"name {value!r}: letters, digits, '-' and '_', starting with a letter"
            )
        return value

    @model_validator(mode="after")
    def _check(self) -> DatasetSpec:
        if len(self.tasks) < 2:
            raise ValueError(f"tasks: a funnel needs at least 2 steps, got {self.tasks}")
        if not self.entities:
            raise ValueError("entities: name at least one entity (the candidate)")
        if self.candidate not in self.entities:
            raise ValueError(
                f"candidate: {self.candidate!r} is not an entity (entities: "
                f"{sorted(self.entities)})"
            )
        seen: dict[str, str] = {}

        def claim(column: str, where: str) -> None:
            if column in seen:
                raise ValueError(f"column {column!r} is named twice: in {seen[column]} and {where}")
            seen[column] = where

        for name, entity in self.entities.items():
            claim(entity.key, f"entities.{name}.key")
            for column in entity.fields:
                claim(column, f"entities.{name}.fields")
        for column in self.context:
            claim(column, "context")
        for column in self.candidate_context:
            claim(column, "candidate_context")
        for column in self.tasks:
            claim(column, "tasks")
        if self.timestamp:
            claim(self.timestamp, "timestamp")
        fields = set(self.fields)
        for key, names in (("numeric", self.numeric), ("types", list(self.types))):
            for column in names:
                if column not in fields:
                    raise ValueError(f"{key}: column {column!r} is not a field of any role")
        if len(set(self.numeric)) != len(self.numeric):
            raise ValueError(f"numeric: a column is named twice in {self.numeric}")
        keys = {e.key for e in self.entities.values()}
        for column in self.numeric:
            if column in keys:
                raise ValueError(f"numeric: column {column!r} is an entity key, not a number")
            if self.types.get(column, "float") != "float":
                raise ValueError(
                    f"types: column {column!r} is numeric, so its type is float, "
                    f"not {self.types[column]!r}"
                )
        for column, kind in self.types.items():
            if kind == "float" and column not in self.numeric:
                raise ValueError(f"types: column {column!r} is float but not listed in numeric")
        for column, (low, high) in self.ranges.items():
            if column not in fields:
                raise ValueError(f"ranges: column {column!r} is not a field of any role")
            if low > high:
                raise ValueError(f"ranges: column {column!r}: low {low} exceeds high {high}")
        for task in self.floors.auc_floor:
            if task not in self.tasks:
                raise ValueError(f"floors.auc_floor: {task!r} is not a task")
        return self

    # -- names derived from the spec ------------------------------------------------------

    @property
    def fields(self) -> list[str]:
        """The model's fields in the order a model receives them: each entity's key and
        attributes, in the spec's order, then the request context, then per-candidate
        context."""
        out: list[str] = []
        for entity in self.entities.values():
            out += [entity.key, *entity.fields]
        return out + list(self.context) + list(self.candidate_context)

    @property
    def slug(self) -> str:
        """The name as Feast and BentoML accept it (letters, digits, underscores)."""
        return self.name.replace("-", "_").lower()

    @property
    def feature_service(self) -> str:
        """The Feast feature service of this spec's feature set, e.g. `credit_cards_v1`."""
        return f"{self.slug}_v{self.version}"

    @property
    def model_name(self) -> str:
        """The BentoML model name (BentoML takes lower case, digits, '-', '_' and '.')."""
        return self.name.lower()

    @property
    def keys(self) -> list[str]:
        return [e.key for e in self.entities.values()]

    @property
    def candidate_entity(self) -> EntitySpec:
        return self.entities[self.candidate]

    @property
    def request_entities(self) -> dict[str, EntitySpec]:
        """The entities other than the candidate: their keys come with a /rank request."""
        return {n: e for n, e in self.entities.items() if n != self.candidate}

    @property
    def request_fields(self) -> list[str]:
        """Fields that arrive with a request rather than from Feast."""
        return list(self.context) + list(self.candidate_context)

    def role(self, column: str) -> str:
        """'entity:<name>' for keys and attributes, 'context', 'candidate_context' or 'task'."""
        for name, entity in self.entities.items():
            if column == entity.key or column in entity.fields:
                return f"entity:{name}"
        if column in self.context:
            return "context"
        if column in self.candidate_context:
            return "candidate_context"
        if column in self.tasks:
            return "task"
        raise KeyError(f"column {column!r} is not in dataset {self.name!r}")

    def field_type(self, column: str) -> FieldType | None:
        """The declared type (numeric fields are float); None: inferred from the table."""
        if column in self.numeric:
            return "float"
        return self.types.get(column)

    def table_path(self) -> Path:
        """`table` as a path: relative to the spec's folder where it exists there, else to the
        working directory (where `make run` runs)."""
        path = Path(self.table).expanduser()
        if not path.is_absolute() and self.base_dir and (Path(self.base_dir) / path).exists():
            return Path(self.base_dir) / path
        return path

    @property
    def fingerprint(self) -> str:
        """A short hash of what a model depends on (names, roles, types, tasks)."""
        content = self.model_dump(
            mode="json", include={"entities", "context", "candidate_context", "numeric", "tasks"}
        )
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:12]

    # -- reading and writing --------------------------------------------------------------

    @classmethod
    def parse(cls, raw: Any, source: str = "dataset spec", base_dir: str | None = None):
        if not isinstance(raw, Mapping):
            raise SpecError(f"{source}: a dataset spec is a mapping, got {type(raw).__name__}")
        try:
            return cls.model_validate({**raw, "base_dir": base_dir})
        except ValidationError as exc:
            raise SpecError(f"{source}: {_describe(exc)}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> DatasetSpec:
        path = Path(path)
        if not path.is_file():
            raise SpecError(f"{path}: no such dataset spec")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise SpecError(f"{path}: not valid YAML ({exc})") from None
        return cls.parse(raw, str(path), base_dir=str(path.resolve().parent))

    @classmethod
    def from_text(cls, text: str, base_dir: str | None = None) -> DatasetSpec:
        """A spec from YAML text (a pipeline parameter, or the copy inside an artifact)."""
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SpecError(f"dataset spec: not valid YAML ({exc})") from None
        return cls.parse(raw, "dataset spec", base_dir=base_dir)

    def to_yaml(self) -> str:
        """The spec as YAML, `table` made absolute so the text stands alone."""
        data = self.model_dump(mode="json", exclude={"base_dir"})
        data["table"] = str(self.table_path().resolve())
        return yaml.safe_dump(data, sort_keys=False)

    def with_types(self, types: Mapping[str, FieldType]) -> DatasetSpec:
        """This spec with every field's type filled in (declared types win)."""
        merged = {**{k: v for k, v in types.items() if k not in self.numeric}, **self.types}
        merged = {k: v for k, v in merged.items() if v != "float"}
        return self.model_copy(update={"types": merged})

    # -- checks against a table -----------------------------------------------------------

    def check_columns(self, columns: Iterable[str], *, with_labels: bool = True) -> None:
        """SpecError naming every column (and its key) that the table lacks."""
        have = set(columns)
        needed = [(c, self._key_of(c)) for c in self.fields]
        if with_labels:
            needed += [(t, "tasks") for t in self.tasks]
        if self.timestamp:
            needed.append((self.timestamp, "timestamp"))
        missing = [f"{key}: column {c!r}" for c, key in needed if c not in have]
        if missing:
            raise SpecError(
                f"dataset {self.name!r}: the table {self.table_path()} lacks " + "; ".join(missing)
            )

    def _key_of(self, column: str) -> str:
        role = self.role(column)
        if role.startswith("entity:"):
            name = role.split(":", 1)[1]
            part = "key" if self.entities[name].key == column else "fields"
            return f"entities.{name}.{part}"
        return role

    def check_numeric(self, column: str, dtype: Any) -> None:
        """SpecError unless a numeric field's column holds numbers."""
        import pandas as pd

        is_number = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
        if not is_number:
            raise SpecError(
                f"dataset {self.name!r}: numeric: column {column!r} holds {dtype} values, "
                "not numbers"
            )


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "missing":
            message = "required key is missing"
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def load_spec(path: str | Path | None = None) -> DatasetSpec:
    """The spec at `path`, else the one $AITM_DATASET names (a deployment's ConfigMap sets it),
    else the default (`datasets/simulated.yaml`)."""
    return DatasetSpec.from_yaml(path or os.environ.get(DATASET_ENV) or DEFAULT_SPEC)


def spec_of(schema: Any) -> DatasetSpec | None:
    """The dataset spec a model artifact's feature schema carries (`schema.extra["dataset"]`,
    written by `aitm.training.train(..., dataset=spec)`), or None for a model trained without
    one. `schema` is an `aitm.schema.FeatureSchema`."""
    raw = schema.extra.get("dataset")
    if raw is None:
        return None
    return DatasetSpec.parse(raw, "the model artifact's dataset spec")
