"""Online lookup for serving: one user, N candidate ads, by feature service.

Missing users or ads are an error that names them, never zero-filled rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from features.fields import AD, ENTITIES, FEATURE_SERVICE, USER, context_fields, model_fields

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore


class MissingEntityError(LookupError):
    """Users or ads that the online store holds no features for."""

    def __init__(self, missing: dict[str, list[int]]) -> None:
        self.missing = missing
        parts = [f"{key} {ids}" for key, ids in missing.items() if ids]
        super().__init__("no online features for " + "; ".join(parts))


def _columns(response, names: Sequence[str]) -> dict[str, list[Any]]:
    """Feature values straight from the response proto, None where NOT_FOUND or unset.

    Feast's field statuses are not enough: the SQLite store marks absent keys NOT_FOUND, but
    the Redis store (feast 0.67) marks them PRESENT with empty values. The caller counts an
    entity as missing when every one of its features is None.
    """
    from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

    not_found = FieldStatus.NOT_FOUND
    proto = response.proto
    position = {name: i for i, name in enumerate(proto.metadata.feature_names.val)}
    out: dict[str, list[Any]] = {}
    for name in names:
        result = proto.results[position[name]]
        values = []
        for value, status in zip(result.values, result.statuses):
            kind = value.WhichOneof("val")
            values.append(None if kind is None or status == not_found else getattr(value, kind))
        out[name] = values
    return out


def online_features(
    store: FeatureStore,
    user_id: int,
    ad_ids: Sequence[int],
    context: Mapping[str, Any] | pd.DataFrame,
    *,
    service: str | FeatureService = FEATURE_SERVICE,
) -> pd.DataFrame:
    """Model input rows (one per ad, in `ad_ids` order), columns in the model's field order.

    `context` holds the request-time fields (position, hour, channel): one mapping of scalars
    for every ad, per-ad sequences, or a frame with one row per ad.
    """
    if not len(ad_ids):
        raise ValueError("ad_ids is empty: pass at least one candidate ad")
    if isinstance(context, pd.DataFrame):
        if len(context) != len(ad_ids):
            raise ValueError(f"context has {len(context)} rows for {len(ad_ids)} ads")
        context_frame = context.reset_index(drop=True)
    else:
        context_frame = pd.DataFrame(dict(context), index=range(len(ad_ids)))
    absent = [f for f in context_fields() if f not in context_frame.columns]
    if absent:
        raise ValueError(f"request context lacks {absent} (needs {list(context_fields())})")

    if isinstance(service, str):
        service = store.get_feature_service(service)  # a server resolves it once instead
    rows = {USER.key: [int(user_id)] * len(ad_ids), AD.key: [int(a) for a in ad_ids]}
    response = store.get_online_features(features=service, entity_rows=rows)
    values = _columns(response, [f for spec in ENTITIES for f in spec.features])
    missing: dict[str, list[int]] = {}
    for spec in ENTITIES:
        columns = [values[f] for f in spec.features]
        gone = [all(v is None for v in row) for row in zip(*columns)]
        missing[spec.key] = sorted({rows[spec.key][i] for i, g in enumerate(gone) if g})
    if any(missing.values()):
        raise MissingEntityError(missing)

    frame = pd.DataFrame({**rows, **values})
    for name in context_fields():
        frame[name] = context_frame[name].to_numpy()
    return frame[list(model_fields())]
