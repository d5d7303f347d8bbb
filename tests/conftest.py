"""Shared fixtures: small simulated funnels, made once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from aitm.simulator import SimulationConfig, simulate

REPO_ROOT = Path(__file__).resolve().parents[1]
ALI_CCP_DIR = REPO_ROOT.parent / "shared" / "data" / "ali-ccp"


@pytest.fixture(scope="session")
def small_sim(tmp_path_factory) -> Path:
    """60k impressions over 10 days (train 8 days, val 1, test 1), a small world, seed 0."""
    out = tmp_path_factory.mktemp("sim-small")
    config = SimulationConfig(
        rows=60_000, days=10, val_days=1, test_days=1, n_users=5_000, n_ads=300, chunk_rows=20_000
    )
    simulate(config, out)
    return out


@pytest.fixture(scope="session")
def ali_ccp_dir() -> Path:
    """The real Ali-CCP sample shipped in ../shared (skips where a checkout lacks it)."""
    if not ALI_CCP_DIR.is_dir():
        pytest.skip(f"shared Ali-CCP sample not found at {ALI_CCP_DIR}")
    return ALI_CCP_DIR
