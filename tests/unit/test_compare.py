"""benchmarks/compare.py end to end on tiny data: simulated, and a bring-your-own table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import compare

REPO_ROOT = Path(__file__).resolve().parents[2]
ALI_CCP_SAMPLE = REPO_ROOT.parent / "shared" / "data" / "ali-ccp" / "ali_ccp_train_sample.csv"

pytestmark = pytest.mark.slow


def _rows(table: str) -> list[str]:
    return [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")]


def test_compare_writes_a_row_per_model_on_a_simulated_funnel(tmp_path):
    pytest.importorskip("lightgbm")
    models = ["aitm", "esmm", "lightgbm"]
    argv = ["--rows", "3000", "--seeds", "1", "--epochs", "1", "--threads", "1"]
    argv += ["--json", str(tmp_path / "record.json")]  # not the committed benchmarks/results
    path = compare.main([*argv, "--models", ",".join(models), "--out", str(tmp_path)])
    table = path.read_text()
    assert path == tmp_path / "compare.md"
    assert _rows(table)[1:] == [*models, "oracle (true p)"]  # [0] is the header row
    for task in ("click", "application", "approval", "activation"):
        assert f"AUC {task}" in table
    runs = json.loads((tmp_path / "compare.json").read_text())["runs"]
    assert [r["model"] for r in runs] == models
    esmm = next(r for r in runs if r["model"] == "esmm")
    assert esmm["violation_rate"] == 0.0  # monotone by construction
    assert (tmp_path / "compare_auc.png").stat().st_size > 1000
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["benchmark"] == "compare"
    assert list(record["figures"]["models"]) == [*models, "oracle (true p)"]

    logged = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert [r["model"] for r in logged] == models
    rerun = compare.main([*argv, "--models", "aitm,mlp", "--out", str(tmp_path)])
    reran = json.loads((tmp_path / "compare.json").read_text())["runs"]
    assert reran[0] == runs[0]  # aitm reused from runs.jsonl, not retrained
    assert [r["model"] for r in reran] == ["aitm", "mlp"]
    assert _rows(rerun.read_text())[1:] == ["aitm", "mlp", "oracle (true p)"]


def test_compare_runs_on_your_own_table_with_a_config(tmp_path):
    if not ALI_CCP_SAMPLE.exists():
        pytest.skip(f"no Ali-CCP sample at {ALI_CCP_SAMPLE}")
    config = REPO_ROOT / "benchmarks" / "ali_ccp.yaml"
    argv = ["--data", str(ALI_CCP_SAMPLE), "--config", str(config), "--seeds", "1"]
    argv += ["--json", str(tmp_path / "record.json")]
    path = compare.main([*argv, "--epochs", "1", "--models", "mlp,mmoe", "--out", str(tmp_path)])
    table = path.read_text()
    assert _rows(table)[1:] == ["mlp", "mmoe"]  # no oracle row: the true p is unknown
    assert "AUC click" in table and "AUC purchase" in table
    assert "n/a" in table  # no gap to an oracle


def test_unknown_model_names_are_refused():
    with pytest.raises(SystemExit):
        compare.parse_args(["--models", "aitm,xgboost"])


def test_a_split_folder_without_test_is_refused(tmp_path):
    from aitm.data import DataError

    for split in ("train", "val"):
        (tmp_path / "data" / split).mkdir(parents=True)
    argv = ["--data", str(tmp_path / "data"), "--models", "mlp", "--out", str(tmp_path / "o")]
    argv += ["--json", str(tmp_path / "record.json")]
    with pytest.raises(DataError, match="needs train/, val/ and test/"):
        compare.main(argv)
