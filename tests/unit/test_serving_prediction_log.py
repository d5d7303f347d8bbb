"""The prediction log: complete records, rotation, never blocking, failures counted."""

from __future__ import annotations

import os

from serving.prediction_log import PredictionLog, read_log


def test_records_are_written_and_files_rotate_by_size(tmp_path):
    log = PredictionLog(tmp_path, max_bytes=1_024, max_seconds=3_600)
    for i in range(100):
        log.append({"request_id": f"r{i}", "probabilities": {"click": 0.1}})
        if i % 10 == 9:
            log.flush()
    log.close()
    records = read_log(tmp_path)
    assert [r["request_id"] for r in records] == [f"r{i}" for i in range(100)]
    files = sorted(tmp_path.glob("predictions-*.jsonl"))
    assert len(files) > 1
    assert all(str(os.getpid()) in f.name for f in files)


def test_two_processes_worth_of_logs_never_share_a_file(tmp_path):
    a, b = PredictionLog(tmp_path), PredictionLog(tmp_path)
    assert a.stem != b.stem
    a.close()
    b.close()


def test_full_queue_drops_and_counts_without_blocking(tmp_path):
    failures = []
    log = PredictionLog(tmp_path, queue_size=1, on_failure=lambda r, n: failures.append(r))
    for i in range(2_000):
        log.append({"request_id": i})
    log.close()
    assert "queue_full" in failures


def test_write_errors_are_counted_not_raised(tmp_path):
    failures = []
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the log folder should be")
    log = PredictionLog(blocker, on_failure=lambda r, n: failures.append((r, n)))
    log.append({"request_id": "x"})
    log.flush()
    log.close()
    assert failures == [("write_error", 1)]
