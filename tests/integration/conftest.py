"""A real Feast repo built from the small simulation: applied and materialized once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import copy_repo


@dataclass(frozen=True)
class BuiltRepo:
    path: Path
    sim: Path
    start: pd.Timestamp  # materialization window covering every snapshot
    end: pd.Timestamp


@pytest.fixture
def fresh_repo(tmp_path) -> Path:
    """An empty copy of the repo's declarations, for tests that build their own sources."""
    return copy_repo(tmp_path / "feature_repo")


@pytest.fixture(scope="session")
def built_repo(small_sim, tmp_path_factory) -> BuiltRepo:
    from aitm.dataset import load_spec
    from features.build import build_sources
    from features.fields import ENTITIES, TIMESTAMP

    repo = copy_repo(tmp_path_factory.mktemp("feast") / "feature_repo")
    build_sources(load_spec(), repo, small_sim)
    times = pd.concat(
        [pd.read_parquet(repo / "data" / e.snapshot_file, columns=[TIMESTAMP]) for e in ENTITIES]
    )[TIMESTAMP]
    start = times.min() - pd.Timedelta(seconds=1)
    end = times.max() + pd.Timedelta(days=1)
    return BuiltRepo(path=repo, sim=small_sim, start=start, end=end)


@pytest.fixture(scope="session")
def sqlite_store(built_repo):
    """The default variant (file offline store, SQLite online store), applied and materialized."""
    from features.store import apply, materialize, open_store

    apply(built_repo.path, "sqlite")
    store = open_store(built_repo.path, "sqlite")
    materialize(store, built_repo.start, built_repo.end)
    return store
