"""The same training runs data-parallel under torchrun (DDP, gloo on CPU)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aitm.inference import Predictor
from aitm.simulator import SIMULATED_TASKS

# torchrun's own limit is 600 s.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]


def test_torchrun_two_processes_trains_one_artifact(small_sim, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    assert torchrun.exists() or shutil.which("torchrun"), "torchrun not installed with torch"
    out = tmp_path / "ddp-model"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            str(torchrun), "--standalone", "--nproc_per_node=2",
            "-m", "aitm", "train", "--data", str(small_sim), "--out", str(out), "--epochs", "2",
        ],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["world_size"] == 2
    assert all(auc > 0.55 for auc in summary["val_auc"].values())
    predictor = Predictor.load(out)
    assert predictor.tasks == SIMULATED_TASKS
