"""The BentoML service: loads the promoted model, serves /predict and /rank, and swaps in a
newly promoted (or rolled-back-to) model without a restart (serving.model_source).

Thin by design: request checks live in serving.requests, post-processing in serving.scoring,
the log in serving.prediction_log, the online store in serving.online, adaptive batching in
serving.batching. Every model call goes through one in-process batcher, so concurrent /predict
and /rank requests share model calls; no model route is exposed besides /predict and /rank.

    bentoml serve serving.service:AITMService --port 3000
"""

from __future__ import annotations

import gc
import logging
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import bentoml
import numpy as np
import torch
import ujson
from pydantic.warnings import PydanticDeprecatedSince211
from starlette.responses import JSONResponse

from aitm.dataset import DEFAULT_SPEC, load_spec
from aitm.inference import Predictor
from aitm.schema import FeatureSchema
from registry import store as registry
from serving import metrics, model_source, openapi, scoring
from serving.batching import MicroBatcher, OverloadedError
from serving.errors import (
    ModelUnavailableError,
    RequestError,
    StoreUnavailableError,
    UnavailableError,
)
from serving.forward import model_forward
from serving.middleware import BodyLimit, JSONOnly, OpenAPIDocument
from serving.online import OnlineStore
from serving.prediction_log import PredictionLog, RequestRecords
from serving.requests import check_candidates, check_rows, rank_models
from serving.settings import ServingSettings
from serving.spec import check_expected, expected_spec, served_spec

logger = logging.getLogger(__name__)

# BentoML 1.4.40 reads `model_fields` from each request's input model instance, which pydantic
# 2.11+ deprecates with a warning per request. The call is BentoML's, not ours; silence exactly
# that warning.
warnings.filterwarnings(
    "ignore", category=PydanticDeprecatedSince211, module=r"_bentoml_impl\.server\.app"
)

# A model call takes the requests that queued while the previous one ran, up to a batch size
# whose forward stays in the tens of milliseconds; rows beyond 4 such batches are refused with
# 503 rather than left to wait. A request holds at most max_rows / max_candidates rows (<= the
# batch size). Batches up to INLINE_ROWS run on the event loop: their forward costs about what
# a hop to a worker thread and back does.
MAX_BATCH_SIZE = 2048
MAX_WAITING_ROWS = 4 * MAX_BATCH_SIZE
INLINE_ROWS = 256
_SETTINGS = ServingSettings()
# Resolved and checksum-verified when the module is imported, on purpose: `bentoml serve` then
# exits at once with the ArtifactError (a failing worker would only be respawned), and
# `bentoml build` ships this model inside the bento. Loading the weights waits for __init__.
_EXPECTED = expected_spec(_SETTINGS.dataset)  # AITM_DATASET: the spec this deployment serves
_MODEL_TAG = registry.serving_tag(
    _SETTINGS.model_tag, (_EXPECTED or load_spec(DEFAULT_SPEC)).model_name
)
# The dataset spec the model was trained on names the /rank request's keys and fields, so the
# request models are built here, before the service class that uses them (SpecError at once,
# like a broken artifact, for a spec that is not the deployment's).
_SCHEMA = registry.stored_schema(_MODEL_TAG)
_SPEC = served_spec(_SCHEMA, _MODEL_TAG)
check_expected(_SPEC, _MODEL_TAG, _EXPECTED)
_RANK = rank_models(_SPEC, _SCHEMA, base=bentoml.IODescriptor)


class FastJSONResponse(JSONResponse):
    """Starlette's JSONResponse rendered by ujson, several times faster than the standard json on
    an answer full of floats. Floats keep their shortest round-trip form; NaN and inf are refused
    like Starlette's `allow_nan=False`."""

    def render(self, content: Any) -> bytes:
        return ujson.dumps(
            content, ensure_ascii=False, escape_forward_slashes=False, allow_nan=False
        ).encode("utf-8")


VERSION_HEADER = "x-model-version"  # every answer of /predict and /rank names its model


def _error(exc: Exception, status: int, request_id: str, version: str) -> JSONResponse:
    return FastJSONResponse(
        {"error": str(exc), "request_id": request_id},
        status_code=status,
        headers={"x-request-id": request_id, VERSION_HEADER: version},
    )


@dataclass(frozen=True)
class ServedModel:
    """One model as the routes use it. The service swaps a whole bundle in one assignment, and
    a request reads it once, so it finishes on the model (encoder, batcher) it started with."""

    tag: str
    predictor: Predictor
    schema: FeatureSchema
    tasks: list[str]
    encode: scoring.Encoder
    batcher: MicroBatcher


def _served(loaded: model_source.LoadedModel) -> ServedModel:
    predictor = loaded.predictor
    batcher = MicroBatcher(
        model_forward(predictor),
        max_rows=MAX_BATCH_SIZE,
        max_waiting_rows=MAX_WAITING_ROWS,
        inline_rows=INLINE_ROWS,
    )
    schema = predictor.schema
    return ServedModel(
        loaded.tag, predictor, schema, list(schema.tasks), scoring.Encoder(schema), batcher
    )


def _count_swap(outcome: str, tag: str, seconds: float) -> None:
    metrics.model_swaps.labels(outcome=outcome).inc()
    metrics.model_swap_seconds.labels(outcome=outcome).set(seconds)


@bentoml.service(
    name="aitm",
    workers=_SETTINGS.workers,
    traffic=_SETTINGS.traffic(),
    logging={"access": {"enabled": _SETTINGS.access_log}},
    tracing={"excluded_urls": [] if _SETTINGS.tracing else ["/predict", "/rank"]},
)
class AITMService:
    model_ref = bentoml.models.BentoModel(_MODEL_TAG)

    def __init__(self) -> None:
        self.settings = _SETTINGS
        biggest = max(self.settings.max_rows, self.settings.max_candidates)
        if biggest > MAX_BATCH_SIZE:
            raise ValueError(f"max_rows/max_candidates {biggest} exceed the batch size")
        # One intra-op thread: a small forward gains nothing from more, and the event loop keeps
        # the other core (on a busy machine, extra threads wait for a core and slow the forward).
        torch.set_num_threads(self.settings.torch_threads)
        stored = self.model_ref
        self.served = _served(model_source.load(str(stored.tag), stored.path))
        schema = self.served.schema  # a swapped-in model keeps its contract (model_source)
        service = schema.extra.get("feature_service", _SPEC.feature_service)
        dtypes = {f.name: f.dtype for f in schema.fields}
        self.store = OnlineStore(
            self.settings.feast_repo,
            self.settings.feast_online,
            service,
            _SPEC,
            dtypes,
            redis_connection=self.settings.redis_connection,
        )
        for reason in ("queue_full", "write_error"):  # shown at 0 before the first failure
            metrics.prediction_log_failures.labels(reason=reason)
        for endpoint in ("predict", "rank"):  # shown at 0 before the first violation
            metrics.monotonicity_violations.labels(endpoint=endpoint)
        for outcome in ("swapped", "refused"):
            metrics.model_swaps.labels(outcome=outcome)
        metrics.model_info.labels(version=self.served.tag).set(1)
        self.log = None
        if self.settings.prediction_log_dir:
            self.log = PredictionLog(
                self.settings.prediction_log_dir,
                max_bytes=self.settings.log_max_bytes,
                max_seconds=self.settings.log_max_seconds,
                queue_size=self.settings.log_queue_size,
                on_failure=lambda reason, n: metrics.prediction_log_failures.labels(
                    reason=reason
                ).inc(n),
            )
        # Everything loaded so far (torch, Feast, BentoML, the model) lives as long as the
        # process. Frozen, the collector skips it; a full collection would walk it all, a pause
        # of every request in flight.
        gc.collect()
        gc.freeze()
        self.watcher = self._watch()

    def _watch(self) -> model_source.PointerWatcher[ServedModel] | None:
        """Follow the promoted pointer from a thread (unless a version is pinned or polling
        is off): a promote or rollback reaches this process within the poll interval."""
        default = (_EXPECTED or load_spec(DEFAULT_SPEC)).model_name
        name = registry.watched_name(self.settings.model_tag, default)
        if name is None or not self.settings.model_poll_seconds:
            return None
        watcher = model_source.PointerWatcher(
            self.settings.registry_home or registry.default_home(),
            name,
            self.served.tag,
            prepare=self._prepare,
            swap=self._swap,
            interval_s=self.settings.model_poll_seconds,
            on_outcome=_count_swap,
        )
        watcher.start()
        return watcher

    def _prepare(self, loaded: model_source.LoadedModel) -> ServedModel:
        """The bundle of a newly promoted model, once it speaks the served contract (the
        start-up model's, which the request models and the OpenAPI document describe) and
        answers a probe batch well. Runs in the watcher's thread."""
        schema = loaded.predictor.schema
        model_source.check_compatible(schema, _SCHEMA, _SPEC, loaded.tag)
        model_source.check_outputs(model_forward(loaded.predictor), schema, loaded.tag)
        return _served(loaded)

    def _swap(self, served: ServedModel) -> None:
        old, self.served = self.served, served  # one reference: requests in flight keep theirs
        metrics.model_info.labels(version=old.tag).set(0)
        metrics.model_info.labels(version=served.tag).set(1)

    def __is_ready__(self) -> bool:
        return self.store.ping()

    @bentoml.on_shutdown
    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if self.log is not None:
            self.log.close()

    async def _score(self, served: ServedModel, x: np.ndarray, endpoint: str) -> np.ndarray:
        try:
            out = await served.batcher(x)
        except Exception as exc:  # shed by the batcher (overloaded) or the model call broke
            metrics.model_unavailable.inc()
            if not isinstance(exc, OverloadedError):
                logger.warning("model call failed: %s: %s", type(exc).__name__, exc)
            raise ModelUnavailableError(
                f"the model is overloaded or failed ({type(exc).__name__}); retry later"
            ) from exc
        probs = np.asarray(out, dtype=np.float64)
        bad = scoring.violations(probs)
        if bad:
            metrics.monotonicity_violations.labels(endpoint=endpoint).inc(bad)
        return probs

    def _count_unknown(self, unknown: dict[str, int]) -> None:
        for name, count in unknown.items():
            metrics.unknown_values.labels(field=name).inc(count)

    def _log(
        self,
        served: ServedModel,
        request_id: str,
        columns: scoring.Columns,
        probs: np.ndarray,
        common: dict[str, Any],
        per_row: dict[str, list[Any]] | None = None,
    ) -> None:
        """Queue the request's records; the log's writer thread expands and writes them."""
        if self.log is None:
            return
        head = {
            "request_id": request_id,
            "timestamp": datetime.now(UTC).isoformat(),
            "model_version": served.tag,
        }
        self.log.append_request(
            RequestRecords({**head, **common}, columns, probs, served.tasks, per_row or {})
        )

    async def _answer(
        self, endpoint: str, handle: Callable[[ServedModel, str], Awaitable[dict[str, Any]]]
    ) -> JSONResponse:
        """Run one request on the model served when it arrived: its id, the error mapping
        (4xx, 503), the model version header and the latency metric."""
        start, request_id, served = time.perf_counter(), uuid.uuid4().hex, self.served
        status = "200"
        try:
            body = await handle(served, request_id)
            return FastJSONResponse(
                {"request_id": request_id, "model_version": served.tag, **body},
                headers={"x-request-id": request_id, VERSION_HEADER: served.tag},
            )
        except RequestError as exc:
            status = str(exc.status)
            return _error(exc, exc.status, request_id, served.tag)
        except UnavailableError as exc:
            status = "503"
            if isinstance(exc, StoreUnavailableError):
                metrics.store_errors.inc()
            return _error(exc, 503, request_id, served.tag)
        finally:
            metrics.latency.labels(endpoint=endpoint, status=status).observe(
                time.perf_counter() - start
            )

    @bentoml.api(route="/predict")
    async def predict(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Raw feature rows -> end-to-end probability of every funnel step, per row."""

        async def handle(served: ServedModel, request_id: str) -> dict[str, Any]:
            columns = check_rows(rows, served.schema, self.settings.max_rows)
            x, unknown = served.encode(columns)
            self._count_unknown(unknown)
            probs = await self._score(served, x, "predict")
            self._log(served, request_id, columns, probs, {"endpoint": "predict"})
            return {"tasks": served.tasks, "predictions": scoring.per_task(probs, served.tasks)}

        return await self._answer("predict", handle)

    @bentoml.api(route="/rank", input_spec=_RANK.body)
    async def rank(self, **body: Any) -> dict[str, Any]:
        """Candidates of one request (e.g. one user) sorted by weight * p(objective), features
        from Feast. The body's names are the served dataset spec's (serving.requests).

        An entity without online features is an error (404 naming the ids), never a
        zero-filled row. `monotone: true` returns probabilities made monotone along the funnel
        by a running minimum (scores use them); the log always holds the raw ones.
        """
        candidates, monotone = body["candidates"], body["monotone"]
        key = _RANK.candidate_key

        async def handle(served: ServedModel, request_id: str) -> dict[str, Any]:
            check_candidates(candidates, served.tasks, self.settings.max_candidates)
            ids = [c.key for c in candidates]
            context = _RANK.context_of(body["context"], candidates)
            columns = await anyio.to_thread.run_sync(
                self.store.lookup, _RANK.keys_of(body), ids, context
            )
            x, unknown = served.encode(columns)
            self._count_unknown(unknown)
            raw = await self._score(served, x, "rank")
            probs = scoring.monotone(raw) if monotone else raw
            objectives = [c.objective for c in candidates]
            weights = [c.weight for c in candidates]
            ranked = scoring.rank(probs, served.tasks, weights, objectives)
            self._log(
                served, request_id, columns, raw, {"endpoint": "rank", "monotone": monotone},
                {"objective": objectives, "weight": weights},
            )  # fmt: skip
            rows = probs.tolist()
            scores = ranked.scores.tolist()
            out = [
                {
                    key: ids[i],
                    "objective": objectives[i],
                    "weight": weights[i],
                    "score": scores[i],
                    "probabilities": dict(zip(served.tasks, rows[i])),
                }
                for i in ranked.order.tolist()
            ]
            return {"monotone": monotone, "candidates": out}

        return await self._answer("rank", handle)


def _openapi_document() -> dict[str, Any]:
    generated = AITMService.openapi_spec.asdict()
    return openapi.document(generated, _SCHEMA, _SETTINGS, _SPEC)


# Outermost first (inside BentoML's own, max_concurrency's 429 among them): the body type and
# size, before any body is read, then the document.
AITMService.add_asgi_middleware(JSONOnly)
AITMService.add_asgi_middleware(BodyLimit, max_bytes=_SETTINGS.max_body_bytes)
AITMService.add_asgi_middleware(OpenAPIDocument, build=_openapi_document)
