"""Bad tables are refused before training, naming the column and the count of bad rows."""

from __future__ import annotations

import pandas as pd
import pytest

from aitm.config import Config, DataConfig
from aitm.data import DataError, check_frame, load_split
from aitm.training import train

CONFIG = DataConfig(fields=["f", "g"], tasks=["click", "buy"], timestamp=None)


def _good(n: int = 20) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "f": ["a", "b"] * (n // 2),
            "g": [1, 2] * (n // 2),
            "click": [1, 0] * (n // 2),
            "buy": [1, 0] * (n // 2),
        }
    )


def test_a_good_table_passes():
    check_frame(_good(), CONFIG)


def test_empty_table():
    with pytest.raises(DataError, match="empty: 0 rows"):
        check_frame(_good().iloc[:0], CONFIG)


@pytest.mark.parametrize("column", ["g", "buy"])
def test_missing_field_or_label_column(column):
    with pytest.raises(DataError, match=rf"missing columns: \['{column}'\]"):
        check_frame(_good().drop(columns=[column]), CONFIG)


def test_labels_outside_zero_one_are_counted():
    frame = _good()
    frame.loc[[0, 3, 5], "click"] = 2
    with pytest.raises(DataError, match=r"label 'click': 3 rows outside \{0, 1\}"):
        check_frame(frame, CONFIG)


def test_null_labels_are_counted():
    frame = _good().astype({"buy": "float"})
    frame.loc[[1, 2], "buy"] = None
    with pytest.raises(DataError, match="label 'buy': 2 null rows"):
        check_frame(frame, CONFIG)


def test_rows_breaking_the_funnel_order_are_counted():
    frame = _good()
    frame.loc[[1, 3, 7, 9], "buy"] = 1  # bought without a click
    with pytest.raises(DataError, match="label 'buy': 4 rows with buy=1 but click=0"):
        check_frame(frame, CONFIG)


def test_bad_data_stops_before_training(tmp_path):
    frame = _good()
    frame.loc[0, "click"] = 0  # row 0 has buy=1
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match="funnel order"):
        load_split(path, CONFIG)
    config = Config(data=CONFIG)
    with pytest.raises(ValueError):
        train(config, frame.iloc[:0], frame)
