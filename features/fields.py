"""Which model field comes from where, derived from a dataset spec at run time.

`FeastLayout(spec)` is the one place that turns an `aitm.dataset.DatasetSpec` into the feature
layer's names: one Feast entity and feature view per spec entity (`<entity>_features`, its
snapshot table `<entity>s.parquet`), the feature service (`spec.feature_service`), the columns of
the impression table (the entity frame), the Feast timestamp column and every column's type.

`repo_spec(repo)` is the spec a built Feast repo was made from: the `dataset.yaml` the build step
writes into it, else `$AITM_DATASET`, else the default spec.

The module-level names (`USER`, `AD`, `ENTITIES`, `FIELD_ROLES`, `INT_FIELDS`, `TASKS`,
`FEATURE_SERVICE`, `model_fields()`, `context_fields()`, ...) are the DEFAULT spec's
(datasets/simulated.yaml), kept for layers not yet moved to a spec; they are computed on first
use, not at import. New code takes a spec and uses `FeastLayout`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from aitm.dataset import ROW_ID, SNAPSHOT_TIME, DatasetSpec, FieldType, SpecError, load_spec

__all__ = [
    "DATASET_ENV",
    "DATASET_FILE",
    "IMPRESSIONS_FILE",
    "ROW_ID",
    "SNAPSHOT_TIME",
    "TIMESTAMP",
    "EntityView",
    "FeastLayout",
    "default_layout",
    "repo_spec",
]

TIMESTAMP = "event_timestamp"  # the Feast timestamp column when a spec names none
IMPRESSIONS_FILE = "impressions.parquet"
DATASET_FILE = "dataset.yaml"  # the spec a built repo was made from (types resolved)
DATASET_ENV = "AITM_DATASET"  # a spec path for `feast apply` on a repo without dataset.yaml


@dataclass(frozen=True)
class EntityView:
    """A Feast entity, the feature view of its attributes and its snapshot table."""

    name: str  # entity name; the feature view is "<name>_features"
    key: str  # join key, itself a model field
    features: tuple[str, ...]  # the attributes stored in Feast, in spec order
    timestamp: str  # the snapshot table's time column
    types: tuple[tuple[str, FieldType], ...]  # (column, type) of the key and the features

    @property
    def view(self) -> str:
        return f"{self.name}_features"

    @property
    def source(self) -> str:
        return f"{self.name}_snapshots"

    @property
    def snapshot_file(self) -> str:
        return f"{self.name}s.parquet"

    def type_of(self, column: str) -> FieldType:
        return dict(self.types)[column]

    @property
    def key_type(self) -> FieldType:
        return self.type_of(self.key)

    @property
    def columns(self) -> tuple[str, ...]:
        """The snapshot table's columns: key, timestamp, attributes."""
        return (self.key, self.timestamp, *self.features)


class FeastLayout:
    """The feature layer's names and types for one dataset spec.

    Types come from the spec (`spec.field_type`): numeric fields are float, declared types are
    kept, and any other field is a string until the build step resolves it from the table (the
    built repo's `dataset.yaml` has every type filled in).
    """

    def __init__(self, spec: DatasetSpec) -> None:
        self.spec = spec
        self.timestamp = spec.timestamp or TIMESTAMP
        if not spec.timestamp and TIMESTAMP in [*spec.fields, *spec.tasks]:
            raise SpecError(
                f"dataset {spec.name!r}: timestamp: the spec names none, and column "
                f"{TIMESTAMP!r} (the snapshot time Feast then needs) is one of its fields"
            )
        if ROW_ID in [*spec.fields, *spec.tasks]:
            raise SpecError(
                f"dataset {spec.name!r}: column {ROW_ID!r} is the row id the feature layer "
                "carries; a field or task cannot take that name"
            )

    def __repr__(self) -> str:
        return f"FeastLayout({self.spec.name!r})"

    def type_of(self, column: str) -> FieldType:
        """A field's type: the spec's, or str when the spec leaves it to the table."""
        return self.spec.field_type(column) or "str"

    def is_int(self, column: str) -> bool:
        return self.type_of(column) == "int"

    def is_float(self, column: str) -> bool:
        return self.type_of(column) == "float"

    @cached_property
    def entities(self) -> tuple[EntityView, ...]:
        out = []
        for name, entity in self.spec.entities.items():
            columns = [entity.key, *entity.fields]
            out.append(
                EntityView(
                    name=name,
                    key=entity.key,
                    features=tuple(entity.fields),
                    timestamp=self.timestamp,
                    types=tuple((c, self.type_of(c)) for c in columns),
                )
            )
        return tuple(out)

    def entity(self, name: str) -> EntityView:
        for view in self.entities:
            if view.name == name:
                return view
        raise KeyError(f"no entity {name!r} in dataset {self.spec.name!r}")

    @property
    def candidate(self) -> EntityView:
        """The entity a /rank request ranks (one row per candidate)."""
        return self.entity(self.spec.candidate)

    @property
    def request_entities(self) -> tuple[EntityView, ...]:
        """The other entities: one key value each per request."""
        return tuple(e for e in self.entities if e.name != self.spec.candidate)

    @property
    def stored(self) -> tuple[EntityView, ...]:
        """Entities with attributes, each with a feature view (a key alone stores nothing)."""
        return tuple(e for e in self.entities if e.features)

    @property
    def fields(self) -> tuple[str, ...]:
        """The model's fields in the order a model receives them (`spec.fields`)."""
        return tuple(self.spec.fields)

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.spec.tasks)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(e.key for e in self.entities)

    @property
    def context(self) -> tuple[str, ...]:
        """Fields that come with the request (one value each) and are never stored."""
        return tuple(self.spec.context)

    @property
    def candidate_context(self) -> tuple[str, ...]:
        """Fields that come with each candidate of a request and are never stored."""
        return tuple(self.spec.candidate_context)

    @property
    def request_fields(self) -> tuple[str, ...]:
        return self.context + self.candidate_context

    @property
    def feature_service(self) -> str:
        return self.spec.feature_service

    @property
    def project(self) -> str:
        return self.spec.slug

    def roles(self) -> dict[str, str]:
        """Each model field's origin: an entity's name, "context" or "candidate_context"."""
        out: dict[str, str] = {}
        for e in self.entities:
            out.update({c: e.name for c in (e.key, *e.features)})
        out.update({c: "context" for c in self.context})
        out.update({c: "candidate_context" for c in self.candidate_context})
        return {c: out[c] for c in self.fields}

    def impression_columns(self) -> tuple[str, ...]:
        """Columns of the impression table (the entity frame) the build step writes."""
        return (ROW_ID, *self.keys, self.timestamp, *self.request_fields, *self.tasks)

    def output_columns(self) -> tuple[str, ...]:
        """Columns of a training frame: model fields, labels, timestamp, row id."""
        return (*self.fields, *self.tasks, self.timestamp, ROW_ID)

    def feature_refs(self) -> list[str]:
        """`view:feature` references of the feature service, derived, never typed."""
        return [f"{e.view}:{f}" for e in self.stored for f in e.features]


def repo_spec(repo: str | Path | None = None) -> DatasetSpec:
    """The spec of a Feast repo: its `dataset.yaml` (written by the build step), else the spec
    at $AITM_DATASET, else the default spec."""
    if repo is not None and (Path(repo) / DATASET_FILE).is_file():
        return DatasetSpec.from_yaml(Path(repo) / DATASET_FILE)
    return load_spec(os.environ.get(DATASET_ENV) or None)


# -- the default spec's names, for layers not yet moved to a spec ---------------------------


@cache
def default_layout() -> FeastLayout:
    """The layout of the default spec (datasets/simulated.yaml)."""
    return FeastLayout(load_spec())


def model_fields() -> tuple[str, ...]:
    """The default spec's model fields."""
    return default_layout().fields


def context_fields() -> tuple[str, ...]:
    """The default spec's request fields."""
    return default_layout().request_fields


def entity_keys() -> tuple[str, ...]:
    """The default spec's entity keys."""
    return default_layout().keys


def impression_columns() -> tuple[str, ...]:
    """The default spec's impression-table columns."""
    return default_layout().impression_columns()


def feature_refs() -> list[str]:
    """The default spec's `view:feature` references."""
    return default_layout().feature_refs()


def is_int(name: str) -> bool:
    """Whether a field of the default spec holds integers."""
    return default_layout().is_int(name)


def _default(name: str) -> Any:
    layout = default_layout()
    values = {
        "USER": lambda: layout.entity("user"),
        "AD": lambda: layout.entity("ad"),
        "ENTITIES": lambda: layout.entities,
        "TASKS": lambda: layout.tasks,
        "FEATURE_SERVICE": lambda: layout.feature_service,
        "FIELD_ROLES": layout.roles,
        "INT_FIELDS": lambda: frozenset(f for f in layout.fields if layout.is_int(f)),
    }
    return values[name]()


_DEFAULT_NAMES = ("USER", "AD", "ENTITIES", "TASKS", "FEATURE_SERVICE", "FIELD_ROLES", "INT_FIELDS")


def __getattr__(name: str) -> Any:
    """The default spec's constants (`USER`, `AD`, `ENTITIES`, `TASKS`, `FEATURE_SERVICE`,
    `FIELD_ROLES`, `INT_FIELDS`), made on first use."""
    if name in _DEFAULT_NAMES:
        return _default(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
