"""Hostile datasets (real Great Expectations 1.x): each is refused by one named check.

A simulated day is corrupted one way at a time; validation against the training days must fail
exactly the named check built for that corruption (`ValidationResult.failed_checks`), and the
check's name must appear in the error the pipeline prints before it stops.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from aitm.data import read_table
from aitm.dataset import ROW_ID, load_spec
from features.config import ValidationConfig
from features.validation import ValidationError, build_suite, validate

SPEC = load_spec()  # the default spec: the simulator's names
TASKS, TIMESTAMP = tuple(SPEC.tasks), SPEC.timestamp


def model_fields() -> list[str]:
    return SPEC.fields


WINDOW = (pd.Timestamp("2026-01-09", tz="UTC"), pd.Timestamp("2026-01-10", tz="UTC"))
NOW = datetime(2026, 1, 10, 6, tzinfo=UTC)  # the run time: six hours after the window closed
CHECKS = {
    "labels_not_shuffled",
    "no_duplicate_impressions",
    "no_future_timestamps",
    "no_constant_features",
    "no_label_leak",
}


@pytest.fixture(scope="module")
def reference(small_sim) -> pd.DataFrame:
    return read_table(small_sim / "train")


@pytest.fixture(scope="module")
def clean(small_sim) -> pd.DataFrame:
    return read_table(small_sim / "val")


def _shuffled_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """Whole label rows permuted: rates and funnel order intact, any link to features gone."""
    order = np.random.default_rng(7).permutation(len(frame))
    frame[list(TASKS)] = frame[list(TASKS)].to_numpy()[order]
    return frame


def _replayed_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """2% of impressions delivered twice, row id and all."""
    return pd.concat([frame, frame.sample(frac=0.02, random_state=1)], ignore_index=True)


def _replayed_with_new_ids(frame: pd.DataFrame) -> pd.DataFrame:
    """The same user, ad and second logged again under fresh row ids."""
    again = frame.sample(frac=0.02, random_state=2).copy()
    again[ROW_ID] = np.arange(len(again)) + frame[ROW_ID].max() + 1
    return pd.concat([frame, again], ignore_index=True)


def _future_timestamps(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[frame.index[:12], TIMESTAMP] = pd.Timestamp(NOW) + pd.Timedelta(days=2)
    return frame


def _constant_feature(frame: pd.DataFrame) -> pd.DataFrame:
    frame["credit_band"] = frame["credit_band"].mode().iloc[0]
    return frame


def _label_as_device(frame: pd.DataFrame) -> pd.DataFrame:
    """A known device value per click: stays inside the vocabulary, encodes the label."""
    frame["device"] = np.where(frame["click"] == 1, "ios", "android")
    return frame


def _label_as_hour(frame: pd.DataFrame) -> pd.DataFrame:
    """A field equal to a label (0 and 1 are valid hours)."""
    frame["hour"] = frame["application"].astype("int64")
    return frame


CASES: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], str, str, str | None]] = {
    "shuffled labels": (
        _shuffled_labels,
        "labels_not_shuffled",
        "expect_labels_to_depend_on_features",
        None,
    ),
    "duplicated impressions": (
        _replayed_rows,
        "no_duplicate_impressions",
        "expect_column_values_to_be_unique",
        ROW_ID,
    ),
    "duplicated impressions, new ids": (
        _replayed_with_new_ids,
        "no_duplicate_impressions",
        "expect_compound_columns_to_be_unique",
        f"user_id+ad_id+{TIMESTAMP}",
    ),
    "timestamps in the future": (
        _future_timestamps,
        "no_future_timestamps",
        "expect_column_values_to_be_between",
        TIMESTAMP,
    ),
    "constant feature": (
        _constant_feature,
        "no_constant_features",
        "expect_column_unique_value_count_to_be_between",
        "credit_band",
    ),
    "label leaks into device": (
        _label_as_device,
        "no_label_leak",
        "expect_no_feature_to_predict_labels",
        "device",
    ),
    "feature equal to a label": (
        _label_as_hour,
        "no_label_leak",
        "expect_no_feature_to_predict_labels",
        "hour",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_dataset_is_caught_by_its_named_check(case, clean, reference):
    corrupt, check, expectation, column = CASES[case]
    frame = corrupt(clean.copy())
    window = None if check == "no_future_timestamps" else WINDOW  # that check alone, unaided
    with pytest.raises(ValidationError) as caught:
        validate(frame, reference, window=window, now=NOW)
    result = caught.value.result
    assert result.failed_checks == {check}, result.describe()
    assert {f.check for f in result.failed} == {check}, "only the named check fails"
    assert (expectation, column) in {(f.expectation, f.column) for f in result.failed}
    assert f"[{check}] {expectation}" in str(caught.value)  # what the pipeline prints
    if case == "duplicated impressions":  # each copy and its original, counted
        (by_id,) = [f for f in result.failed if f.column == ROW_ID]
        assert by_id.unexpected_count == 2 * round(0.02 * len(clean))


def test_clean_data_raises_no_alarm(clean, reference):
    """A clean day passes every check, the hostile-data ones included: against the training days,
    and against itself as the pipeline validates its training window; so does a clock skew of
    ten minutes, inside the one-hour tolerance for timestamps past the run time."""
    suite = build_suite(list(model_fields()), reference, ValidationConfig(), window=WINDOW)
    built = {(e.meta or {}).get("aitm_check") for e in suite.expectations} - {None}
    assert built == CHECKS
    skewed = clean.copy()
    skewed.loc[skewed.index[:12], TIMESTAMP] = pd.Timestamp(NOW) + pd.Timedelta(minutes=10)
    for frame, ref in [(clean, reference), (skewed, skewed)]:
        result = validate(frame, ref, now=NOW, raise_on_failure=False)
        assert result.success, result.describe()
        assert not result.failed_checks


def test_the_pipeline_stops_before_training_and_names_the_check(clean, tmp_path):
    """The validate step raises, naming the check, and its summary records which window failed."""
    from workflow.validate import VALIDATION_SUMMARY, ValidationFailedError, validate_windows

    train, held_out = tmp_path / "train.parquet", tmp_path / "eval.parquet"
    clean.to_parquet(train)
    _shuffled_labels(clean.copy()).to_parquet(held_out)
    window = tuple(str(t) for t in WINDOW)
    with pytest.raises(ValidationFailedError, match=r"\[labels_not_shuffled\]"):
        validate_windows(str(train), str(held_out), str(tmp_path / "docs.html"), window, window,
                         summary_file=str(tmp_path / VALIDATION_SUMMARY))  # fmt: skip
    summary = json.loads((tmp_path / VALIDATION_SUMMARY).read_text())
    assert "labels_not_shuffled" in (tmp_path / "docs.html").read_text()
    assert summary["windows"]["train"]["success"] and not summary["windows"]["eval"]["success"]
    assert any("[labels_not_shuffled]" in f for f in summary["windows"]["eval"]["failed"])
