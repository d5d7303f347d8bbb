"""The project's own Prometheus metrics, served on BentoML's /metrics with its own.

`bentoml.metrics` wraps prometheus_client (multiprocess mode under `bentoml serve`) and
creates each metric lazily on first use, so importing this module does no work.
"""

from __future__ import annotations

import bentoml

# Seconds; from 1 ms up, so the /rank target (p99.9 < 20 ms) falls between buckets.
LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)

latency = bentoml.metrics.Histogram(
    name="aitm_request_latency_seconds",
    documentation="Time spent in /predict and /rank handlers, by endpoint and outcome",
    labelnames=["endpoint", "status"],
    buckets=LATENCY_BUCKETS,
)
monotonicity_violations = bentoml.metrics.Counter(
    name="aitm_monotonicity_violations",
    documentation="Rows whose raw probabilities rise along the funnel",
    labelnames=["endpoint"],
)
unknown_values = bentoml.metrics.Counter(
    name="aitm_unknown_category_values",
    documentation="Feature values outside the model's vocabulary, per field",
    labelnames=["field"],
)
prediction_log_failures = bentoml.metrics.Counter(
    name="aitm_prediction_log_failures",
    documentation="Prediction-log records lost (queue full or write error)",
    labelnames=["reason"],
)
store_errors = bentoml.metrics.Counter(
    name="aitm_online_store_errors",
    documentation="Online feature store lookups that failed (answered 503)",
)
model_unavailable = bentoml.metrics.Counter(
    name="aitm_model_unavailable",
    documentation="Model calls shed by the batcher or failed (answered 503)",
)
# The model each worker serves: 1 for its version, 0 for one it served before (livemax: 1 while
# any live worker serves it).
model_info = bentoml.metrics.Gauge(
    name="aitm_model_info",
    documentation="The served model version (1) and versions served before (0)",
    labelnames=["version"],
    multiprocess_mode="livemax",
)
model_swaps = bentoml.metrics.Counter(
    name="aitm_model_swaps",
    documentation="Promoted models swapped in, or refused (failed to load or verify)",
    labelnames=["outcome"],
)
model_swap_seconds = bentoml.metrics.Gauge(
    name="aitm_model_swap_seconds",
    documentation="Seconds from noticing a moved pointer to the model loaded and verified, last",
    labelnames=["outcome"],
    multiprocess_mode="livemostrecent",
)
