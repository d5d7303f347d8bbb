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


def test_request_records_expand_to_one_record_per_row(tmp_path):
    import numpy as np

    from serving.prediction_log import RequestRecords

    log = PredictionLog(tmp_path)
    entry = RequestRecords(
        common={"request_id": "r1", "timestamp": "t", "model_version": "m", "endpoint": "rank"},
        features={"user_id": [7, 7], "ad_id": [1, 2]},
        probabilities=np.array([[0.5, 0.1], [0.4, 0.3]]),
        tasks=["click", "approval"],
        per_row={"objective": ["click", "approval"]},
    )
    log.append_request(entry)
    log.close()
    assert read_log(tmp_path) == [
        {
            "request_id": "r1",
            "row": i,
            "timestamp": "t",
            "model_version": "m",
            "features": {"user_id": 7, "ad_id": ad},
            "probabilities": {"click": p[0], "approval": p[1]},
            "endpoint": "rank",
            "objective": objective,
        }
        for i, (ad, p, objective) in enumerate(
            [(1, (0.5, 0.1), "click"), (2, (0.4, 0.3), "approval")]
        )
    ]


def test_the_queue_bound_counts_records_not_requests(tmp_path):
    import numpy as np

    from serving.prediction_log import RequestRecords

    failures = []
    log = PredictionLog(tmp_path, queue_size=5, on_failure=lambda r, n: failures.append((r, n)))
    entry = RequestRecords(
        common={"request_id": "big", "timestamp": "t", "model_version": "m"},
        features={"user_id": list(range(6))},
        probabilities=np.zeros((6, 1)),
        tasks=["click"],
    )
    log.append_request(entry)  # 6 records > 5: dropped whole, counted as 6
    log.close()
    assert failures == [("queue_full", 6)]
    assert read_log(tmp_path) == []
