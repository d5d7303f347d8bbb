"""Open a Feast store in one of the repo's variants, and run `feast apply` on it."""

from __future__ import annotations

import os
import re
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
    # online store: Redis at $AITM_REDIS_CONNECTION; SQL registry at $AITM_FEAST_REGISTRY
    "redis": "feature_store.redis.yaml",
    "spark": "feature_store.spark.yaml",  # offline store: Spark local mode
}
REDIS_ENV = "AITM_REDIS_CONNECTION"
REGISTRY_ENV = "AITM_FEAST_REGISTRY"  # the redis variant's SQL registry (a SQLAlchemy URL)
OFFLINE_ENV = "AITM_FEAST_OFFLINE"
DATA_ENV = "AITM_FEAST_DATA"  # where the offline Parquet files lie (default: <repo>/data)
_VAR = re.compile(r"\$\{(\w+)\}")


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


def default_registry(repo: str | Path) -> str:
    """The redis variant's registry when $AITM_FEAST_REGISTRY is unset: a SQLite database in the
    repo's data/ (the same Feast SqlRegistry code as the cluster's Postgres)."""
    data = Path(repo).resolve() / "data"
    data.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{data / 'registry.redis.sqlite'}"


def _env(variant: Variant, repo: str | Path) -> dict[str, str]:
    """The environment Feast expands the variant's yaml in: the offline store switch, and for
    the redis variant a default registry."""
    env = {**os.environ, OFFLINE_ENV: "spark" if variant == "spark" else "file"}
    if variant == "redis" and not env.get(REGISTRY_ENV):
        env[REGISTRY_ENV] = default_registry(repo)
    return env


def feast_cli(repo: str | Path, variant: Variant, *args: str) -> str:
    """Run `feast -f <variant yaml> ARGS` in the repo folder; raise with its output on failure.

    A subprocess, because Feast imports the repo's modules by bare name (`entities`, ...) and
    caches them: a second repo or variant in the same process would see the first one's.
    """
    cmd = [sys.executable, "-m", "feast.cli.cli", "-f", str(yaml_path(repo, variant)), *args]
    done = run_checked(cmd, f"`feast {' '.join(args)}` ({variant})", error=FeatureStoreError,
                       cwd=Path(repo).resolve(), env=_env(variant, repo))  # fmt: skip
    return done.stdout


def apply(repo: str | Path, variant: Variant = "sqlite") -> str:
    # Spark would start a JVM just to check that the Parquet sources exist (~40 s); every
    # field and the timestamp column are declared, so nothing needs inferring from them.
    extra = ("--skip-source-validation",) if variant == "spark" else ()
    return feast_cli(repo, variant, "apply", *extra)


def open_store(repo: str | Path, variant: Variant = "sqlite") -> FeatureStore:
    """The variant's store, its yaml expanded like Feast does (`${VAR}` from the environment)
    plus `_env`'s defaults, without changing this process's environment."""
    import yaml
    from feast import FeatureStore
    from feast.repo_config import FeastConfigError, RepoConfig
    from pydantic import ValidationError

    repo = Path(repo).resolve()
    path, env = yaml_path(repo, variant), _env(variant, repo)
    text = _VAR.sub(lambda m: env.get(m[1], m[0]), path.read_text())
    try:
        config = RepoConfig(**yaml.safe_load(text))
    except ValidationError as exc:
        raise FeastConfigError(exc, str(path)) from exc
    config.repo_path = repo
    return FeatureStore(repo_path=str(repo), config=config)


def materialize(store: FeatureStore, start: datetime, end: datetime) -> None:
    """Load every snapshot valid in [start, end] into the online store."""
    store.materialize(start_date=start, end_date=end)
