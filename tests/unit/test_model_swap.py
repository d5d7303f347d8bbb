"""The served model's replacement without a server: the contract and probe checks, and the
pointer watcher on a real registry layout (its thread is not started: `poll` is called)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from aitm.checkpoint import WEIGHTS
from aitm.inference import Predictor
from registry.store import promote, rollback
from serving.forward import model_forward
from serving.model_source import (
    LoadedModel,
    ModelRefusedError,
    PointerWatcher,
    check_compatible,
    check_outputs,
    probe_batch,
)
from serving.spec import served_spec


@pytest.fixture(scope="module")
def artifact(small_sim, tmp_path_factory) -> Path:
    from aitm.checkpoint import save_artifact
    from aitm.config import Config, TrainConfig
    from aitm.data import read_table
    from aitm.training import train

    parts = {s: read_table(small_sim / s).head(2_000) for s in ("train", "val")}
    config = Config(train=TrainConfig(max_epochs=1, progress=False))
    out = tmp_path_factory.mktemp("swap") / "artifact"
    return save_artifact(train(config, parts["train"], parts["val"]), out)


@pytest.fixture(scope="module")
def predictor(artifact) -> Predictor:
    return Predictor.load(artifact)


@pytest.fixture
def home(artifact, tmp_path) -> Path:
    """A BentoML home holding four copies of the artifact as aitm:v1 ... v4."""
    home = tmp_path / "bentoml"
    for version in ("v1", "v2", "v3", "v4"):
        shutil.copytree(artifact, home / "models" / "aitm" / version)
    return home


def _promote(home: Path, version: str) -> None:
    promote(home, f"aitm:{version}", home / "models" / "aitm" / version, {})


class Recorder:
    """The watcher's callbacks: what was prepared, swapped in, and each outcome."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.swapped: list[str] = []
        self.outcomes: list[tuple[str, str]] = []

    def prepare(self, loaded: LoadedModel) -> str:
        if self.refuse:
            raise ModelRefusedError(f"model {loaded.tag} refused by the test")
        assert isinstance(loaded.predictor, Predictor)
        return loaded.tag

    def watcher(self, home: Path, current: str) -> PointerWatcher[str]:
        return PointerWatcher(
            home, "aitm", current, prepare=self.prepare, swap=self.swapped.append,
            interval_s=60, on_outcome=lambda outcome, tag, s: self.outcomes.append((outcome, tag)),
        )  # fmt: skip


def test_the_watcher_swaps_in_each_move_of_the_pointer_once(home):
    _promote(home, "v1")
    calls = Recorder()
    watcher = calls.watcher(home, "aitm:v1")
    assert watcher.poll() is None  # the pointer names the served model
    _promote(home, "v2")
    assert watcher.poll() == "swapped"
    assert watcher.poll() is None  # the pointer did not move again
    assert calls.swapped == ["aitm:v2"] and watcher.current == "aitm:v2"
    rollback(home)
    assert watcher.poll() == "swapped"
    assert calls.swapped == ["aitm:v2", "aitm:v1"]
    assert calls.outcomes == [("swapped", "aitm:v2"), ("swapped", "aitm:v1")]


def test_a_model_corrupted_after_its_promotion_is_refused_and_not_retried(home):
    _promote(home, "v1")
    calls = Recorder()
    watcher = calls.watcher(home, "aitm:v1")
    _promote(home, "v2")
    weights = home / "models" / "aitm" / "v2" / WEIGHTS
    weights.write_bytes(weights.read_bytes()[:-10])  # the checksum no longer matches
    assert watcher.poll() == "refused"
    assert watcher.poll() is None  # refused once, until the pointer moves again
    assert calls.swapped == [] and watcher.current == "aitm:v1"
    _promote(home, "v3")  # the next promotion is taken
    assert watcher.poll() == "swapped" and calls.swapped == ["aitm:v3"]
    assert calls.outcomes == [("refused", "aitm:v2"), ("swapped", "aitm:v3")]


def test_a_model_its_checks_refuse_is_not_swapped_in(home):
    _promote(home, "v1")
    calls = Recorder(refuse=True)
    watcher = calls.watcher(home, "aitm:v1")
    _promote(home, "v2")
    assert watcher.poll() == "refused"
    assert calls.swapped == [] and watcher.current == "aitm:v1"


def test_a_model_with_another_request_contract_is_refused(predictor):
    schema = predictor.schema
    spec = served_spec(schema, "served")
    check_compatible(schema, schema, spec, "same")  # vocabularies may differ, names may not
    reordered = dataclasses.replace(schema, tasks=tuple(reversed(schema.tasks)))
    with pytest.raises(ModelRefusedError, match="tasks"):
        check_compatible(reordered, schema, spec, "reordered")
    extra = {**schema.extra, "feature_service": "another_service"}
    with pytest.raises(ModelRefusedError, match="feature_service"):
        check_compatible(dataclasses.replace(schema, extra=extra), schema, spec, "other")


def test_the_probe_takes_finite_funnel_ordered_probabilities_only(predictor):
    schema = predictor.schema
    x = probe_batch(schema)
    assert x.shape == (64, len(schema.fields))
    assert (x >= 0).all() and (x.max(axis=0) < [f.cardinality for f in schema.fields]).all()
    check_outputs(model_forward(predictor), schema, "good")
    tasks = len(schema.tasks)
    falling = np.linspace(0.9, 0.1, tasks)
    bad = {
        "non-probabilities": lambda x: np.full((len(x), tasks), np.nan),
        "shape": lambda x: np.full((len(x), tasks + 1), 0.5),
        "rise along the funnel": lambda x: np.tile(falling[::-1], (len(x), 1)),
        "fails on a probe": lambda x: np.zeros((len(x), tasks))[:, 99],
    }
    for message, forward in bad.items():
        with pytest.raises(ModelRefusedError, match=message):
            check_outputs(forward, schema, "bad")
    check_outputs(lambda x: np.tile(falling, (len(x), 1)), schema, "falling")
