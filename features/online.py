"""Online lookup for serving: one user, N candidate ads, by feature service.

Missing users or ads are an error that names them, never zero-filled rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from features.fields import AD, ENTITIES, FEATURE_SERVICE, USER, context_fields, model_fields

if TYPE_CHECKING:
    from feast import FeatureStore


class MissingEntityError(LookupError):
    """Users or ads that the online store holds no features for."""

    def __init__(self, missing: dict[str, list[int]]) -> None:
        self.missing = missing
        parts = [f"{key} {ids}" for key, ids in missing.items() if ids]
        super().__init__("no online features for " + "; ".join(parts))


def _not_found(response, names: Sequence[str]) -> list[bool]:
    """Per row: whether no feature of `names` came back with a value.

    Feast's field statuses are not enough: the SQLite store marks absent keys NOT_FOUND, but
    the Redis store (feast 0.67) marks them PRESENT with empty values. So an entity counts as
    missing when every one of its features is NOT_FOUND or has no value set.
    """
    from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

    proto = response.proto
    columns = list(proto.metadata.feature_names.val)
    results = [proto.results[columns.index(n)] for n in names]
    n_rows = len(results[0].statuses)
    return [
        all(
            r.statuses[i] == FieldStatus.NOT_FOUND or r.values[i].WhichOneof("val") is None
            for r in results
        )
        for i in range(n_rows)
    ]


def online_features(
    store: FeatureStore,
    user_id: int,
    ad_ids: Sequence[int],
    context: Mapping[str, Any] | pd.DataFrame,
    *,
    service: str | None = FEATURE_SERVICE,
) -> pd.DataFrame:
    """Model input rows (one per ad, in `ad_ids` order), columns in the model's field order.

    `context` holds the request-time fields (position, hour, channel): one mapping of scalars
    for every ad, per-ad sequences, or a frame with one row per ad.
    """
    if not len(ad_ids):
        raise ValueError("ad_ids is empty: pass at least one candidate ad")
    context_frame = pd.DataFrame(
        context if isinstance(context, pd.DataFrame) else dict(context),
        index=range(len(ad_ids)),
    )
    absent = [f for f in context_fields() if f not in context_frame.columns]
    if absent:
        raise ValueError(f"request context lacks {absent} (needs {list(context_fields())})")

    feature_service = store.get_feature_service(service)
    rows = {USER.key: [int(user_id)] * len(ad_ids), AD.key: [int(a) for a in ad_ids]}
    response = store.get_online_features(features=feature_service, entity_rows=rows)
    missing: dict[str, list[int]] = {}
    for spec in ENTITIES:
        gone = _not_found(response, spec.features)
        missing[spec.key] = sorted({rows[spec.key][i] for i, g in enumerate(gone) if g})
    if any(missing.values()):
        raise MissingEntityError(missing)

    values = response.to_dict()
    frame = pd.DataFrame({name: values[name] for name in values if name in model_fields()})
    for name in context_fields():
        frame[name] = context_frame[name].to_numpy()
    return frame[list(model_fields())]
