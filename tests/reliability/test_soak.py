"""The soak's CI form: /rank and /predict together at a steady rate on a real server."""

from __future__ import annotations

import httpx
import pytest

from benchmarks.soak import soak, streams_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_steady_load_gets_no_errors_and_memory_stays_flat(served, serving_repo):
    client = httpx.Client(base_url=served.base_url, timeout=30)
    streams = streams_for(client, serving_repo[0], rank_rate=20, predict_rate=10, predict_rows=10)
    report = soak(client, streams, duration_s=40, window_s=10, server_pid=served.process.pid)
    print(report.totals())  # shown with pytest -s
    assert report.requests == 40 * 30
    assert report.errors == {}, report.totals()
    assert all(w.rss_mb > 100 for w in report.windows)  # the server's tree, not a stray pid
    assert report.memory_growth < 0.10, [w.summary() for w in report.windows]
    assert served.process.poll() is None
