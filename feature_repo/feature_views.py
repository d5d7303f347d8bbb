"""Feature views: one per entity with attributes, "<entity>_features", typed from the spec."""

from datetime import timedelta
from pathlib import Path

from data_sources import sources
from entities import entities
from feast import FeatureView, Field
from feast.types import Float64, Int64, String

from features.fields import FeastLayout, repo_spec

# A snapshot row stays valid until the entity's next change. Attributes change rarely (a
# snapshot may be months old), so the TTL is long; an impression whose entity has no row
# within it gets no features, and retrieval reports those rows instead of dropping them.
SNAPSHOT_TTL = timedelta(days=365)
_DTYPES = {"int": Int64, "str": String, "float": Float64}
_layout = FeastLayout(repo_spec(Path(__file__).resolve().parent))

feature_views = {
    e.name: FeatureView(
        name=e.view,
        entities=[entities[e.name]],
        ttl=SNAPSHOT_TTL,
        schema=[Field(name=c, dtype=_DTYPES[e.type_of(c)]) for c in (e.key, *e.features)],
        source=sources[e.name],
        online=True,
        description=f"Attributes of a {e.name} as of each snapshot: {', '.join(e.features)}.",
    )
    for e in _layout.stored
}
# Feast finds the objects a repo declares among its modules' globals.
globals().update({v.name: v for v in feature_views.values()})
