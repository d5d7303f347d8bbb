"""A user's own table through the bring-your-own path: the real Ali-CCP sample (click, purchase)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from aitm.data import read_table
from aitm.inference import Predictor

ALI_FIELDS = [
    "101", "121", "122", "124", "125", "126", "127", "128", "129",
    "205", "206", "207", "216", "508", "509", "702", "853", "301",
]  # fmt: skip


@pytest.fixture
def ali_config(tmp_path):
    path = tmp_path / "ali.yaml"
    path.write_text(
        "data:\n"
        f"  fields: [{', '.join(repr(f) for f in ALI_FIELDS)}]\n"
        "  tasks: [click, purchase]\n"
        "  timestamp: null\n"
        "  min_count: 1\n"
        "train:\n  batch_size: 32\n  max_epochs: 2\n  progress: false\n"
    )
    return path


@pytest.mark.timeout(900)  # train and evaluate may take 300 s each
def test_ali_ccp_sample_trains_and_evaluates(ali_config, ali_ccp_dir, tmp_path):
    model = tmp_path / "ali-model"
    train_csv = ali_ccp_dir / "ali_ccp_train_sample.csv"
    run = [sys.executable, "-m", "aitm"]
    trained = subprocess.run(
        [*run, "train", "--data", str(train_csv), "--config", str(ali_config), "--out", str(model)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    predictor = Predictor.load(model)
    assert predictor.tasks == ("click", "purchase")
    assert predictor.schema.field_names == ALI_FIELDS
    assert predictor.schema.field("205").dtype == "int"

    val_csv = ali_ccp_dir / "ali_ccp_val_sample.csv"
    evaluated = subprocess.run(
        [*run, "evaluate", "--model", str(model), "--data", str(val_csv)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["rows"] == 50
    assert set(report["auc"]) == {"click", "purchase"}
    assert "oracle_auc" not in report
    probs = predictor.predict(read_table(val_csv))
    assert probs.shape == (50, 2) and probs.to_numpy().min() > 0
