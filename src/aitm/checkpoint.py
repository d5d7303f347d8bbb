"""Self-describing model artifacts: weights + config + feature schema + metrics in one folder.

`Predictor.load(path)` needs nothing else. Weights load with `weights_only=True`, so an
artifact cannot run code. Artifacts are written to a temporary sibling folder and renamed into
place, so a reader never sees a half-written one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from aitm.config import Config
from aitm.model import build_model
from aitm.schema import FeatureSchema
from aitm.training import TrainResult, predict_proba

WEIGHTS = "weights.pt"
CONFIG = "config.yaml"
SCHEMA = "schema.json"
METRICS = "metrics.json"
MANIFEST = "manifest.json"  # sha256 of every other file
REQUIRED = (WEIGHTS, CONFIG, SCHEMA, MANIFEST)


class ArtifactError(RuntimeError):
    """A model folder that is missing, incomplete or corrupted."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_artifact(
    result: TrainResult, out_dir: str | Path, metrics: dict[str, Any] | None = None
) -> Path:
    """Write the artifact atomically; an existing folder at `out_dir` is replaced. A write that
    was killed leaves only a hidden `.<name>.*` temporary folder, removed by the next save."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        torch.save(result.model.state_dict(), tmp / WEIGHTS)
        (tmp / CONFIG).write_text(result.config.to_yaml())
        (tmp / SCHEMA).write_text(result.schema.to_json())
        training = {
            "best_epoch": result.best_epoch,
            "samples_per_second": result.samples_per_second,
            "history": [e.__dict__ for e in result.history],
            "validation": result.validation.to_dict(),
        }
        (tmp / METRICS).write_text(json.dumps({"training": training, **(metrics or {})}, indent=2))
        files = {p.name: _sha256(p) for p in sorted(tmp.iterdir())}
        (tmp / MANIFEST).write_text(json.dumps(files, indent=2))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def verify_artifact(path: str | Path) -> None:
    """Raise ArtifactError unless every file is present and matches the manifest."""
    path = Path(path)
    if not path.is_dir():
        raise ArtifactError(f"{path}: no model folder there")
    missing = [name for name in REQUIRED if not (path / name).is_file()]
    if missing:
        raise ArtifactError(f"{path}: incomplete model artifact, missing {missing}")
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path}/{MANIFEST}: not valid JSON ({exc})") from exc
    for name, digest in manifest.items():
        file = path / name
        if not file.is_file():
            raise ArtifactError(f"{path}: {name} is listed in the manifest but missing")
        if _sha256(file) != digest:
            raise ArtifactError(f"{path}/{name}: checksum mismatch, the file is corrupted")


@dataclass
class Predictor:
    """A loaded model: raw feature rows in, end-to-end probabilities per task out."""

    model: nn.Module
    schema: FeatureSchema
    config: Config
    path: Path | None = None

    @classmethod
    def load(cls, path: str | Path) -> Predictor:
        path = Path(path)
        verify_artifact(path)
        try:
            config = Config.from_yaml(path / CONFIG)
            schema = FeatureSchema.from_json((path / SCHEMA).read_text())
            model = build_model(schema, config.model)
            state = torch.load(path / WEIGHTS, map_location="cpu", weights_only=True)
            model.load_state_dict(state, strict=True)
        except (ValueError, KeyError, RuntimeError, OSError) as exc:
            raise ArtifactError(f"{path}: cannot load the model ({exc})") from exc
        model.eval()
        return cls(model=model, schema=schema, config=config, path=path)

    @property
    def tasks(self) -> tuple[str, ...]:
        return self.schema.tasks

    def predict_encoded(self, x: np.ndarray) -> np.ndarray:
        """(N, F) encoded fields (int64, or float64 with numeric fields) -> (N, T) probabilities."""
        return predict_proba(self.model, x, self.config.train.eval_batch_size)

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Raw field values -> one probability column per task, in funnel order."""
        probs = self.predict_encoded(self.schema.encode(frame))
        return pd.DataFrame(probs, columns=list(self.tasks), index=frame.index)

    def metrics(self) -> dict[str, Any]:
        if self.path is None or not (self.path / METRICS).is_file():
            return {}
        return json.loads((self.path / METRICS).read_text())
