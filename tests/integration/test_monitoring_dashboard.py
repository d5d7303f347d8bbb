"""The Evidently dashboard: windows monitored into a workspace, served by `evidently ui`, loaded
in headless Chromium (Debian's `chromium`, installed by `make system-deps`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from aitm.simulator import DriftConfig, SimulationConfig
from monitoring.job import JobPaths, run_job
from monitoring.logs import Window
from monitoring.synthetic import (
    Traffic,
    simulator_spec,
    true_probabilities,
    write_log_files,
    write_true_probability_reference,
)
from tests.support.redis_server import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DOCS_ENV = "AITM_DASHBOARD_SCREENSHOT"  # set to a path to keep the screenshot (README image)
PANELS = (
    "Label coverage",
    "Share of drifted input fields",
    "Conversion rate change vs reference",
    "Funnel-order violations (share of rows)",
    "AUC per step",
)


def _monitored_workspace(root: Path) -> Path:
    """Three days of synthetic logged traffic (two clean, one drifted), one snapshot each."""
    config = SimulationConfig(rows=10_000, days=6, val_days=1, test_days=1, n_users=2_000,
                              n_ads=100, target_rates=(0.2, 0.1, 0.05, 0.03))  # fmt: skip
    traffic = Traffic(config, seed=3)
    tasks = list(simulator_spec().tasks)
    reference = traffic.sample(4_000, 2)
    write_true_probability_reference(root / "reference", reference, tasks)
    drift = DriftConfig(start_day=5, user_shift=0.5, step="approval", rate_factor=0.4)
    for day in (3, 4, 5):
        frame = traffic.sample(3_000, day, drift if day == 5 else None)
        logs, labels = root / f"day{day}" / "logs", root / f"day{day}" / "labels"
        write_log_files(frame, true_probabilities(frame, tasks), tasks, logs, labels)
        start = pd.Timestamp(config.start) + pd.Timedelta(days=day)
        window = Window(start, start + pd.Timedelta(days=1))
        paths = JobPaths(logs, labels, root / "reference", root / f"day{day}" / "out",
                         root / "workspace")  # fmt: skip
        run_job(paths, window)
    return root / "workspace"


def _chromium(*args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "chromium is missing: `make system-deps` installs Debian's chromium"
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--hide-scrollbars", "--virtual-time-budget=15000", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_evidently_ui_serves_the_project_dashboard_to_headless_chromium(tmp_path):
    workspace = _monitored_workspace(tmp_path)
    port = free_port()
    ui = Path(sys.executable).parent / "evidently"
    log = (tmp_path / "ui.log").open("w")
    server = subprocess.Popen(
        [str(ui), "ui", "--workspace", str(workspace), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "DO_NOT_TRACK": "1"},
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        projects = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                response = httpx.get(f"{base}/api/projects", timeout=5)
                if response.status_code == 200:
                    projects = response.json()
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        assert projects, (tmp_path / "ui.log").read_text()[-3000:]
        (project,) = projects
        assert project["name"] == "AITM conversion funnel"
        url = f"{base}/projects/{project['id']}"
        dom = _chromium("--dump-dom", url)
        assert dom.returncode == 0, dom.stderr[-2000:]
        for title in PANELS:
            assert title in dom.stdout, f"panel {title!r} not on the page"
        shot = tmp_path / "dashboard.png"
        done = _chromium("--window-size=1400,2600", f"--screenshot={shot}", url)
        assert done.returncode == 0 and shot.stat().st_size > 20_000, done.stderr[-2000:]
        if os.environ.get(DOCS_ENV):
            shutil.copyfile(shot, os.environ[DOCS_ENV])
    finally:
        server.terminate()
        server.wait(timeout=15)
