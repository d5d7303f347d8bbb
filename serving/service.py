"""The BentoML service: loads the promoted model once, serves /predict and /rank.

Thin by design: request checks live in serving.requests, post-processing in serving.scoring,
the log in serving.prediction_log, the online store in serving.online. The model call is the
batchable `forward` API, reached through the service's own proxy so BentoML's adaptive
batching merges concurrent requests.

    bentoml serve serving.service:AITMService --port 3000
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import anyio
import bentoml
import numpy as np
import pandas as pd
import torch
from starlette.responses import JSONResponse

from features.fields import FEATURE_SERVICE, context_fields
from serving import metrics, model_source, scoring
from serving.errors import (
    ModelUnavailableError,
    RequestError,
    StoreUnavailableError,
    UnavailableError,
)
from serving.middleware import BodyLimit
from serving.online import OnlineStore
from serving.prediction_log import PredictionLog
from serving.requests import Candidate, Context, Id, check_candidates, check_rows
from serving.settings import ServingSettings

logger = logging.getLogger(__name__)

# Batching, from a measurement on the shared 2-core machine with one torch thread: a forward
# of 1 row takes ~2 ms, 100 rows ~3 ms, 1,000 rows ~16 ms, 4,096 rows ~66 ms. Batches of up to
# 2,048 rows stay near 30 ms; the dispatcher sheds a call (503) only when its expected wait
# exceeds max_latency_ms, and 20 ms shed calls under 200 concurrent ones. BentoML also scales
# its initial batching wait with max_latency_ms (250 ms gave ~150 ms waits on lone requests),
# so 100 ms is the compromise. /rank requests are batches of candidates already and call the
# model directly (latency target); /predict goes through the batcher (throughput target).
# A request holds at most max_rows / max_candidates rows (<= the batch size).
MAX_BATCH_SIZE = 2048
MAX_LATENCY_MS = 100


def _error(exc: Exception, status: int, request_id: str) -> JSONResponse:
    return JSONResponse(
        {"error": str(exc), "request_id": request_id},
        status_code=status,
        headers={"x-request-id": request_id},
    )


@bentoml.service(name="aitm", workers=1, traffic={"timeout": 30})
class AITMService:
    # Resolved and checksum-verified when the module is imported, on purpose: `bentoml serve`
    # then exits at once with the ArtifactError (a failing worker would only be respawned), and
    # `bentoml build` ships this model inside the bento. Loading the weights waits for __init__.
    model_ref = bentoml.models.BentoModel(
        model_source.verified_tag(ServingSettings.from_env().model_tag)
    )

    def __init__(self) -> None:
        self.settings = ServingSettings.from_env()
        biggest = max(self.settings.max_rows, self.settings.max_candidates)
        if biggest > MAX_BATCH_SIZE:
            raise ValueError(f"max_rows/max_candidates {biggest} exceed the batch size")
        # One intra-op thread: a small forward gains nothing from more, and the event loop
        # keeps the other core (measured: 1 row 17 ms with 2 threads on a busy machine, 2 ms).
        torch.set_num_threads(self.settings.torch_threads)
        stored = self.model_ref
        loaded = model_source.load(str(stored.tag), stored.path)
        self.version = loaded.tag
        self.predictor = loaded.predictor
        self.schema = self.predictor.schema
        self.tasks = list(self.schema.tasks)
        self.encode = scoring.Encoder(self.schema)
        self.cardinalities = np.asarray(self.schema.cardinalities, dtype=np.int64)
        if set(Context.model_fields) != set(context_fields()):
            raise RuntimeError(f"/rank context {list(Context.model_fields)} != {context_fields()}")
        service = self.schema.extra.get("feature_service", FEATURE_SERVICE)
        self.store = OnlineStore(self.settings.feast_repo, self.settings.feast_online, service)
        for reason in ("queue_full", "write_error"):  # shown at 0 before the first failure
            metrics.prediction_log_failures.labels(reason=reason)
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

    def __is_ready__(self) -> bool:
        return self.store.ping()

    @bentoml.on_shutdown
    def close(self) -> None:
        if self.log is not None:
            self.log.close()

    @bentoml.api(
        batchable=True, batch_dim=0, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS
    )
    def forward(self, x: np.ndarray) -> np.ndarray:
        """Internal: (N, F) field indices -> (N, T) probabilities (adaptively batched)."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != len(self.cardinalities):
            raise bentoml.exceptions.InvalidArgument(f"x must be (N, {len(self.cardinalities)})")
        if not np.all((x >= 0) & (x < self.cardinalities)):
            raise bentoml.exceptions.InvalidArgument("x holds indices outside the vocabularies")
        return self.predictor.predict_encoded(x.astype(np.int64))

    async def _score(self, x: np.ndarray, endpoint: str) -> np.ndarray:
        try:
            if endpoint == "rank":  # already a batch of candidates: straight to the model
                out = await anyio.to_thread.run_sync(self.predictor.predict_encoded, x)
            else:  # single rows from many callers: BentoML's adaptive batching merges them
                out = await self.to_async.forward(x)
        except Exception as exc:  # shed by the batcher ("overloaded") or the call broke
            metrics.model_unavailable.inc()
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

    def _log(self, request_id: str, frame: pd.DataFrame, probs: np.ndarray, **extra) -> None:
        if self.log is None:
            return
        x_raw = frame.to_dict("records")
        now = datetime.now(UTC).isoformat()
        for i, (features, p) in enumerate(zip(x_raw, probs)):
            self.log.append(
                {
                    "request_id": request_id,
                    "row": i,
                    "timestamp": now,
                    "model_version": self.version,
                    "features": features,
                    "probabilities": dict(zip(self.tasks, map(float, p))),
                    **{k: (v[i] if isinstance(v, list) else v) for k, v in extra.items()},
                }
            )

    @bentoml.api(route="/predict")
    async def predict(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Raw feature rows -> end-to-end probability of every funnel step, per row."""
        start, request_id = time.perf_counter(), uuid.uuid4().hex
        status = "200"
        try:
            frame = check_rows(rows, self.schema, self.settings.max_rows)
            x, unknown = self.encode(frame)
            self._count_unknown(unknown)
            probs = await self._score(x, "predict")
            self._log(request_id, frame, probs, endpoint="predict")
            return JSONResponse(
                {
                    "request_id": request_id,
                    "model_version": self.version,
                    "tasks": self.tasks,
                    "predictions": scoring.per_task(probs, self.tasks),
                },
                headers={"x-request-id": request_id},
            )
        except RequestError as exc:
            status = str(exc.status)
            return _error(exc, exc.status, request_id)
        except UnavailableError as exc:
            status = "503"
            return _error(exc, 503, request_id)
        finally:
            metrics.latency.labels(endpoint="predict", status=status).observe(
                time.perf_counter() - start
            )

    @bentoml.api(route="/rank")
    async def rank(
        self,
        user_id: Id,
        context: Context,
        candidates: list[Candidate],
        monotone: bool = False,
    ) -> dict[str, Any]:
        """Candidates of one user sorted by weight * p(objective), features from Feast.

        A user or ad without online features is an error (404 naming the ids), never a
        zero-filled row. `monotone: true` returns probabilities made monotone along the funnel
        by a running minimum (scores use them); the log always holds the raw ones.
        """
        start, request_id = time.perf_counter(), uuid.uuid4().hex
        status = "200"
        try:
            check_candidates(candidates, self.tasks, self.settings.max_candidates)
            ad_ids = [c.ad_id for c in candidates]
            frame = await anyio.to_thread.run_sync(
                self.store.lookup, user_id, ad_ids, context.model_dump()
            )
            x, unknown = self.encode(frame)
            self._count_unknown(unknown)
            raw = await self._score(x, "rank")
            probs = scoring.monotone(raw) if monotone else raw
            objectives = [c.objective for c in candidates]
            weights = [c.weight for c in candidates]
            ranked = scoring.rank(probs, self.tasks, weights, objectives)
            self._log(
                request_id, frame, raw, endpoint="rank",
                objective=objectives, weight=weights, monotone=monotone,
            )  # fmt: skip
            out = [
                {
                    "ad_id": ad_ids[i],
                    "objective": objectives[i],
                    "weight": weights[i],
                    "score": float(ranked.scores[i]),
                    "probabilities": dict(zip(self.tasks, map(float, probs[i]))),
                }
                for i in ranked.order
            ]
            return JSONResponse(
                {
                    "request_id": request_id,
                    "model_version": self.version,
                    "monotone": monotone,
                    "candidates": out,
                },
                headers={"x-request-id": request_id},
            )
        except RequestError as exc:
            status = str(exc.status)
            return _error(exc, exc.status, request_id)
        except UnavailableError as exc:
            status = "503"
            if isinstance(exc, StoreUnavailableError):
                metrics.store_errors.inc()
            return _error(exc, 503, request_id)
        finally:
            metrics.latency.labels(endpoint="rank", status=status).observe(
                time.perf_counter() - start
            )


AITMService.add_asgi_middleware(BodyLimit)
