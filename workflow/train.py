"""(c) Train: the training window in, the self-describing artifact (the spec inside) out."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from aitm.config import Config
from aitm.dataset import DatasetSpec
from aitm.proc import run_checked
from workflow.params import parse_config, parse_spec


def train_model(
    config_yaml: str,
    train_path: str,
    out_dir: str,
    nproc_per_node: int = 1,
    dataset_yaml: str = "",
) -> dict[str, Any]:
    """Train on the training window (its latest 10% by time for early stopping, or a seeded
    10% without a timestamp) and write the artifact. nproc_per_node > 1 trains data-parallel
    (`torchrun --standalone -m aitm train`). Returns the summary the artifact records."""
    if nproc_per_node < 1:
        raise ValueError(f"nproc_per_node must be >= 1, got {nproc_per_node}")
    spec = parse_spec(dataset_yaml)
    config = parse_config(config_yaml, spec)
    if nproc_per_node > 1:
        _train_distributed(config, spec, train_path, out_dir, nproc_per_node)
    else:
        _train_here(config, spec, train_path, out_dir)
    return training_summary(out_dir)


def _train_here(config: Config, spec: DatasetSpec, train_path: str, out_dir: str) -> None:
    from aitm.checkpoint import save_artifact
    from aitm.data import check_frame, time_split
    from aitm.training import train

    frame = pd.read_parquet(train_path)
    check_frame(frame, config.data)
    train_frame, val_frame = time_split(frame, config.data.timestamp, seed=config.train.seed)
    result = train(config, train_frame, val_frame, dataset=spec)
    rows = {"train_rows": len(train_frame), "val_rows": len(val_frame), "world_size": 1}
    save_artifact(result, out_dir, metrics={"data": rows})


def training_summary(model_dir: str | Path) -> dict[str, Any]:
    """What a train step hands on, read from the artifact's metrics file."""
    from aitm.checkpoint import METRICS

    metrics = json.loads((Path(model_dir) / METRICS).read_text())
    training = metrics["training"]
    return {**metrics["data"], "best_epoch": training["best_epoch"],
            "val_auc": training["validation"]["auc"]}  # fmt: skip


def torchrun_command(
    config_file: str, train_path: str, out_dir: str, nproc_per_node: int, dataset_file: str = ""
) -> list[str]:
    dataset = ["--dataset", dataset_file] if dataset_file else []
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={nproc_per_node}",
        "-m", "aitm", "train", "--data", train_path, "--out", out_dir, "--config", config_file,
        *dataset,
    ]  # fmt: skip


def _train_distributed(
    config: Config, spec: DatasetSpec, train_path: str, out_dir: str, nproc_per_node: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config_file = Path(tmp) / "config.yaml"
        config_file.write_text(config.to_yaml())
        dataset_file = Path(tmp) / "dataset.yaml"
        dataset_file.write_text(spec.to_yaml())
        cmd = torchrun_command(
            str(config_file), train_path, out_dir, nproc_per_node, str(dataset_file)
        )
        run_checked(cmd, "torchrun training")
