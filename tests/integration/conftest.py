"""A real Feast repo built from the small simulation: applied and materialized once."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

REPO_TEMPLATE = Path(__file__).resolve().parents[2] / "feature_repo"


@dataclass(frozen=True)
class BuiltRepo:
    path: Path
    sim: Path
    start: pd.Timestamp  # materialization window covering every snapshot
    end: pd.Timestamp


def copy_repo(destination: Path) -> Path:
    """The declarations of feature_repo/ in a fresh folder (its data/ is never copied)."""
    shutil.copytree(
        REPO_TEMPLATE, destination, ignore=shutil.ignore_patterns("data", "__pycache__")
    )
    return destination


@pytest.fixture
def fresh_repo(tmp_path) -> Path:
    """An empty copy of the repo's declarations, for tests that build their own sources."""
    return copy_repo(tmp_path / "feature_repo")


@pytest.fixture(scope="session")
def built_repo(small_sim, tmp_path_factory) -> BuiltRepo:
    from features.build import build_sources
    from features.fields import ENTITIES, TIMESTAMP

    repo = copy_repo(tmp_path_factory.mktemp("feast") / "feature_repo")
    build_sources(small_sim, repo)
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


@dataclass(frozen=True)
class ServingModel:
    home: Path  # BENTOML_HOME with the model registered and promoted
    tag: str
    path: Path  # the model folder in the store
    sim: Path  # the simulation it was trained on (its users and ads fill the Feast store)


@pytest.fixture(scope="session")
def serving_model(tmp_path_factory) -> ServingModel:
    """A tiny model (30k simulated rows, one epoch) registered and promoted in a tmp store.

    Registration runs in a subprocess: bentoml fixes its store location at import.
    """
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("serving")
    home = root / "bentoml"
    code = f"""
import json
from pathlib import Path
from aitm.checkpoint import save_artifact
from aitm.config import Config, TrainConfig
from aitm.data import read_table
from aitm.simulator import SimulationConfig, simulate
from aitm.training import train
from pipelines.registry import promote, register
out = Path({str(root)!r})
simulate(SimulationConfig(rows=30_000, days=6, val_days=1, test_days=1, n_users=2_000,
                          n_ads=200, chunk_rows=10_000), out / "sim")
parts = {{s: read_table(out / "sim" / s) for s in ("train", "val")}}
config = Config(train=TrainConfig(max_epochs=1, progress=False))
result = train(config, parts["train"], parts["val"])
save_artifact(result, out / "artifact")
tag, path = register(out / "artifact", {str(home)!r}, labels={{}}, metadata={{}})
promote({str(home)!r}, tag, path, {{}})
print(json.dumps({{"tag": tag, "path": str(path)}}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]
    info = json.loads(done.stdout.strip().splitlines()[-1])
    return ServingModel(home=home, tag=info["tag"], path=Path(info["path"]), sim=root / "sim")
