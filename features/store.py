"""Open a Feast store in one of the repo's variants, and run `feast apply` on it."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from aitm.proc import run_checked

if TYPE_CHECKING:
    from feast import FeatureStore

Variant = Literal["sqlite", "redis", "spark"]
YAML_FILES: dict[str, str] = {
    "sqlite": "feature_store.yaml",
    "redis": "feature_store.redis.yaml",  # online store: Redis at $AITM_REDIS_CONNECTION
    "spark": "feature_store.spark.yaml",  # offline store: Spark local mode
}
REDIS_ENV = "AITM_REDIS_CONNECTION"
OFFLINE_ENV = "AITM_FEAST_OFFLINE"


class FeatureStoreError(RuntimeError):
    """A Feast operation that failed; the message says which and why."""


def yaml_path(repo: str | Path, variant: Variant = "sqlite") -> Path:
    if variant not in YAML_FILES:
        raise ValueError(f"variant must be one of {sorted(YAML_FILES)}, got {variant!r}")
    path = Path(repo).resolve() / YAML_FILES[variant]
    if not path.exists():
        raise FeatureStoreError(f"{path}: no such Feast config")
    if variant == "redis" and not os.environ.get(REDIS_ENV):
        raise FeatureStoreError(f"the redis variant needs {REDIS_ENV}=host:port in the environment")
    return path


def _env(variant: Variant) -> dict[str, str]:
    """The environment for a `feast` subprocess: the offline store switch."""
    return {**os.environ, OFFLINE_ENV: "spark" if variant == "spark" else "file"}


def feast_cli(repo: str | Path, variant: Variant, *args: str) -> str:
    """Run `feast -f <variant yaml> ARGS` in the repo folder; raise with its output on failure.

    A subprocess, because Feast imports the repo's modules by bare name (`entities`, ...) and
    caches them: a second repo or variant in the same process would see the first one's.
    """
    cmd = [sys.executable, "-m", "feast.cli.cli", "-f", str(yaml_path(repo, variant)), *args]
    done = run_checked(cmd, f"`feast {' '.join(args)}` ({variant})", error=FeatureStoreError,
                       cwd=Path(repo).resolve(), env=_env(variant))  # fmt: skip
    return done.stdout


def apply(repo: str | Path, variant: Variant = "sqlite") -> str:
    # Spark would start a JVM just to check that the Parquet sources exist (~40 s); every
    # field and the timestamp column are declared, so nothing needs inferring from them.
    extra = ("--skip-source-validation",) if variant == "spark" else ()
    return feast_cli(repo, variant, "apply", *extra)


def open_store(repo: str | Path, variant: Variant = "sqlite") -> FeatureStore:
    from feast import FeatureStore

    repo = Path(repo).resolve()
    return FeatureStore(repo_path=str(repo), fs_yaml_file=yaml_path(repo, variant))


def materialize(store: FeatureStore, start: datetime, end: datetime) -> None:
    """Load every snapshot valid in [start, end] into the online store."""
    store.materialize(start_date=start, end_date=end)
