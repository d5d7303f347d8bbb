"""The `aitm` command end to end: simulate, train, evaluate; artifacts load and refuse damage."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from aitm.checkpoint import ArtifactError
from aitm.data import read_table
from aitm.evaluation import exact_auc
from aitm.inference import Predictor
from aitm.simulator import SIMULATED_TASKS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]  # each command may take 600 s


def aitm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aitm", *args], capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def model_dir(small_sim, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "aitm"
    result = aitm("train", "--data", str(small_sim), "--out", str(out), "--epochs", "3")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert set(summary["val_auc"]) == set(SIMULATED_TASKS)
    return out


def test_help_everywhere():
    for command in ([], ["simulate"], ["train"], ["evaluate"]):
        result = aitm(*command, "--help")
        assert result.returncode == 0 and "Usage" in result.stdout


def test_evaluate_prints_one_json_object_with_every_metric(small_sim, model_dir):
    result = aitm("evaluate", "--model", str(model_dir), "--data", str(small_sim))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for key in ("auc", "oracle_auc", "logloss", "calibration", "violation_rate"):
        assert key in report
    assert list(report["auc"]) == list(SIMULATED_TASKS)
    assert all(0.5 < report["auc"][t] < report["oracle_auc"][t] for t in SIMULATED_TASKS)

    # The same numbers from the library's Predictor on the test split.
    test = read_table(small_sim / "test")
    probs = Predictor.load(model_dir).predict(test)
    assert list(probs.columns) == list(SIMULATED_TASKS)
    for task in SIMULATED_TASKS:
        assert exact_auc(test[task], probs[task]) == pytest.approx(report["auc"][task])


def test_simulate_writes_splits_and_oracle(tmp_path):
    out = tmp_path / "sim"
    result = aitm("simulate", "--rows", "5000", "--days", "8", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["rows"]["train"] > 0
    assert (out / "oracle.json").is_file() and any((out / "test").glob("*.parquet"))


def test_bad_data_is_refused_with_a_clear_message(tmp_path):
    table = tmp_path / "bad.csv"
    table.write_text("a,click,buy\nx,0,1\ny,1,1\n")
    config = tmp_path / "c.yaml"
    config.write_text("data:\n  fields: [a]\n  tasks: [click, buy]\n  timestamp: null\n")
    result = aitm(
        "train", "--data", str(table), "--config", str(config), "--out", str(tmp_path / "m")
    )
    assert result.returncode == 2
    assert "1 rows with buy=1 but click=0" in result.stderr
    assert not (tmp_path / "m").exists()


def test_damaged_artifacts_are_refused(model_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    with (broken / "weights.pt").open("r+b") as f:
        f.seek(100)
        f.write(b"garbage")
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        Predictor.load(broken)
    (broken / "schema.json").unlink()
    with pytest.raises(ArtifactError, match="missing"):
        Predictor.load(broken)
    with pytest.raises(ArtifactError, match="no model folder"):
        Predictor.load(tmp_path / "nowhere")
    result = aitm("evaluate", "--model", str(broken), "--data", str(tmp_path))
    assert result.returncode == 2 and "error:" in result.stderr
