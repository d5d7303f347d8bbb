"""Real local kfp runs of the training pipeline on a real Feast repo and BentoML store.

One store (BENTOML_HOME in tmp) lives through three runs, in order: a run that passes the
gate and promotes; a run with impossible floors that must leave that incumbent promoted;
a run on data breaking the funnel order that must stop at validation, before training.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import copy_repo
from tests.support.placeholder_bento import write_placeholder_bento

# The module's fixtures run whole local kfp pipelines.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

WINDOWS = dict(  # the small simulation: 10 days from 2026-01-01, the last one held out
    train_start="2026-01-01T00:00:00+00:00",
    train_end="2026-01-10T00:00:00+00:00",
    eval_start="2026-01-10T00:00:00+00:00",
    eval_end="2026-01-11T00:00:00+00:00",
)
CONFIG = (  # small batches: 1 epoch of 256-row steps learns enough on 50k rows
    "train:\n  max_epochs: 1\n  batch_size: 256\n  progress: false\n"
    "gate:\n  default_auc_floor: {floor}\n"
)


@pytest.fixture(scope="module")
def applied_repo(small_sim, tmp_path_factory) -> Path:
    from aitm.dataset import load_spec
    from features.build import build_sources
    from features.store import apply

    repo = copy_repo(tmp_path_factory.mktemp("pipeline-feast") / "feature_repo")
    build_sources(load_spec(), repo, small_sim)
    apply(repo)
    return repo


@pytest.fixture(scope="module")
def broken_repo(applied_repo, tmp_path_factory) -> Path:
    """The same applied repo, with 200 impressions applying without a click."""
    from features.build import DATA_DIR
    from features.fields import IMPRESSIONS_FILE

    repo = tmp_path_factory.mktemp("pipeline-feast-bad") / "feature_repo"
    shutil.copytree(applied_repo, repo)
    path = repo / DATA_DIR / IMPRESSIONS_FILE
    frame = pd.read_parquet(path)
    no_click = frame.index[frame["click"] == 0][:200]
    frame.loc[no_click, "application"] = 1
    frame.to_parquet(path, index=False)
    return repo


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pipeline-store")
    serving = root / "serving"
    write_placeholder_bento(serving)
    return {
        "home": root / "bentoml",
        "runs": root / "runs",
        "bentofile": serving / "bentofile.yaml",
    }


def _run(repo: Path, store: dict[str, Path], floor: float, small_sim: Path):
    from pipelines.local import run_training

    arguments = dict(
        feature_repo=str(repo), bentoml_home=str(store["home"]),
        config_yaml=CONFIG.format(floor=floor), oracle_data=str(small_sim),
        bentofile=str(store["bentofile"]), git_revision="test", **WINDOWS,
    )  # fmt: skip
    return run_training(store["runs"], arguments)


def _store_state(home: Path) -> tuple[bytes | None, list[str]]:
    from registry.store import pointer_path

    pointer = pointer_path(home)
    models = sorted(p.name for p in (home / "models" / "aitm").glob("*")) if home.exists() else []
    return (pointer.read_bytes() if pointer.exists() else None), models


@pytest.fixture(scope="module")
def first_run(applied_repo, store, small_sim):
    return _run(applied_repo, store, 0.5, small_sim)


def test_a_run_passing_the_gate_promotes_a_verified_model_and_builds_a_bento(first_run, store):
    from aitm.inference import Predictor
    from registry.store import promoted

    summary = first_run
    assert summary.succeeded, summary.describe()
    assert summary.validation["success"]
    assert summary.rows["train"] > 40_000 and summary.rows["eval"] > 4_000
    assert summary.decision["promote"] and summary.decision["incumbent_auc"] is None
    current = promoted(store["home"])
    assert current is not None and current.tag == summary.promoted_tag
    assert Predictor.load(current.path).tasks == ("click", "application", "approval", "activation")
    # The registry's history names the run that promoted it (kfp's pipeline job name).
    from registry.store import history

    assert [r["tag"] for r in history(store["home"])] == [current.tag]
    assert current.info["action"] == "promote" and current.info["replaced"] is None
    assert current.info["run"].startswith("aitm-training"), current.info["run"]
    # The store's own record: labels and metadata that say what made the model.
    import yaml

    record = yaml.safe_load((current.path / "model.yaml").read_text())
    assert record["labels"]["feature_service"] == "aitm_v1"
    assert record["metadata"]["eval_window"] == [WINDOWS["eval_start"], WINDOWS["eval_end"]]
    assert set(record["metadata"]["metrics"]["auc"]) == set(summary.decision["candidate_auc"])
    # The evaluation report, the oracle AUC and the bento.
    assert "## Gate: PROMOTE" in Path(summary.reports["evaluation report"]).read_text()
    assert set(summary.evaluation["candidate"]["oracle_auc"]) == set(current.info["auc"])
    assert summary.registered["bento"].startswith("placeholder:")
    assert list((store["home"] / "bentos" / "placeholder").glob("*/bento.yaml"))
    # The monitoring reference: the evaluation window, the model's predictions, the labels.
    from monitoring.reference import load_reference, prob_column
    from registry.store import promoted_reference

    reference = load_reference(promoted_reference(store["home"]))
    assert len(reference.frame) == summary.rows["eval"]
    assert reference.info["model_tag"] == current.tag
    assert {prob_column("approval"), "approval"} <= set(reference.frame.columns)


def test_impossible_floors_promote_nothing_and_keep_the_incumbent(
    first_run, applied_repo, store, small_sim
):
    before = _store_state(store["home"])
    summary = _run(applied_repo, store, 0.99, small_sim)
    assert summary.succeeded, summary.describe()  # a rejected model is not a failed run
    assert summary.trained
    assert not summary.decision["promote"]
    assert summary.decision["incumbent_tag"] == first_run.promoted_tag
    under = {r.split(":")[0] for r in summary.decision["reasons"] if "below the floor 0.9900" in r}
    assert under == set(summary.decision["candidate_auc"])
    assert summary.registered is None
    assert not (summary.run_dir / "package-model").exists()
    assert _store_state(store["home"]) == before


def test_data_breaking_the_funnel_stops_at_validation_before_training(
    first_run, broken_repo, store, small_sim
):
    before = _store_state(store["home"])
    summary = _run(broken_repo, store, 0.5, small_sim)
    assert not summary.succeeded
    assert "validate-features" in summary.error
    assert not summary.validation["success"]
    failed = summary.validation["windows"]["train"]["failed"]
    assert any("expect_column_pair_values_a_to_be_greater_than_b on click>=application" in f
               for f in failed), failed  # fmt: skip
    assert not summary.trained and not (summary.run_dir / "train-model").exists()
    assert summary.decision is None
    assert Path(summary.reports["data docs"]).is_file()
    assert _store_state(store["home"]) == before
    assert json.loads((store["home"] / "promoted" / "aitm.json").read_text())["tag"] == (
        first_run.promoted_tag
    )
