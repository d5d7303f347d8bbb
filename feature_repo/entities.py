"""Feast entities: one per entity of the dataset spec, keyed by its join key."""

from pathlib import Path

from feast import Entity, ValueType

from features.fields import FeastLayout, repo_spec

_layout = FeastLayout(repo_spec(Path(__file__).resolve().parent))
_VALUE_TYPES = {"int": ValueType.INT64, "str": ValueType.STRING}

entities = {
    e.name: Entity(
        name=e.name,
        join_keys=[e.key],
        value_type=_VALUE_TYPES[e.key_type],
        description=f"An entity of dataset {_layout.spec.name!r}, keyed by {e.key}.",
    )
    for e in _layout.stored
}
# Feast finds the objects a repo declares among its modules' globals: one name per entity.
globals().update({f"{name}_entity": entity for name, entity in entities.items()})
