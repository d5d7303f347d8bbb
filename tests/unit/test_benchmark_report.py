"""benchmarks/report.py renders a record into the page and the README block; refuses a bad one."""

from __future__ import annotations

import copy
import json

import pytest

from benchmarks import report
from benchmarks.record import Recording

RECORD = {
    "benchmark": "train_throughput",
    "figures": {
        "train_rows": 160_000,
        "threads_per_process": 2,
        "samples_per_second": 98_765,
        "val_auc_by_epoch": [{"click": 0.71}],
        "by_epoch": {"1": {"seconds": 1.5, "auc": 0.7123}, "2": {"seconds": 1.25, "auc": 0.73}},
    },
    "command": "python -m benchmarks.train_throughput --rows 200000",
    "date": "2026-12-02T10:00:00+00:00",
    "host": {
        "cpu_count": 2,
        "cpu_model": "Test CPU",
        "load_average_start": [3.5, 2.0, 1.0],
        "load_average_end": [4.0, 2.5, 1.5],
        "probe_ms_start": 70.1,
        "probe_ms_end": 80.2,
    },
    "git_commit": "0123456789abcdef",
    "git_dirty": True,
}
README = "# AITM\n\nintro\n\n<!-- headline:begin -->\nold figures\n<!-- headline:end -->\n\nrest\n"


def test_a_record_renders_its_figures_command_commit_and_host(tmp_path):
    (tmp_path / "train_throughput.json").write_text(json.dumps(RECORD))
    records = report.load_records(tmp_path)
    text = report.section(records[0])
    assert text.startswith("## train_throughput\n")
    assert "| samples_per_second | 98,765 |" in text
    assert "`python -m benchmarks.train_throughput --rows 200000`" in text
    assert "`0123456789` with uncommitted changes" in text
    assert "loaded host: 2 CPUs (Test CPU), 1-minute load average 3.50 at the start" in text
    assert "| 1 | 1.5 | 0.7123 |" in text  # a dict of rows is a table of its own
    page = report.page(records)
    assert page == report.page(report.load_records(tmp_path))  # same records, same bytes
    assert "- `soak`: `make soak MINUTES=10`" in page  # no record: its command is listed


def test_the_readme_block_is_filled_from_the_records_and_nothing_else_changes():
    block = report.headline_block([RECORD])
    assert "| training throughput | 98,765 samples/s on 160,000 training rows" in block
    assert "| loaded: load 3.50 on 2 CPUs, probe 70.1 → 80.2 ms |" in block
    filled = report.fill_readme(README, block)
    assert filled.startswith("# AITM\n\nintro\n\n<!-- headline:begin -->\n| what |")
    assert filled.endswith("<!-- headline:end -->\n\nrest\n")
    assert "old figures" not in filled
    assert report.fill_readme(filled, block) == filled
    with pytest.raises(report.RecordError, match="headline"):
        report.fill_readme("# no markers\n", block)


@pytest.mark.parametrize("path", [("command",), ("git_commit",), ("host", "load_average_start")])
def test_a_record_missing_a_key_is_refused(tmp_path, path):
    record = copy.deepcopy(RECORD)
    holder = record
    for key in path[:-1]:
        holder = holder[key]
    del holder[path[-1]]
    (tmp_path / "bad.json").write_text(json.dumps(record))
    with pytest.raises(report.RecordError, match=f"bad.json: the record.* no '{path[-1]}'"):
        report.load_records(tmp_path)


def test_a_written_record_has_every_key_the_report_needs(tmp_path):
    path = Recording("simulate_memory", tmp_path / "r.json").write({"rows": 10, "seconds": 0.5})
    record = report.check(json.loads(path.read_text()), str(path))
    assert record["figures"] == {"rows": 10, "seconds": 0.5}
    assert record["date"].endswith("+00:00")
    assert record["host"]["probe_ms_start"] > 0


def test_a_host_is_quiet_only_with_a_low_load_and_a_steady_probe():
    host = {**RECORD["host"], "load_average_start": [0.4, 0.3, 0.2]}
    assert report.quiet(host)  # probe 70.1 -> 80.2 ms: within 25%
    assert not report.quiet({**host, "probe_ms_end": 120.0})  # slowed during the run
    assert not report.quiet(RECORD["host"])  # load 3.5 on 2 CPUs at the start
