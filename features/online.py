"""Online lookup for serving: the request's entities and N candidates, by feature service.

Names come from the dataset spec: the request carries one key value per request entity
(`spec.request_entities`, e.g. `{"user_id": 5}`), the candidate ids (`spec.candidate`, e.g. ad
ids), and the request fields (`spec.context`: one value for every candidate;
`spec.candidate_context`: one value per candidate).

`OnlineFeatureReader` is the serving path. Feast's `get_online_features` spends ~10 ms of
Python per call on a 50-candidate lookup (feature-service resolution, entity rows turned into
protos and back, the response proto, then our frame), while the store reads it makes take
~1.5 ms. The reader resolves the feature service once (and again when the registry changes),
then per lookup calls the store provider's `online_read` once per entity view (one key for a
request entity, the unique ids for the candidate) with Feast's entity keys, which Feast
serialises itself, and builds plain columns. `reference_columns` is Feast's own
`get_online_features`, kept as the reference the reader is tested and benchmarked against.

Missing entities are an error that names them, never zero-filled rows.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from aitm.dataset import DatasetSpec
from features.fields import EntityView, FeastLayout, repo_spec

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore, FeatureView

# Model input in column form: field name -> one value per candidate, model field order.
Columns = dict[str, list[Any]]
RequestKeys = Mapping[str, Any]
_VALUE_FIELDS = {"int": "int64_val", "str": "string_val"}


class MissingEntityError(LookupError):
    """Entities that the online store holds no features for: `missing` maps each stored
    entity's key to its missing ids (empty lists included)."""

    def __init__(self, missing: dict[str, list[Any]]) -> None:
        self.missing = missing
        parts = [f"{key} {ids}" for key, ids in missing.items() if ids]
        super().__init__("no online features for " + "; ".join(parts))


class FeatureServiceError(RuntimeError):
    """The feature service (as the registry holds it now) cannot give the model's fields."""


def _python(value: Any) -> Any:
    """A Feast ValueProto as a Python scalar; None when unset, an explicit null or NaN."""
    if value is None:
        return None
    kind = value.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    out = getattr(value, kind)
    return None if isinstance(out, float) and math.isnan(out) else out


def _ids(entity: EntityView, values: Sequence[Any], key_type: str | None = None) -> list[Any]:
    """Key values as the entity's key type (int or str; `key_type`: the store's, where it has
    a view of the entity); ValueError naming a bad one."""
    if (key_type or entity.key_type) == "str":
        return [str(v) for v in values]
    out = []
    for v in values:
        try:
            number = int(v)
            ok = not isinstance(v, bool) and (not isinstance(v, float) or number == v)
        except (TypeError, ValueError, OverflowError):
            ok = False
        if not ok:
            raise ValueError(f"{entity.key}: {v!r} is not an integer id")
        out.append(number)
    return out


def _request_ids(
    layout: FeastLayout, request_keys: RequestKeys | Any, key_types: Mapping[str, str]
) -> dict[str, Any]:
    """One key value per request entity, typed. A bare value is accepted where the spec has
    exactly one request entity (the `user_id` of the default spec)."""
    entities = layout.request_entities
    if not isinstance(request_keys, Mapping):
        if len(entities) != 1:
            raise ValueError(
                f"request keys: pass a mapping of {[e.key for e in entities]}, got {request_keys!r}"
            )
        request_keys = {entities[0].key: request_keys}
    wanted = [e.key for e in entities]
    absent = [k for k in wanted if k not in request_keys]
    unknown = sorted(k for k in request_keys if k not in wanted)
    if absent or unknown:
        raise ValueError(
            f"request keys: need {wanted}"
            + (f", lacks {absent}" if absent else "")
            + (f", unknown {unknown}" if unknown else "")
        )
    return {e.key: _ids(e, [request_keys[e.key]], key_types.get(e.key))[0] for e in entities}


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | bytes) or not hasattr(value, "__len__")


def _context_columns(
    layout: FeastLayout, context: Mapping[str, Any] | pd.DataFrame, n: int
) -> Columns:
    """The request fields as columns of n values: a context field takes one scalar (or n
    values), a candidate-context field n values (one per candidate)."""
    if isinstance(context, pd.DataFrame):
        if len(context) != n:
            raise ValueError(f"context has {len(context)} rows for {n} candidates")
        context = {name: context[name].tolist() for name in context.columns}
    needed = layout.request_fields
    absent = [f for f in needed if f not in context]
    if absent:
        raise ValueError(f"request context lacks {absent} (needs {list(needed)})")
    out: Columns = {}
    for name in needed:
        value = context[name]
        if _is_scalar(value):
            if name in layout.candidate_context:
                raise ValueError(
                    f"candidate context field {name!r} takes one value per candidate "
                    f"({n}), got the scalar {value!r}"
                )
            out[name] = [value] * n
        elif len(value) != n:
            raise ValueError(f"context field {name!r} has {len(value)} values for {n} candidates")
        else:
            out[name] = list(value)
    return out


def _assemble(
    layout: FeastLayout,
    request_ids: Mapping[str, Any],
    request_rows: Mapping[str, Sequence[Any]],
    candidate_ids: Sequence[Any],
    candidate_rows: Sequence[Sequence[Any]],
    context: Columns,
) -> Columns:
    """Columns in model field order from each request entity's values (one row each) and one
    row of values per candidate."""
    n = len(candidate_ids)
    candidate = layout.candidate
    values: Columns = {candidate.key: list(candidate_ids)}
    for entity in layout.request_entities:
        values[entity.key] = [request_ids[entity.key]] * n
        row = request_rows.get(entity.key, ())
        values.update({name: [v] * n for name, v in zip(entity.features, row)})
    if candidate.features:
        values.update({name: list(c) for name, c in zip(candidate.features, zip(*candidate_rows))})
    values.update(context)
    return {name: values[name] for name in layout.fields}


def frame_of(columns: Columns) -> pd.DataFrame:
    """The columns as a frame (what `Predictor.predict` and the CLI take)."""
    return pd.DataFrame(columns, columns=list(columns))


# ----------------------------------------------------------------------------- the fast path


@dataclass(frozen=True)
class _ViewRead:
    """What to read from one feature view of the service."""

    view: FeatureView  # the registry's view with the service's projection applied
    join_key: str
    key_type: str  # "int" or "str", as the registry's view declares the key
    value_field: str  # the ValueProto field holding this entity's key, e.g. "int64_val"
    features: tuple[str, ...]  # the model's features from this view, in model order


@dataclass(frozen=True)
class _Plan:
    registry_version: tuple[int, int]  # the registry's last_updated when resolved
    reads: dict[str, _ViewRead]  # by entity join key

    @property
    def key_types(self) -> dict[str, str]:
        return {key: read.key_type for key, read in self.reads.items()}


def _resolve(store: FeatureStore, service_name: str, layout: FeastLayout) -> _Plan:
    """The feature service's views, checked against the fields the model needs."""
    from feast.value_type import ValueType

    key_types = {ValueType.INT64: "int", ValueType.INT32: "int", ValueType.STRING: "str"}
    registry, project = store.registry, store.project
    version = _registry_version(store)
    service = registry.get_feature_service(service_name, project, allow_cache=True)
    by_key = {e.key: e for e in layout.stored}
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
        entity = by_key.get(keys[0].name)
        if entity is None:
            continue  # a view the model does not read from: not looked up
        # The registry's key type wins: a spec whose types are not resolved yet says "str".
        key_type = key_types.get(keys[0].dtype.to_value_type())
        if key_type is None:
            raise FeatureServiceError(
                f"view {view.name!r}: entity key type {keys[0].dtype.to_value_type()} is not "
                "supported"
            )
        served = {f.name for f in projection.features}
        lacking = [f for f in entity.features if f not in served]
        if lacking:
            raise FeatureServiceError(
                f"feature service {service_name!r} lacks {lacking} of {view.name}"
            )
        field = _VALUE_FIELDS[key_type]
        reads[entity.key] = _ViewRead(view, entity.key, key_type, field, entity.features)
    absent = [key for key in by_key if key not in reads]
    if absent:
        raise FeatureServiceError(f"feature service {service_name!r} has no view keyed by {absent}")
    return _Plan(registry_version=version, reads=reads)


def _registry_version(store: FeatureStore) -> tuple[int, int]:
    """The registry state's last_updated time. Asking for project metadata with the cache
    allowed is a public call that makes Feast's registry re-read its file when the file changed
    (sync cache mode, the default: a stat, ~10 us) or when its cache TTL expired; `proto()` is
    then the state it holds. The cached proto where the registry keeps one: the SQL registry's
    `proto()` re-reads every table, which on each request would cost a database round trip."""
    registry = store.registry
    registry.list_project_metadata(store.project, allow_cache=True)
    cached = getattr(registry, "cached_registry_proto", None)
    stamp = (cached if cached is not None else registry.proto()).last_updated
    return stamp.seconds, stamp.nanos


def _layout_of(store: FeatureStore, spec: DatasetSpec | None) -> FeastLayout:
    return FeastLayout(spec or repo_spec(store.repo_path))


class OnlineFeatureReader:
    """Online features for a request's entities and N candidates through a feature service.

    `spec` defaults to the store's repo's spec (its dataset.yaml), `service` to the spec's
    feature service. Open once per server. Each lookup checks the registry's version (a stat of
    the registry file) and re-resolves the service when `feast apply` or `feast materialize`
    changed it, so the reader reads what the service names now, like `get_online_features`
    does. Thread-safe as far as the Feast online store is (the lookups share its client).
    """

    def __init__(
        self, store: FeatureStore, service: str | None = None, spec: DatasetSpec | None = None
    ) -> None:
        self.store = store
        self.layout = _layout_of(store, spec)
        self.spec = self.layout.spec
        self.service = service or self.layout.feature_service
        self.provider = store.provider  # the store's own provider and online store client
        self._lock = threading.Lock()
        self._plan = _resolve(store, self.service, self.layout)

    def _current(self) -> _Plan:
        plan = self._plan
        if _registry_version(self.store) != plan.registry_version:
            with self._lock:
                if _registry_version(self.store) != self._plan.registry_version:
                    self._plan = _resolve(self.store, self.service, self.layout)
                plan = self._plan
        return plan

    def _read(self, read: _ViewRead, ids: Sequence[Any]) -> list[tuple[Any, ...] | None]:
        """One row of values per id, None where the store holds no row for it.

        Feast's stores differ on an absent key: SQLite returns (None, None), Redis (feast 0.67)
        returns every feature as an empty value with a zero timestamp. Both count as missing
        here; a present entity whose features are all null is not missing.
        """
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value

        field = read.value_field
        keys = [
            EntityKey(join_keys=[read.join_key], entity_values=[Value(**{field: i})]) for i in ids
        ]
        rows = self.provider.online_read(self.store.config, read.view, keys, list(read.features))
        out: list[tuple[Any, ...] | None] = []
        for stamp, values in rows:
            row = None
            if values is not None and stamp is not None and stamp.timestamp() != 0:
                row = tuple(map(_python, map(values.get, read.features)))
            out.append(row)
        return out

    def columns(
        self,
        request_keys: RequestKeys | Any,
        candidate_ids: Sequence[Any],
        context: Mapping[str, Any] | pd.DataFrame,
    ) -> Columns:
        """Model input columns, one value per candidate in `candidate_ids` order, in
        `spec.fields` order.

        `request_keys` maps each request entity's key to its id (a bare id where the spec has
        one request entity). `context` holds the request fields: `spec.context` as scalars (or
        one value per candidate), `spec.candidate_context` one value per candidate; or a frame
        with one row per candidate.
        """
        layout = self.layout
        if not len(candidate_ids):
            raise ValueError(f"{layout.candidate.key}: pass at least one candidate")
        plan = self._current()
        key_types = plan.key_types
        request_ids = _request_ids(layout, request_keys, key_types)
        candidate_ids = _ids(layout.candidate, candidate_ids, key_types.get(layout.candidate.key))
        context_columns = _context_columns(layout, context, len(candidate_ids))
        missing: dict[str, list[Any]] = {}
        request_rows: dict[str, tuple[Any, ...]] = {}
        for entity in layout.request_entities:
            if entity.key not in plan.reads:
                continue
            key = request_ids[entity.key]
            (row,) = self._read(plan.reads[entity.key], [key])
            missing[entity.key] = [key] if row is None else []
            request_rows[entity.key] = row or ()
        candidate = layout.candidate
        rows: list[Sequence[Any]] = [()] * len(candidate_ids)
        if candidate.key in plan.reads:
            unique = list(dict.fromkeys(candidate_ids))
            by_id = dict(zip(unique, self._read(plan.reads[candidate.key], unique)))
            missing[candidate.key] = sorted(i for i, row in by_id.items() if row is None)
            rows = [by_id[i] for i in candidate_ids]
        missing = {e.key: missing[e.key] for e in layout.stored}  # spec order
        if any(missing.values()):
            raise MissingEntityError(missing)
        return _assemble(layout, request_ids, request_rows, candidate_ids, rows, context_columns)

    def frame(
        self,
        request_keys: RequestKeys | Any,
        candidate_ids: Sequence[Any],
        context: Mapping[str, Any] | pd.DataFrame,
    ) -> pd.DataFrame:
        """`columns(...)` as a frame."""
        return frame_of(self.columns(request_keys, candidate_ids, context))


def online_features(
    store: FeatureStore,
    request_keys: RequestKeys | Any,
    candidate_ids: Sequence[Any],
    context: Mapping[str, Any] | pd.DataFrame,
    *,
    service: str | FeatureService | None = None,
    spec: DatasetSpec | None = None,
) -> pd.DataFrame:
    """Model input rows (one per candidate, in `candidate_ids` order), columns in the model's
    field order.

    A one-off lookup: it resolves the feature service each call (~10 ms). A server opens an
    `OnlineFeatureReader` once instead. A `FeatureService` given is looked up by its name in
    the registry, which is what the lookup reads.
    """
    name = service if service is None or isinstance(service, str) else service.name
    return OnlineFeatureReader(store, name, spec).frame(request_keys, candidate_ids, context)


# ------------------------------------------------------------------------- the reference


def reference_columns(
    store: FeatureStore,
    request_keys: RequestKeys | Any,
    candidate_ids: Sequence[Any],
    context: Mapping[str, Any] | pd.DataFrame,
    *,
    service: str | FeatureService | None = None,
    spec: DatasetSpec | None = None,
) -> Columns:
    """The same lookup through Feast's `get_online_features` (the slow reference).

    Feast's field statuses are not enough to find absent entities: the SQLite store marks
    absent keys NOT_FOUND, but the Redis store (feast 0.67) marks them PRESENT with empty
    values and a zero event timestamp. Either counts as missing.
    """
    from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

    layout = _layout_of(store, spec)
    if not len(candidate_ids):
        raise ValueError(f"{layout.candidate.key}: pass at least one candidate")
    if service is None or isinstance(service, str):
        service = store.get_feature_service(service or layout.feature_service)
    key_types = _resolve(store, service.name, layout).key_types
    request_ids = _request_ids(layout, request_keys, key_types)
    candidate = layout.candidate
    candidate_ids = _ids(candidate, candidate_ids, key_types.get(candidate.key))
    n = len(candidate_ids)
    context_columns = _context_columns(layout, context, n)
    rows = {e.key: [request_ids[e.key]] * n for e in layout.request_entities if e.features}
    if candidate.features:
        rows[candidate.key] = candidate_ids
    proto = store.get_online_features(features=service, entity_rows=rows).proto
    position = {name: i for i, name in enumerate(proto.metadata.feature_names.val)}
    values: dict[str, list[Any]] = {}
    found: dict[str, list[bool]] = {}
    for entity in layout.stored:
        present = [True] * n
        for name in entity.features:
            result = proto.results[position[name]]
            values[name] = []
            for i, (value, status, stamp) in enumerate(
                zip(result.values, result.statuses, result.event_timestamps)
            ):
                absent = status == FieldStatus.NOT_FOUND or (stamp.seconds == 0 == stamp.nanos)
                present[i] = present[i] and not absent
                values[name].append(None if absent else _python(value))
        found[entity.key] = present
    missing = {
        key: sorted({rows[key][i] for i, ok in enumerate(present) if not ok})
        for key, present in found.items()
    }
    if any(missing.values()):
        raise MissingEntityError(missing)
    request_rows = {e.key: tuple(values[f][0] for f in e.features) for e in layout.request_entities}
    candidate_rows = list(zip(*(values[f] for f in candidate.features)))
    return _assemble(
        layout, request_ids, request_rows, candidate_ids, candidate_rows, context_columns
    )
