"""Argument handling of `python -m pipelines submit` (the KFP API itself is not reachable here)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pipelines.cli import Submission, app, parse_params


def test_params_are_key_value_with_yaml_scalars():
    params = parse_params(["nproc_per_node=2", "train_start=2026-01-01T00:00:00Z",
                           "feature_repo=/repo", "config_yaml=", "oracle_data=a=b"])  # fmt: skip
    assert params["nproc_per_node"] == 2
    assert params["feature_repo"] == "/repo"
    assert params["config_yaml"] == ""
    assert params["oracle_data"] == "a=b"  # only the first '=' splits
    assert params["train_start"] == "2026-01-01T00:00:00Z"  # not a YAML datetime


def test_a_param_without_equals_is_rejected():
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_params(["nproc_per_node"])


def test_a_one_off_run_names_package_arguments_and_experiment():
    sub = Submission("p.yaml", {"a": 1}, "aitm", "nightly")
    assert not sub.recurring
    assert sub.run_kwargs() == {"pipeline_file": "p.yaml", "arguments": {"a": 1},
                                "run_name": "nightly", "experiment_name": "aitm"}  # fmt: skip


def test_a_five_field_cron_gets_kfp_seconds_field_and_no_catchup():
    sub = Submission("p.yaml", {"a": 1}, "aitm", "nightly", cron="0 3 * * *")
    kwargs = sub.recurring_kwargs("exp-1")
    assert sub.recurring
    assert kwargs["cron_expression"] == "0 0 3 * * *"
    assert kwargs["experiment_id"] == "exp-1" and kwargs["job_name"] == "nightly"
    assert kwargs["pipeline_package_path"] == "p.yaml" and kwargs["params"] == {"a": 1}
    assert kwargs["max_concurrency"] == 1 and kwargs["no_catchup"] is True


def test_a_six_field_cron_is_kept():
    sub = Submission("p.yaml", {}, "aitm", "n", cron="30 0 3 * * 1")
    assert sub.recurring_kwargs("e")["cron_expression"] == "30 0 3 * * 1"


def test_a_malformed_cron_is_rejected():
    with pytest.raises(ValueError, match="cron"):
        Submission("p.yaml", {}, "aitm", "n", cron="daily")


def test_the_cli_rejects_bad_arguments_before_contacting_the_host():
    result = CliRunner().invoke(
        app, ["submit", "--host", "http://127.0.0.1:9", "--package", "p.yaml", "--param", "x"]
    )
    assert result.exit_code == 2
    assert "KEY=VALUE" in result.output
