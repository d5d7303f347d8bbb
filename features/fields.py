"""Which model field comes from where: the one place that splits the model's fields.

Every other list (Feast feature views, the feature service, the snapshot tables, the order of
the columns a model receives) is derived from `FIELD_ROLES` and `aitm.config.SIMULATED_FIELDS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from aitm.config import SIMULATED_FIELDS, SIMULATED_TASKS

Role = Literal["user", "ad", "context"]

# Each model field's origin: an attribute of the user, an attribute of the ad, or
# request-time context that arrives with the request and is never stored in Feast.
FIELD_ROLES: dict[str, Role] = {
    "user_id": "user", "age_band": "user", "gender": "user", "income_band": "user",
    "credit_band": "user", "occupation": "user", "city": "user", "device": "user",
    "ad_id": "ad", "business_id": "ad", "card_type": "ad", "creative_type": "ad",
    "position": "context", "hour": "context", "channel": "context",
}  # fmt: skip

# Fields holding integers; every other field holds strings (categories).
INT_FIELDS: frozenset[str] = frozenset({"user_id", "ad_id", "business_id", "position", "hour"})

FEATURE_SERVICE = "aitm_v1"  # the feature set the current model version uses
TIMESTAMP = "event_timestamp"
ROW_ID = "impression_id"  # carried through retrieval to undo the offline store's reordering
TASKS: tuple[str, ...] = SIMULATED_TASKS


@dataclass(frozen=True)
class EntitySpec:
    """A Feast entity and the feature view holding its attributes."""

    name: str  # entity name, also the feature view's name with the "_features" suffix
    key: str  # join key, itself a model field
    role: Role

    @property
    def view(self) -> str:
        return f"{self.name}_features"

    @cached_property
    def features(self) -> tuple[str, ...]:
        """The attributes stored in Feast: the entity's model fields, its key excluded."""
        return tuple(f for f in model_fields() if FIELD_ROLES[f] == self.role and f != self.key)

    @property
    def snapshot_file(self) -> str:
        return f"{self.name}s.parquet"


USER = EntitySpec(name="user", key="user_id", role="user")
AD = EntitySpec(name="ad", key="ad_id", role="ad")
ENTITIES: tuple[EntitySpec, ...] = (USER, AD)
IMPRESSIONS_FILE = "impressions.parquet"


def model_fields() -> tuple[str, ...]:
    """The model's field list, in the order a model receives them."""
    unknown = [f for f in SIMULATED_FIELDS if f not in FIELD_ROLES]
    if unknown:
        raise ValueError(f"model fields without a role in FIELD_ROLES: {unknown}")
    return SIMULATED_FIELDS


def is_int(name: str) -> bool:
    return name in INT_FIELDS


def context_fields() -> tuple[str, ...]:
    return tuple(f for f in model_fields() if FIELD_ROLES[f] == "context")


def entity_keys() -> tuple[str, ...]:
    return tuple(e.key for e in ENTITIES)


def impression_columns() -> tuple[str, ...]:
    """Columns of the entity frame (impression/label table) the build step writes."""
    return (ROW_ID, *entity_keys(), TIMESTAMP, *context_fields(), *TASKS)


def feature_refs() -> list[str]:
    """`view:feature` references of the feature service, derived, never typed."""
    return [f"{e.view}:{f}" for e in ENTITIES for f in e.features]
