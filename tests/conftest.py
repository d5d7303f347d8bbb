"""Shared fixtures, made once per test session: small simulated funnels, and a tiny served
model with the Feast store holding its users and ads."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from aitm.simulator import SimulationConfig, simulate

REPO_ROOT = Path(__file__).resolve().parents[1]
ALI_CCP_DIR = REPO_ROOT.parent / "shared" / "data" / "ali-ccp"
REPO_TEMPLATE = REPO_ROOT / "feature_repo"


def copy_repo(destination: Path) -> Path:
    """The declarations of feature_repo/ in a fresh folder (its data/ is never copied)."""
    shutil.copytree(
        REPO_TEMPLATE, destination, ignore=shutil.ignore_patterns("data", "__pycache__")
    )
    return destination


@pytest.fixture(scope="session")
def small_sim(tmp_path_factory) -> Path:
    """60k impressions over 10 days (train 8 days, val 1, test 1), a small world, seed 0."""
    out = tmp_path_factory.mktemp("sim-small")
    config = SimulationConfig(
        rows=60_000, days=10, val_days=1, test_days=1, n_users=5_000, n_ads=300, chunk_rows=20_000
    )
    simulate(config, out)
    return out


@pytest.fixture(scope="session")
def ali_ccp_dir() -> Path:
    """The real Ali-CCP sample shipped in ../shared (skips where a checkout lacks it)."""
    if not ALI_CCP_DIR.is_dir():
        pytest.skip(f"shared Ali-CCP sample not found at {ALI_CCP_DIR}")
    return ALI_CCP_DIR


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
from registry.store import promote, register
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


@pytest.fixture(scope="session")
def serving_repo(serving_model, tmp_path_factory):
    """The served model's own simulation, built into a Feast repo, applied and materialized:
    (repo folder, SQLite store)."""
    from aitm.dataset import load_spec
    from features.build import build_sources
    from features.store import apply, materialize, open_store

    repo = copy_repo(tmp_path_factory.mktemp("serving-feast") / "feature_repo")
    build_sources(load_spec(), repo, serving_model.sim)
    apply(repo, "sqlite")
    store = open_store(repo, "sqlite")
    materialize(store, pd.Timestamp("2020-01-01", tz="UTC"), pd.Timestamp("2035-01-01", tz="UTC"))
    return repo, store


@pytest.fixture(scope="session")
def serving_ids(serving_repo) -> tuple[list[int], list[int]]:
    """Three users and fifty ads with online features."""
    from features.build import source_ids

    users, ads = source_ids(serving_repo[0])
    return [int(u) for u in users[:3]], [int(a) for a in ads[:50]]
