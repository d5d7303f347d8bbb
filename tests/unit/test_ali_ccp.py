"""The raw Ali-CCP converter on small files in the official raw format, written here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aitm.ali_ccp import (
    ALI_CCP_FIELDS,
    OFFICIAL_MIN_COUNT,
    AliCCPFormatError,
    convert,
    main,
    read_common_features,
)
from aitm.config import Config
from aitm.data import load_split, split_paths


def _features(*pairs: tuple[str, int]) -> str:
    return "\x01".join(f"{field}\x02{fid}\x03{1.0}" for field, fid in pairs)


def _write(folder: Path, split: str, common: dict[str, list], samples: list[tuple]) -> None:
    with open(folder / f"common_features_{split}.csv", "w") as out:
        for key, pairs in common.items():
            out.write(f"{key},{len(pairs)},{_features(*pairs)}\n")
    with open(folder / f"sample_skeleton_{split}.csv", "w") as out:
        for i, (click, buy, key, pairs) in enumerate(samples):
            out.write(f"{i},{click},{buy},{key},{len(pairs)},{_features(*pairs)}\n")


@pytest.fixture
def raw(tmp_path) -> Path:
    """Train: 40 samples of three users; test: 6 samples. Field 207 is a per-row tag."""
    folder = tmp_path / "raw"
    folder.mkdir()
    common = {
        "u1": [("101", 500), ("121", 7), ("124", 1)],
        "u2": [("101", 501), ("121", 8)],
        "u3": [("101", 502), ("205", 9999)],  # clashes with the samples' own 205: wins
    }
    samples = []
    for i in range(40):
        user = ("u1", "u2", "u3")[i % 3]
        click = int(i % 4 == 0)
        buy = int(i % 8 == 0)
        pairs = [("205", 100 + i % 2), ("207", 7000 + i), ("508", 1), ("508", 2), ("999", 5)]
        if i % 5 == 0:
            pairs.append(("216", 33))
        samples.append((click, buy, user, pairs))
    samples.append((0, 1, "u1", [("205", 100), ("207", 9000)]))  # purchase without click: dropped
    _write(folder, "train", common, samples)
    test_common = {"t1": [("101", 500)], "t2": [("101", 777)]}
    test_samples = [
        (1, 0, "t1", [("205", 100), ("207", 7000)]),
        (0, 0, "t2", [("205", 555), ("207", 1)]),
        (1, 1, "t1", [("205", 101), ("216", 33)]),
        (0, 1, "t2", [("205", 100)]),  # dropped
        (0, 0, "t1", []),
        (0, 0, "t2", [("205", 101)]),
    ]
    _write(folder, "test", test_common, [(c, b, k, [*p]) for c, b, k, p in test_samples])
    return folder


def _decode(out: Path, split: str) -> pd.DataFrame:
    """A split with field indices turned back into raw ids (0 -> -1) through vocabulary.parquet."""
    frame = pd.concat([pd.read_parquet(p) for p in sorted((out / split).glob("*.parquet"))])
    vocab = pd.read_parquet(out / "vocabulary.parquet")
    for field in ALI_CCP_FIELDS:
        mine = vocab[vocab["field"] == field]
        lookup = dict(zip(mine["index"], mine["raw_id"]))
        frame[field] = [lookup.get(int(i), -1) for i in frame[field]]
    return frame.reset_index(drop=True)


def test_convert_joins_filters_and_encodes_like_the_official_preprocessing(raw, tmp_path):
    out = tmp_path / "out"
    summary = convert(raw, out, min_count=1, chunk_lines=7, val_fraction=0.25, seed=3)
    assert summary["raw_lines"]["train"] == {"read": 41, "dropped_purchase_without_click": 1}
    assert summary["raw_lines"]["test"] == {"read": 6, "dropped_purchase_without_click": 1}
    assert summary["splits"]["train"]["rows"] + summary["splits"]["val"]["rows"] == 40
    assert 3 <= summary["splits"]["val"]["rows"] <= 20

    train = pd.concat([_decode(out, "train"), _decode(out, "val")]).set_index("207").sort_index()
    assert list(train.index) == [7000 + i for i in range(40)]  # the dropped row (9000) is gone
    for i in range(40):
        row = train.loc[7000 + i]
        user = i % 3
        assert row["click"] == int(i % 4 == 0) and row["purchase"] == int(i % 8 == 0)
        assert row["101"] == 500 + user
        assert row["121"] == (7, 8, -1)[user]
        assert row["124"] == (1, -1, -1)[user]
        assert row["205"] == (9999 if user == 2 else 100 + i % 2)  # common features win
        assert row["508"] == 2  # the last feature of a field wins
        assert row["216"] == (33 if i % 5 == 0 else -1)
        assert row["853"] == -1  # never present

    test = _decode(out, "test")
    assert test["click"].tolist() == [1, 0, 1, 0, 0]
    assert test["101"].tolist() == [500, -1, 500, 500, -1]  # 777 is unseen in training: 0
    assert test["205"].tolist() == [100, -1, 101, -1, 101]  # 555 unseen, and a missing field
    written = pd.read_parquet(out / "train")
    assert list(written.columns) == ["click", "purchase", *ALI_CCP_FIELDS]
    assert written["click"].dtype == np.int8 and written["101"].dtype == np.int32
    assert json.loads((out / "summary.json").read_text())["vocabulary_size"]["101"] == 4
    assert not (out / "_raw").exists()


def test_rare_values_share_index_zero_and_chunking_changes_nothing(raw, tmp_path):
    a = convert(raw, tmp_path / "a", min_count=14, chunk_lines=4)
    convert(raw, tmp_path / "b", min_count=14, chunk_lines=1000)
    # u1 has 14 samples (101 = 500 kept), u2 and u3 13 each (rare); 205 = 101 is seen 14 times.
    assert a["vocabulary_size"]["101"] == 2 and a["vocabulary_size"]["205"] == 2
    for split in ("train", "val", "test"):
        left = pd.read_parquet(tmp_path / "a" / split)
        right = pd.read_parquet(tmp_path / "b" / split)
        pd.testing.assert_frame_equal(left, right)
    train = pd.concat([pd.read_parquet(tmp_path / "a" / s) for s in ("train", "val")])
    assert set(train["101"]) == {0, 1} and (train["101"] == 1).sum() == 14
    assert set(train["207"]) == {0}  # every tag is seen once
    assert OFFICIAL_MIN_COUNT == 12  # the official filter keeps counts > 10 of a 0-based counter


def test_converted_folder_is_bring_your_own_data(raw, tmp_path):
    out = tmp_path / "out"
    main(["--raw", str(raw), "--out", str(out), "--min-count", "1", "--chunk-lines", "5"])
    config = Config.from_yaml(Path(__file__).resolve().parents[2] / "benchmarks" / "ali_ccp.yaml")
    parts = split_paths(out)
    assert set(parts) == {"train", "val", "test"}
    frame = load_split(parts["train"], config.data)  # checks labels and funnel order
    assert len(frame) > 0 and set(config.data.fields) <= set(frame.columns)


def test_common_features_keep_only_wanted_fields(tmp_path):
    path = tmp_path / "common_features_train.csv"
    path.write_text(f"k1,2,{_features(('101', 5), ('150_14', 3))}\nk2,1,{_features(('121', 9))}\n")
    table = read_common_features(path)
    assert list(table.columns) == ["101", "121"]
    assert table.loc["k1"].tolist() == [5, -1] and table.loc["k2"].tolist() == [-1, 9]


def test_malformed_lines_and_unknown_common_keys_fail_with_the_line(raw, tmp_path):
    bad = raw / "sample_skeleton_train.csv"
    lines = bad.read_text().splitlines(keepends=True)
    bad.write_text("".join([*lines[:3], "oops,2\n", *lines[3:]]))
    with pytest.raises(AliCCPFormatError, match=r"sample_skeleton_train.csv:4"):
        convert(raw, tmp_path / "x", with_test=False)
    bad.write_text("".join([*lines[:3], f"x,1,0,nobody,1,{_features(('205', 1))}\n"]))
    with pytest.raises(AliCCPFormatError, match="nobody"):
        convert(raw, tmp_path / "y", with_test=False)
