"""Feast entities: the user and the ad an impression joins."""

from feast import Entity, ValueType

from features.fields import AD, USER

user = Entity(
    name=USER.name,
    join_keys=[USER.key],
    value_type=ValueType.INT64,
    description="A person shown an ad.",
)
ad = Entity(
    name=AD.name,
    join_keys=[AD.key],
    value_type=ValueType.INT64,
    description="A card offer's creative, owned by a business.",
)
