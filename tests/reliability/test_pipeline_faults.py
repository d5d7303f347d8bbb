"""The pipeline's training step killed mid-training, and half-written artifacts: the previous
model stays whole, a rerun completes, and nothing half-written can be registered or promoted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aitm.checkpoint import MANIFEST, ArtifactError, verify_artifact
from registry.store import pointer_path, promote, register

# Two training steps of up to 300 s each in one test.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

TRAIN_STEP = "import sys; from workflow.train import train_model; train_model(*sys.argv[1:4])"


def _train_step(config_yaml: str, train: Path, out: Path) -> subprocess.Popen:
    """The pipeline's train step body (`workflow.train.train_model`) in its own process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", TRAIN_STEP, config_yaml, str(train), str(out)],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _epochs(n: int, progress: bool = False) -> str:
    return f"train:\n  max_epochs: {n}\n  patience: {n}\n  progress: {str(progress).lower()}\n"


def test_a_training_step_killed_mid_training_keeps_the_last_model_and_a_rerun_completes(
    small_sim, tmp_path
):
    out = tmp_path / "model"
    first = _train_step(_epochs(1), small_sim / "train", out)
    assert first.wait(timeout=300) == 0, first.stderr.read()[-3000:]
    verify_artifact(out)
    manifest = (out / MANIFEST).read_text()

    killed = _train_step(_epochs(50, progress=True), small_sim / "train", out)
    deadline = time.monotonic() + 300
    for line in killed.stderr:  # the first finished epoch: training is under way
        if line.startswith("epoch 1:") or time.monotonic() > deadline:
            break
    killed.kill()
    assert killed.wait(timeout=30) != 0
    verify_artifact(out)  # the previous model, whole and unchanged
    assert (out / MANIFEST).read_text() == manifest

    # A save killed half-way leaves a hidden temporary folder beside the model, never the model.
    half = tmp_path / ".model.killed"
    half.mkdir()
    (half / "weights.pt").write_bytes(b"half")
    rerun = _train_step(_epochs(2), small_sim / "train", out)
    assert rerun.wait(timeout=300) == 0, rerun.stderr.read()[-3000:]
    verify_artifact(out)
    assert (out / MANIFEST).read_text() != manifest  # the new model
    assert not half.exists()  # the stale temporary folder was cleared
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


@pytest.mark.parametrize("damage", ["truncated weights", "no manifest", "empty folder"])
def test_half_written_models_are_neither_registered_nor_promoted(small_sim, tmp_path, damage):
    from aitm.checkpoint import save_artifact
    from aitm.config import Config, TrainConfig
    from aitm.data import read_table
    from aitm.training import train

    config = Config(train=TrainConfig(max_epochs=1, progress=False))
    parts = {s: read_table(small_sim / s).head(5_000) for s in ("train", "val")}
    model = save_artifact(train(config, parts["train"], parts["val"]), tmp_path / "model")
    home = tmp_path / "bentoml"
    pointer = pointer_path(home)
    pointer.parent.mkdir(parents=True)
    pointer.write_text(json.dumps({"tag": "aitm:previous"}))
    if damage == "truncated weights":
        weights = model / "weights.pt"
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "no manifest":
        (model / MANIFEST).unlink()
    else:
        for file in model.iterdir():
            file.unlink()
    with pytest.raises(ArtifactError):
        register(model, home, labels={}, metadata={})
    with pytest.raises(ArtifactError, match="refusing to promote aitm:new"):
        promote(home, "aitm:new", model, {})
    assert json.loads(pointer.read_text()) == {"tag": "aitm:previous"}
