"""Inference: a loaded model artifact (`Predictor`) and batch prediction (`predict_proba`).

Imports neither the training loop nor the simulator, so serving and monitoring load only the
model code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from aitm.catalog import build_model
from aitm.checkpoint import CONFIG, METRICS, SCHEMA, WEIGHTS, ArtifactError, verify_artifact
from aitm.config import Config
from aitm.schema import FeatureSchema


@torch.no_grad()
def predict_proba(
    model: nn.Module, x: np.ndarray | torch.Tensor, batch_size: int = 50_000
) -> np.ndarray:
    """(N, F) encoded fields (int64, or float64 with numeric fields) -> (N, T) end-to-end
    probabilities."""
    was_training = model.training
    model.eval()
    x = torch.as_tensor(x)
    out = [torch.sigmoid(model(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)


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
