"""Feature views: user and ad attributes, fields derived from features.fields."""

from datetime import timedelta

from data_sources import ad_snapshots, user_snapshots
from entities import ad, user
from feast import FeatureView, Field
from feast.types import Int64, String

from features.fields import AD, USER, is_int

# A snapshot row stays valid until the entity's next change. Attributes change rarely (a
# snapshot may be months old), so the TTL is long; an impression whose user or ad has no row
# within it gets no features, and retrieval reports those rows instead of dropping them.
SNAPSHOT_TTL = timedelta(days=365)


def _schema(spec):
    return [Field(name=spec.key, dtype=Int64)] + [
        Field(name=name, dtype=Int64 if is_int(name) else String) for name in spec.features
    ]


user_features = FeatureView(
    name=USER.view,
    entities=[user],
    ttl=SNAPSHOT_TTL,
    schema=_schema(USER),
    source=user_snapshots,
    online=True,
    description="Demographic and credit attributes of a user, as of each snapshot.",
)
ad_features = FeatureView(
    name=AD.view,
    entities=[ad],
    ttl=SNAPSHOT_TTL,
    schema=_schema(AD),
    source=ad_snapshots,
    online=True,
    description="Business, card type and creative of an ad, as of each snapshot.",
)
