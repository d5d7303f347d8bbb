"""Great Expectations checks (real GE 1.x): each bad dataset fails the right expectation."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest
from pydantic import ValidationError as ConfigError

from aitm.data import read_table
from aitm.dataset import load_spec
from aitm.schema import build_schema
from features.config import ValidationConfig
from features.validation import ValidationError, build_suite, validate

SPEC = load_spec()  # the default spec: the simulator's names
TASKS, TIMESTAMP = tuple(SPEC.tasks), SPEC.timestamp


def model_fields() -> list[str]:
    return SPEC.fields


WINDOW = (pd.Timestamp("2026-01-09", tz="UTC"), pd.Timestamp("2026-01-10", tz="UTC"))


@pytest.fixture(scope="module")
def reference(small_sim) -> pd.DataFrame:
    return read_table(small_sim / "train")


@pytest.fixture(scope="module")
def clean(small_sim) -> pd.DataFrame:
    """The validation day: new data, same world."""
    return read_table(small_sim / "val")


def test_clean_dataset_passes_and_writes_data_docs(clean, reference, tmp_path):
    result = validate(clean, reference, window=WINDOW, docs_dir=tmp_path / "docs")
    assert result.success and not result.failed
    assert result.evaluated > 60
    assert (tmp_path / "docs" / "index.html").exists()
    assert list((tmp_path / "docs" / "validations").rglob("*.html"))


def _null_keys(frame):
    frame["user_id"] = frame["user_id"].astype("Int64")
    frame.loc[frame.index[:40], "user_id"] = pd.NA
    return frame


def _funnel_violation(frame):
    rows = frame.index[(frame["application"] == 0).to_numpy()][:25]
    frame.loc[rows, "approval"] = 1
    return frame


def _rate_collapse(frame):
    frame["activation"] = 0
    return frame


def _unseen_flood(frame):
    frame["channel"] = frame["channel"].astype(object)
    frame.loc[frame.index[: len(frame) // 5], "channel"] = "short-video-app"
    return frame


def _outside_window(frame):
    frame.loc[frame.index[:10], TIMESTAMP] = pd.Timestamp("2026-03-01", tz="UTC")
    return frame


def _bad_label(frame):
    frame.loc[frame.index[:3], "click"] = 2
    return frame


def _hour_out_of_range(frame):
    frame.loc[frame.index[:5], "hour"] = 24
    return frame


CASES: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], str, str | None]] = {
    "null keys": (_null_keys, "expect_column_values_to_not_be_null", "user_id"),
    "missing column": (
        lambda f: f.drop(columns=["credit_band"]),
        "expect_column_to_exist",
        "credit_band",
    ),
    "funnel violated": (
        _funnel_violation,
        "expect_column_pair_values_a_to_be_greater_than_b",
        "application>=approval",
    ),
    "positive rate collapsed": (_rate_collapse, "expect_column_mean_to_be_between", "activation"),
    "unseen categories": (_unseen_flood, "expect_column_values_to_be_in_set", "channel"),
    "empty frame": (lambda f: f.iloc[:0], "expect_table_row_count_to_be_between", None),
    "outside window": (_outside_window, "expect_column_values_to_be_between", TIMESTAMP),
    "label not binary": (_bad_label, "expect_column_values_to_be_in_set", "click"),
    "hour out of range": (_hour_out_of_range, "expect_column_values_to_be_between", "hour"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_dataset_is_rejected_by_the_right_expectation(case, clean, reference):
    corrupt, expectation, column = CASES[case]
    frame = corrupt(clean.copy())
    with pytest.raises(ValidationError) as caught:
        validate(frame, reference, window=WINDOW)
    result = caught.value.result
    assert not result.success
    assert (expectation, column) in {(f.expectation, f.column) for f in result.failed}
    assert expectation in str(caught.value)  # the error lists the failed expectations


def test_single_cause_failures_name_only_that_cause(clean, reference):
    """A clean frame but for one fault fails exactly one expectation, with counts and examples."""
    frame = _funnel_violation(clean.copy())
    result = validate(frame, reference, window=WINDOW, raise_on_failure=False)
    assert len(result.failed) == 1
    (failed,) = result.failed
    assert failed.unexpected_count == 25
    assert len(failed.examples) == ValidationConfig().examples


def test_known_share_is_configurable(clean, reference):
    frame = _unseen_flood(clean.copy())  # 20% unseen channels
    lenient = ValidationConfig(known_share=0.75)
    assert validate(frame, reference, config=lenient, window=WINDOW).success


def test_suite_from_a_feature_schema_uses_its_vocabulary(clean, reference):
    schema = build_schema(reference, list(model_fields()), list(TASKS), min_count=5)
    suite = build_suite(schema, reference)
    in_set = {
        e.column
        for e in suite.expectations
        if e.expectation_type == "expect_column_values_to_be_in_set"
    }
    assert {"city", "channel", "business_id"} <= in_set
    assert not {"user_id", "ad_id", "position", "hour"} & in_set  # ids churn; numbers get ranges
    assert validate(clean, reference, fields=schema, window=WINDOW).success


def test_config_rejects_unknown_keys_and_bad_bounds():
    with pytest.raises(ConfigError):
        ValidationConfig(min_row=10)
    with pytest.raises(ConfigError):
        ValidationConfig(rate_bounds=(1.5, 2.0))
