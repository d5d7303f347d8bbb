"""Serving settings, read once from the environment at start-up. Defaults live here only."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

TIMEOUT_S = 30  # BentoML answers 504 to a request still running after this


class ServingSettings(BaseSettings):
    """Every field is read from `AITM_<FIELD>` (e.g. AITM_MAX_ROWS); other AITM_ variables are
    left to the layers that own them, and an unknown keyword argument is an error."""

    model_config = SettingsConfigDict(env_prefix="AITM_", extra="forbid", frozen=True)

    model_tag: str = ""  # empty or "<name>:promoted" -> the promoted pointer
    # Following the promoted pointer (model_tag empty or "<name>:promoted"), the service checks
    # it this often and swaps a newly promoted model in once it loads and passes its checks.
    # 0: never (the model of start-up is served until a restart). A pinned tag is never watched.
    model_poll_seconds: float = Field(default=10.0, ge=0)
    # The registry home holding the pointer (empty: $BENTOML_HOME, else BentoML's default). A
    # service run from a bento reads its shipped model from the bento; the pointer lives here.
    registry_home: str = ""
    # The dataset spec (a path) this deployment serves; a model trained on another spec is
    # refused at start-up. Empty: whatever spec the model carries.
    dataset: str = ""
    feast_repo: str = "feature_repo"  # folder holding the Feast yaml files
    feast_online: str = "sqlite"  # variant, sqlite or redis
    redis_connection: str = ""  # host:port[,key=value...] of the redis variant's online store
    prediction_log_dir: str = ""  # empty: no prediction log
    max_rows: int = Field(default=1_000, ge=1)  # per /predict request
    max_candidates: int = Field(default=200, ge=1)  # per /rank request
    max_body_bytes: int = Field(default=1_000_000, ge=1_024)
    # Requests in flight over the whole service (BentoML splits it among the workers); beyond
    # it BentoML answers 429, health and metrics excepted. 0: no limit. Per client: the ingress.
    max_concurrency: int = Field(default=100, ge=0)
    log_max_bytes: int = Field(default=64 * 2**20, ge=1_024)  # rotate a log file past this
    log_max_seconds: float = Field(default=3_600.0, gt=0)  # ... or when older than this
    torch_threads: int = Field(default=1, ge=1)  # intra-op threads
    workers: int = Field(default=1, ge=1)  # server processes, each a model copy
    log_queue_size: int = Field(default=10_000, ge=1)  # records waiting; beyond: dropped
    # BentoML's access log line per request costs time on every request, and the prediction
    # log already records every prediction: off unless asked for.
    access_log: bool = False
    # BentoML's OpenTelemetry span per /predict and /rank request costs CPU on every request and
    # no exporter is configured by default: off unless asked for (other routes keep theirs).
    tracing: bool = False

    def traffic(self) -> dict[str, Any]:
        """The service's BentoML `traffic` configuration."""
        traffic: dict[str, Any] = {"timeout": TIMEOUT_S}
        if self.max_concurrency:
            traffic["max_concurrency"] = self.max_concurrency
        return traffic
