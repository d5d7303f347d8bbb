"""Convert the raw Ali-CCP files to the bring-your-own layout, as the official AITM code does.

Ali-CCP (Alibaba Click and Conversion Prediction, https://tianchi.aliyun.com/dataset/408) ships
four files. Each line of `sample_skeleton_{train,test}.csv` is

    sample_id,click,conversion,common_feature_index,feature_count,feature_list

and each line of `common_features_{train,test}.csv` is

    common_feature_index,feature_count,feature_list

where a feature list joins features with \\x01 and a feature is `field_id\\x02feature_id\\x03value`.
The preprocessing follows the authors' `process_public_dataset.py` (xidongbo/AITM):

- a sample's features are its own plus those of its common-feature row (which win on a clash;
  within one list the last feature of a field wins); the 18 sparse fields below are kept;
- labels are end-to-end: click (impression -> click) and purchase (impression -> purchase);
  the few rows with a purchase but no click are dropped;
- the vocabulary of a field is built on the training file: values seen at least `min_count`
  times (12 reproduces the official filter, which keeps counts > 10 of a counter starting at 0);
  other values and missing fields become index 0, in the test file too;
- 10% of the training rows, drawn at random, are the validation split.

Output: `<out>/{train,val,test}/part-*.parquet` with columns click, purchase (int8) and the 18
fields (int32 indices), plus `<out>/summary.json` and `<out>/vocabulary.parquet` (field, raw_id,
index). It streams: the common-feature table keeps only the 18 fields (int64 ids, about 150
bytes per row: ~0.1 GB for the 730k training rows), samples go through in chunks of
`chunk_lines` lines to a temporary Parquet file of raw ids under `<out>/_raw` (a few GB of disk,
removed at the end), and vocabularies are counted one column at a time, so the ~40 GB of raw
files need a few GB of memory. Parsing is pure Python, about 25 µs a sample line on a 2-core
VM: expect 30 to 60 minutes for the training and test files together (one core).

Reproducing the published comparison (AITM about 0.62 click AUC and 0.65 purchase AUC on the
full data) with the files downloaded and unpacked into RAW:

    python -m aitm.ali_ccp --raw RAW --out data/ali-ccp-aitm
    python -m benchmarks.compare --data data/ali-ccp-aitm --config benchmarks/ali_ccp.yaml \\
        --seeds 3 --out artifacts/compare-ali-ccp

`benchmarks/ali_ccp.yaml` names the 18 fields and the two tasks with `min_count: 1` (rare values
are already 0) and keeps the paper's settings (embedding 5, towers 128-64-32, batch 2000,
learning rate 1e-3).
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ALI_CCP_FIELDS: tuple[str, ...] = (
    "101", "121", "122", "124", "125", "126", "127", "128", "129",
    "205", "206", "207", "216", "508", "509", "702", "853", "301",
)  # fmt: skip
ALI_CCP_TASKS: tuple[str, ...] = ("click", "purchase")
OFFICIAL_MIN_COUNT = 12
MISSING = -1  # a raw field absent from a sample (ids are non-negative)


class AliCCPFormatError(ValueError):
    """A raw line that does not follow the Ali-CCP format; the message names file and line."""


@dataclass(frozen=True)
class RawFiles:
    skeleton: Path
    common: Path

    @classmethod
    def in_folder(cls, folder: str | Path, split: str) -> RawFiles:
        folder = Path(folder)
        files = cls(
            folder / f"sample_skeleton_{split}.csv", folder / f"common_features_{split}.csv"
        )
        for path in (files.skeleton, files.common):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: missing (expected the raw Ali-CCP files)")
        return files


def parse_feature_list(
    text: str, column: dict[str, int], out: np.ndarray, where: str = "feature list"
) -> None:
    """Write the feature ids of the wanted fields of one feature list into `out` (F,) int64.

    `column` maps a field id to its position in `out`; the last feature of a field wins.
    """
    for feature in text.split("\x01"):
        field, sep, rest = feature.partition("\x02")
        j = column.get(field)
        if j is None:
            continue
        feature_id = rest.partition("\x03")[0]
        if not sep or not feature_id.isdigit():
            raise AliCCPFormatError(f"{where}: bad feature {feature!r}")
        out[j] = int(feature_id)


def _chunks(path: Path, chunk_lines: int) -> Iterator[tuple[int, list[str]]]:
    """(number of the first line, lines) of a text file, `chunk_lines` at a time."""
    with open(path, encoding="utf-8", newline="\n") as handle:
        first = 1
        while lines := list(itertools.islice(handle, chunk_lines)):
            yield first, lines
            first += len(lines)


def read_common_features(
    path: str | Path, fields: tuple[str, ...] = ALI_CCP_FIELDS, chunk_lines: int = 200_000
) -> pd.DataFrame:
    """The common-feature table: index common_feature_index, a raw-id column per field.

    Fields no common row has are left out; absent values are MISSING.
    """
    path = Path(path)
    column = {f: j for j, f in enumerate(fields)}
    keys: list[str] = []
    blocks: list[np.ndarray] = []
    for first, lines in _chunks(path, chunk_lines):
        block = np.full((len(lines), len(fields)), MISSING, dtype=np.int64)
        for i, line in enumerate(lines):
            parts = line.rstrip("\r\n").split(",", 2)
            if len(parts) != 3:
                raise AliCCPFormatError(f"{path}:{first + i}: expected 3 comma-separated parts")
            keys.append(parts[0])
            parse_feature_list(parts[2], column, block[i], f"{path}:{first + i}")
        blocks.append(block)
    values = np.concatenate(blocks) if blocks else np.empty((0, len(fields)), dtype=np.int64)
    table = pd.DataFrame(values, index=pd.Index(keys, name="common_feature_index"), columns=fields)
    if not table.index.is_unique:
        raise AliCCPFormatError(f"{path}: common_feature_index values repeat")
    return table.loc[:, (table != MISSING).any(axis=0)]


def _parse_samples(
    path: Path, first: int, lines: list[str], column: dict[str, int]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """labels (n, 2) int8, own raw features (n, F) int64, common_feature_index per line."""
    labels = np.empty((len(lines), 2), dtype=np.int8)
    feats = np.full((len(lines), len(column)), MISSING, dtype=np.int64)
    keys: list[str] = []
    for i, line in enumerate(lines):
        parts = line.rstrip("\r\n").split(",", 5)
        where = f"{path}:{first + i}"
        if len(parts) != 6 or parts[1] not in ("0", "1") or parts[2] not in ("0", "1"):
            raise AliCCPFormatError(
                f"{where}: expected sample_id,click(0/1),conversion(0/1),common_feature_index,"
                "count,features"
            )
        labels[i] = (parts[1] == "1", parts[2] == "1")
        keys.append(parts[3])
        parse_feature_list(parts[5], column, feats[i], where)
    return labels, feats, keys


def _joined_chunks(
    files: RawFiles, fields: tuple[str, ...], chunk_lines: int, counts: dict[str, int]
) -> Iterator[pd.DataFrame]:
    """Samples joined with their common features, purchase-without-click rows dropped."""
    common = read_common_features(files.common, fields, chunk_lines)
    common_columns = [fields.index(f) for f in common.columns]
    common_values = common.to_numpy()
    column = {f: j for j, f in enumerate(fields)}
    for first, lines in _chunks(files.skeleton, chunk_lines):
        labels, feats, keys = _parse_samples(files.skeleton, first, lines, column)
        rows = common.index.get_indexer(keys)
        if (rows < 0).any():
            missing = sorted({k for k, r in zip(keys, rows) if r < 0})[:5]
            raise AliCCPFormatError(
                f"{files.skeleton}: lines {first}..{first + len(lines) - 1} name common features "
                f"absent from {files.common}, e.g. {missing}"
            )
        shared = common_values[rows]  # (n, fields present in the common table)
        own = feats[:, common_columns]
        feats[:, common_columns] = np.where(shared != MISSING, shared, own)
        keep = ~((labels[:, 0] == 0) & (labels[:, 1] == 1))
        counts["read"] += len(lines)
        counts["dropped_purchase_without_click"] += int((~keep).sum())
        frame = pd.DataFrame(feats[keep], columns=list(fields))
        frame.insert(0, "purchase", labels[keep, 1])
        frame.insert(0, "click", labels[keep, 0])
        yield frame


def _write_raw(chunks: Iterator[pd.DataFrame], path: Path) -> int:
    writer, rows = None, 0
    try:
        for frame in chunks:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
            rows += len(frame)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise AliCCPFormatError(f"{path}: no samples were read")
    return rows


def build_vocabularies(raw: Path, fields: tuple[str, ...], min_count: int) -> dict[str, pd.Index]:
    """Per field, raw ids seen at least `min_count` times, most frequent first (one column at a
    time, so memory holds one column)."""
    vocabularies = {}
    for f in fields:
        values = pq.read_table(raw, columns=[f]).column(f).to_numpy()
        counts = pd.Series(values[values != MISSING]).value_counts()
        kept = counts[counts >= min_count]
        order = np.lexsort((kept.index.to_numpy(), -kept.to_numpy()))
        vocabularies[f] = pd.Index(kept.index.to_numpy()[order], dtype="int64")
    return vocabularies


def write_vocabularies(vocabularies: dict[str, pd.Index], path: Path) -> None:
    """One row per kept value: field, raw_id, index (index 0, the unknown bucket, not listed)."""
    frame = pd.concat(
        [
            pd.DataFrame({"field": f, "raw_id": v.to_numpy(), "index": np.arange(1, len(v) + 1)})
            for f, v in vocabularies.items()
        ],
        ignore_index=True,
    )
    frame.to_parquet(path, index=False)


def _encode_raw(
    raw: Path,
    vocabularies: dict[str, pd.Index],
    destinations: dict[str, Path],
    chunk_rows: int,
    val_fraction: float,
    seed: int,
) -> dict[str, dict[str, int]]:
    """Map raw ids to indices (unknown -> 0) and write parts; with two destinations a random
    `val_fraction` of rows goes to "val"."""
    rng = np.random.default_rng(seed)
    stats = {name: {"rows": 0, "click": 0, "purchase": 0} for name in destinations}
    for folder in destinations.values():
        folder.mkdir(parents=True, exist_ok=True)
    for part, batch in enumerate(pq.ParquetFile(raw).iter_batches(batch_size=chunk_rows)):
        frame = batch.to_pandas()
        out = frame[list(ALI_CCP_TASKS)].astype(np.int8)
        for f, vocabulary in vocabularies.items():
            out[f] = (vocabulary.get_indexer(frame[f].to_numpy()) + 1).astype(np.int32)
        if "val" in destinations:
            to_val = rng.random(len(out)) < val_fraction
            pieces = {"train": out[~to_val], "val": out[to_val]}
        else:
            (name,) = destinations
            pieces = {name: out}
        for name, piece in pieces.items():
            pq.write_table(
                pa.Table.from_pandas(piece, preserve_index=False),
                destinations[name] / f"part-{part:05d}.parquet",
            )
            stats[name]["rows"] += len(piece)
            for task in ALI_CCP_TASKS:
                stats[name][task] += int(piece[task].sum())
    return stats


def convert(
    raw_dir: str | Path,
    out_dir: str | Path,
    *,
    min_count: int = OFFICIAL_MIN_COUNT,
    val_fraction: float = 0.1,
    seed: int = 2020,
    chunk_lines: int = 500_000,
    with_test: bool = True,
) -> dict:
    """Raw Ali-CCP files in `raw_dir` -> `out_dir`/{train,val,test}/ Parquet parts; a summary.

    `with_test=False` converts the training files only (train and val splits).
    """
    if min_count < 1 or not 0.0 < val_fraction < 1.0 or chunk_lines < 1:
        raise ValueError(
            f"need min_count >= 1, 0 < val_fraction < 1, chunk_lines >= 1; got {min_count}, "
            f"{val_fraction}, {chunk_lines}"
        )
    out = Path(out_dir)
    fields = ALI_CCP_FIELDS
    splits = {"train": RawFiles.in_folder(raw_dir, "train")}
    if with_test:
        splits["test"] = RawFiles.in_folder(raw_dir, "test")
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "_raw"
    tmp.mkdir(exist_ok=True)
    counts = {s: {"read": 0, "dropped_purchase_without_click": 0} for s in splits}
    try:
        raw = {}
        for split, files in splits.items():
            print(f"joining {files.skeleton} with {files.common} ...", file=sys.stderr)
            raw[split] = tmp / f"{split}.parquet"
            _write_raw(_joined_chunks(files, fields, chunk_lines, counts[split]), raw[split])
        vocabularies = build_vocabularies(raw["train"], fields, min_count)
        stats = _encode_raw(
            raw["train"],
            vocabularies,
            {"train": out / "train", "val": out / "val"},
            chunk_lines,
            val_fraction,
            seed,
        )
        if with_test:
            stats |= _encode_raw(
                raw["test"], vocabularies, {"test": out / "test"}, chunk_lines, 0.0, seed
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = {
        "fields": list(fields),
        "tasks": list(ALI_CCP_TASKS),
        "min_count": min_count,
        "val_fraction": val_fraction,
        "seed": seed,
        "raw_lines": counts,
        "splits": stats,
        "vocabulary_size": {f: len(v) + 1 for f, v in vocabularies.items()},  # with index 0
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    write_vocabularies(vocabularies, out / "vocabulary.parquet")
    return summary


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m aitm.ali_ccp",
        description="Convert raw Ali-CCP files to train/val/test Parquet (official AITM "
        "preprocessing).",
    )
    parser.add_argument("--raw", type=Path, required=True, help="folder of the four raw CSVs")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--min-count", type=int, default=OFFICIAL_MIN_COUNT)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--chunk-lines", type=int, default=500_000)
    parser.add_argument("--no-test", action="store_true", help="convert the training files only")
    args = parser.parse_args(argv)
    summary = convert(
        args.raw,
        args.out,
        min_count=args.min_count,
        val_fraction=args.val_fraction,
        seed=args.seed,
        chunk_lines=args.chunk_lines,
        with_test=not args.no_test,
    )
    print(json.dumps({k: summary[k] for k in ("raw_lines", "splits")}, indent=2))
    return summary


if __name__ == "__main__":
    main()
