"""The train step's data-parallel path: torchrun with two processes on this machine."""

from __future__ import annotations

import pytest

from aitm.data import read_table
from aitm.inference import Predictor
from workflow.train import torchrun_command, train_model

# A whole local kfp pipeline with a two-process torchrun training step.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]


def test_the_command_is_standalone_torchrun_of_aitm_train():
    cmd = torchrun_command("c.yaml", "t.parquet", "out", 2)
    assert cmd[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    assert cmd[5:] == ["-m", "aitm", "train", "--data", "t.parquet", "--out", "out",
                       "--config", "c.yaml"]  # fmt: skip


def test_two_processes_train_one_verified_artifact(small_sim, tmp_path):
    frame = read_table(small_sim / "train").head(12_000)
    path = tmp_path / "train.parquet"
    frame.to_parquet(path, index=False)
    config = "train:\n  max_epochs: 1\n  batch_size: 512\n  progress: false\n"
    summary = train_model(config, str(path), str(tmp_path / "model"), nproc_per_node=2)
    assert summary["world_size"] == 2
    assert summary["train_rows"] == 10_800  # the latest 10% by time held out for validation
    predictor = Predictor.load(tmp_path / "model")
    assert predictor.config.train.batch_size == 512
