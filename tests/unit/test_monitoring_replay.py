"""The spec-driven replay's rows: read from the spec's table (a folder of CSVs, a train/val/test
folder), sent as the fields the spec names, each as its type; bad input exits 2."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from typer.testing import CliRunner

from aitm.dataset import DatasetSpec, SpecError
from monitoring.cli import app
from monitoring.replay import read_spec_rows
from monitoring.synthetic import field_kind, request_rows
from tests.conftest import ALI_CCP_DIR

ALI_CCP = {
    "name": "ali-ccp", "table": str(ALI_CCP_DIR), "tasks": ["click", "purchase"],
    "entities": {"user": {"key": "101", "fields": ["121", "124", "D109_14"]},
                 "item": {"key": "205", "fields": ["206", "216"]}},
    "context": ["301"], "candidate_context": ["508", "D508"],
    "numeric": ["D109_14", "D508"], "candidate": "item",
}  # fmt: skip


def test_the_ali_ccp_sample_is_read_with_the_spec_fields_and_sent_as_their_types():
    spec = DatasetSpec.parse(ALI_CCP)
    frame = read_spec_rows(spec)
    assert len(frame) == 150  # both CSV files of the folder
    assert set(spec.fields) | set(spec.tasks) <= set(frame.columns)
    kinds = {f: field_kind(frame, f, spec) for f in spec.fields}
    assert kinds["101"] == "int" and kinds["301"] == "int" and kinds["D508"] == "float"
    rows = request_rows(frame, spec.fields, kinds)
    assert list(rows[0]) == spec.fields
    assert type(rows[0]["205"]) is int and type(rows[0]["D109_14"]) is float
    assert rows[0]["D109_14"] == pytest.approx(0.4734)
    assert len(read_spec_rows(spec, rows=400)) == 400  # beyond the table: its rows again


def test_missing_values_travel_as_null_and_a_split_folder_replays_its_test_part(tmp_path):
    table = tmp_path / "table"
    for split, clicks in (("train", [0, 1, 0]), ("test", [1, 0, 0])):
        (table / split).mkdir(parents=True)
        part = pd.DataFrame({"uid": [1, 2, 3], "item": [7, 8, 9], "score": [0.5, math.nan, 2.0],
                             "click": clicks, "buy": [0, 0, 0]})  # fmt: skip
        part.to_parquet(table / split / "p.parquet")
    spec = DatasetSpec.parse({
        "name": "tiny", "table": str(table), "tasks": ["click", "buy"],
        "entities": {"u": {"key": "uid"}, "i": {"key": "item", "fields": ["score"]}},
        "numeric": ["score"], "candidate": "i",
    })  # fmt: skip
    frame = read_spec_rows(spec)
    assert frame.click.tolist() == [1, 0, 0]
    rows = request_rows(frame, spec.fields, {f: field_kind(frame, f, spec) for f in spec.fields})
    assert rows[1] == {"uid": 2, "item": 8, "score": None}
    with pytest.raises(SpecError, match="no 'val' part"):
        read_spec_rows(spec, split="val")


def test_replay_refuses_a_table_without_the_spec_columns_and_an_unclear_source(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(DatasetSpec.parse({**ALI_CCP, "context": ["999"]}).to_yaml())
    runner = CliRunner()
    done = runner.invoke(app, ["replay", "--url", "http://127.0.0.1:9", "--dataset", str(spec),
                               "--out", str(tmp_path / "replay.json")])  # fmt: skip
    assert done.exit_code == 2, done.output
    assert "'999'" in done.output
    neither = runner.invoke(app, ["replay", "--url", "http://x", "--out", str(tmp_path / "r")])
    assert neither.exit_code == 2 and "one of --world" in neither.output
