"""Serving settings, read once from the environment at start-up. Defaults live here only."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field

PREFIX = "AITM_"


class ServingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model_tag: str = ""  # AITM_MODEL_TAG; empty or "<name>:promoted" -> the promoted pointer
    # AITM_DATASET: the dataset spec (a path) this deployment serves; a model trained on
    # another spec is refused at start-up. Empty: whatever spec the model carries.
    dataset: str = ""
    feast_repo: str = "feature_repo"  # AITM_FEAST_REPO: folder holding the Feast yaml files
    feast_online: str = "sqlite"  # AITM_FEAST_ONLINE: variant, sqlite or redis
    prediction_log_dir: str = ""  # AITM_PREDICTION_LOG_DIR; empty: no prediction log
    max_rows: int = Field(default=1_000, ge=1)  # AITM_MAX_ROWS per /predict request
    max_candidates: int = Field(default=200, ge=1)  # AITM_MAX_CANDIDATES per /rank request
    max_body_bytes: int = Field(default=1_000_000, ge=1_024)  # AITM_MAX_BODY_BYTES
    # AITM_RATE_LIMIT_RPS / _BURST: per server process, over /predict and /rank together;
    # beyond them 429. 0 turns the limit off (an ingress in front may limit per client).
    rate_limit_rps: float = Field(default=500.0, ge=0)
    rate_limit_burst: int = Field(default=200, ge=1)
    log_max_bytes: int = Field(default=64 * 2**20, ge=1_024)  # rotate a log file past this
    log_max_seconds: float = Field(default=3_600.0, gt=0)  # ... or when older than this
    torch_threads: int = Field(default=1, ge=1)  # AITM_TORCH_THREADS: intra-op threads
    torchscript: bool = True  # AITM_TORCHSCRIPT: serve a frozen trace (serving.compiled)
    workers: int = Field(default=1, ge=1)  # AITM_WORKERS: server processes, each a model copy
    log_queue_size: int = Field(default=10_000, ge=1)  # records waiting; beyond: dropped
    # AITM_ACCESS_LOG: BentoML's access log line per request (~0.5 ms each); the prediction log
    # already records every prediction, so it is off unless asked for.
    access_log: bool = False
    # AITM_TRACING: BentoML's OpenTelemetry span per /predict and /rank request (~0.8 ms of
    # CPU each, measured); off unless asked for, the health and metrics routes keep theirs.
    tracing: bool = False

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ServingSettings:
        env = os.environ if environ is None else environ
        values = {}
        for name in cls.model_fields:
            key = PREFIX + name.upper()
            if key in env:
                values[name] = env[key]
        return cls(**values)
