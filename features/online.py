"""Online lookup for serving: one user, N candidate ads, by feature service.

`OnlineFeatureReader` is the serving path. Feast's `get_online_features` spends ~10 ms of
Python per call on a 50-ad lookup (feature-service resolution, entity rows turned into protos
and back, the response proto, then our frame), while the two store reads it makes take ~1.5 ms.
The reader resolves the feature service once (and again when the registry changes), then per
lookup calls the store provider's `online_read` for the user view (1 key) and the ad view (the
unique ad ids) with Feast's entity keys, which Feast serialises itself, and builds plain
columns. `reference_columns` is Feast's own `get_online_features`, kept as the reference the
reader is tested and benchmarked against.

Missing users or ads are an error that names them, never zero-filled rows.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from features.fields import AD, ENTITIES, FEATURE_SERVICE, USER, context_fields, model_fields

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore, FeatureView

# Model input in column form: field name -> one value per candidate ad, model field order.
Columns = dict[str, list[Any]]


class MissingEntityError(LookupError):
    """Users or ads that the online store holds no features for."""

    def __init__(self, missing: dict[str, list[int]]) -> None:
        self.missing = missing
        parts = [f"{key} {ids}" for key, ids in missing.items() if ids]
        super().__init__("no online features for " + "; ".join(parts))


class FeatureServiceError(RuntimeError):
    """The feature service (as the registry holds it now) cannot give the model's fields."""


def _python(value: Any) -> Any:
    """A Feast ValueProto as a Python scalar; None when unset (or an explicit null)."""
    if value is None:
        return None
    kind = value.WhichOneof("val")
    return None if kind is None or kind == "null_val" else getattr(value, kind)


def _context_columns(context: Mapping[str, Any] | pd.DataFrame, n: int) -> Columns:
    """The request-time fields as columns of n values (one scalar each, or n per field)."""
    if isinstance(context, pd.DataFrame):
        if len(context) != n:
            raise ValueError(f"context has {len(context)} rows for {n} ads")
        context = {name: context[name].tolist() for name in context.columns}
    absent = [f for f in context_fields() if f not in context]
    if absent:
        raise ValueError(f"request context lacks {absent} (needs {list(context_fields())})")
    out: Columns = {}
    for name in context_fields():
        value = context[name]
        if isinstance(value, str | bytes) or not hasattr(value, "__len__"):
            out[name] = [value] * n
        elif len(value) != n:
            raise ValueError(f"context field {name!r} has {len(value)} values for {n} ads")
        else:
            out[name] = list(value)
    return out


def _assemble(
    user_id: int, user: Sequence[Any], ad_ids: Sequence[int], ads: Sequence[Sequence[Any]], context
) -> Columns:
    """Columns in model field order from one user's values and one row of values per ad."""
    n = len(ad_ids)
    values: Columns = {USER.key: [user_id] * n, AD.key: list(ad_ids)}
    values.update({name: [v] * n for name, v in zip(USER.features, user)})
    values.update({name: list(col) for name, col in zip(AD.features, zip(*ads))})
    values.update(_context_columns(context, n))
    return {name: values[name] for name in model_fields()}


def frame_of(columns: Columns) -> pd.DataFrame:
    """The columns as a frame (what `Predictor.predict` and the CLI take)."""
    return pd.DataFrame(columns, columns=list(columns))


# ----------------------------------------------------------------------------- the fast path


@dataclass(frozen=True)
class _ViewRead:
    """What to read from one feature view of the service."""

    view: FeatureView  # the registry's view with the service's projection applied
    join_key: str
    value_field: str  # the ValueProto field holding this entity's key, e.g. "int64_val"
    features: tuple[str, ...]  # the model's features from this view, in model order


@dataclass(frozen=True)
class _Plan:
    registry_version: tuple[int, int]  # the registry's last_updated when resolved
    reads: dict[str, _ViewRead]  # by entity join key


def _resolve(store: FeatureStore, service_name: str) -> _Plan:
    """The feature service's views, checked against the fields the model needs."""
    from feast.value_type import ValueType

    value_fields = {
        ValueType.INT64: "int64_val",
        ValueType.INT32: "int32_val",
        ValueType.STRING: "string_val",
    }
    registry, project = store.registry, store.project
    version = _registry_version(store)
    service = registry.get_feature_service(service_name, project, allow_cache=True)
    reads: dict[str, _ViewRead] = {}
    for projection in service.feature_view_projections:
        view = registry.get_feature_view(projection.name, project, allow_cache=True)
        view = view.with_projection(projection)
        keys = view.entity_columns
        if len(keys) != 1 or projection.join_key_map:
            raise FeatureServiceError(
                f"feature service {service_name!r}: view {view.name!r} must have one entity key "
                f"and no join-key mapping for the online reader"
            )
        value_type = keys[0].dtype.to_value_type()
        if value_type not in value_fields:
            raise FeatureServiceError(
                f"view {view.name!r}: entity key type {value_type} is not supported"
            )
        spec = next((s for s in ENTITIES if s.key == keys[0].name), None)
        if spec is None:
            continue  # a view the model does not read from: not looked up
        served = {f.name for f in projection.features}
        lacking = [f for f in spec.features if f not in served]
        if lacking:
            raise FeatureServiceError(
                f"feature service {service_name!r} lacks {lacking} of {view.name}"
            )
        reads[spec.key] = _ViewRead(view, spec.key, value_fields[value_type], spec.features)
    absent = [s.key for s in ENTITIES if s.key not in reads]
    if absent:
        raise FeatureServiceError(f"feature service {service_name!r} has no view keyed by {absent}")
    return _Plan(registry_version=version, reads=reads)


def _registry_version(store: FeatureStore) -> tuple[int, int]:
    """The registry state's last_updated time. Asking for project metadata with the cache
    allowed is a public call that makes Feast's registry re-read its file when the file changed
    (sync cache mode, the default: a stat, ~10 us) or when its cache TTL expired; `proto()` is
    then the state it holds."""
    store.registry.list_project_metadata(store.project, allow_cache=True)
    stamp = store.registry.proto().last_updated
    return stamp.seconds, stamp.nanos


class OnlineFeatureReader:
    """Online features for one user and N ads through a feature service, fast.

    Open once per server. Each lookup checks the registry's version (a stat of the registry
    file) and re-resolves the service when `feast apply` or `feast materialize` changed it, so
    the reader reads what the service names now, like `get_online_features` does. Thread-safe
    as far as the Feast online store is (the lookups share its client).
    """

    def __init__(self, store: FeatureStore, service: str = FEATURE_SERVICE) -> None:
        self.store = store
        self.service = service
        self.provider = store.provider  # the store's own provider and online store client
        self._lock = threading.Lock()
        self._plan = _resolve(store, service)

    def _current(self) -> _Plan:
        plan = self._plan
        if _registry_version(self.store) != plan.registry_version:
            with self._lock:
                if _registry_version(self.store) != self._plan.registry_version:
                    self._plan = _resolve(self.store, self.service)
                plan = self._plan
        return plan

    def _read(self, read: _ViewRead, ids: Sequence[int]) -> list[tuple[Any, ...] | None]:
        """One row of values per id, None where the store holds none of its features.

        Feast's stores differ on an absent key: SQLite returns (None, None), Redis (feast 0.67)
        returns every feature as an empty value. Both count as missing here, as an entity whose
        every feature is None.
        """
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value

        field = read.value_field
        keys = [
            EntityKey(join_keys=[read.join_key], entity_values=[Value(**{field: i})]) for i in ids
        ]
        rows = self.provider.online_read(self.store.config, read.view, keys, list(read.features))
        out: list[tuple[Any, ...] | None] = []
        for _, values in rows:
            row = None
            if values is not None:
                row = tuple(map(_python, map(values.get, read.features)))
                if row.count(None) == len(row):
                    row = None
            out.append(row)
        return out

    def columns(
        self, user_id: int, ad_ids: Sequence[int], context: Mapping[str, Any] | pd.DataFrame
    ) -> Columns:
        """Model input columns, one value per ad in `ad_ids` order, in model field order.

        `context` holds the request-time fields (position, hour, channel): one mapping of
        scalars for every ad, per-ad sequences, or a frame with one row per ad.
        """
        if not len(ad_ids):
            raise ValueError("ad_ids is empty: pass at least one candidate ad")
        user_id = int(user_id)
        ad_ids = [int(a) for a in ad_ids]
        context_columns = _context_columns(context, len(ad_ids))  # bad context fails first
        plan = self._current()
        (user,) = self._read(plan.reads[USER.key], [user_id])
        unique = list(dict.fromkeys(ad_ids))
        by_ad = dict(zip(unique, self._read(plan.reads[AD.key], unique)))
        missing = {
            USER.key: [user_id] if user is None else [],
            AD.key: sorted(a for a, row in by_ad.items() if row is None),
        }
        if any(missing.values()):
            raise MissingEntityError(missing)
        return _assemble(user_id, user, ad_ids, [by_ad[a] for a in ad_ids], context_columns)

    def frame(
        self, user_id: int, ad_ids: Sequence[int], context: Mapping[str, Any] | pd.DataFrame
    ) -> pd.DataFrame:
        """`columns(...)` as a frame."""
        return frame_of(self.columns(user_id, ad_ids, context))


def online_features(
    store: FeatureStore,
    user_id: int,
    ad_ids: Sequence[int],
    context: Mapping[str, Any] | pd.DataFrame,
    *,
    service: str | FeatureService = FEATURE_SERVICE,
) -> pd.DataFrame:
    """Model input rows (one per ad, in `ad_ids` order), columns in the model's field order.

    A one-off lookup: it resolves the feature service each call (~10 ms). A server opens an
    `OnlineFeatureReader` once instead. A `FeatureService` given is looked up by its name in
    the registry, which is what the lookup reads.
    """
    name = service if isinstance(service, str) else service.name
    return OnlineFeatureReader(store, name).frame(user_id, ad_ids, context)


# ------------------------------------------------------------------------- the reference


def reference_columns(
    store: FeatureStore,
    user_id: int,
    ad_ids: Sequence[int],
    context: Mapping[str, Any] | pd.DataFrame,
    *,
    service: str | FeatureService = FEATURE_SERVICE,
) -> Columns:
    """The same lookup through Feast's `get_online_features` (the slow reference).

    Feast's field statuses are not enough to find absent entities: the SQLite store marks
    absent keys NOT_FOUND, but the Redis store (feast 0.67) marks them PRESENT with empty
    values. An entity counts as missing when every one of its features is None.
    """
    from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

    if not len(ad_ids):
        raise ValueError("ad_ids is empty: pass at least one candidate ad")
    ad_ids = [int(a) for a in ad_ids]
    context_columns = _context_columns(context, len(ad_ids))
    if isinstance(service, str):
        service = store.get_feature_service(service)
    rows = {USER.key: [int(user_id)] * len(ad_ids), AD.key: ad_ids}
    proto = store.get_online_features(features=service, entity_rows=rows).proto
    position = {name: i for i, name in enumerate(proto.metadata.feature_names.val)}
    values: dict[str, list[Any]] = {}
    for spec in ENTITIES:
        for name in spec.features:
            result = proto.results[position[name]]
            values[name] = [
                None if status == FieldStatus.NOT_FOUND else _python(value)
                for value, status in zip(result.values, result.statuses)
            ]
    missing: dict[str, list[int]] = {}
    for spec in ENTITIES:
        gone = [all(v is None for v in row) for row in zip(*(values[f] for f in spec.features))]
        missing[spec.key] = sorted({rows[spec.key][i] for i, g in enumerate(gone) if g})
    if any(missing.values()):
        raise MissingEntityError(missing)
    user = [values[f][0] for f in USER.features]
    ads = list(zip(*(values[f] for f in AD.features)))
    return _assemble(int(user_id), user, ad_ids, ads, context_columns)
