"""The served model, loaded from the store folder the registry resolved
(registry.store.serving_tag)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aitm.inference import Predictor


@dataclass(frozen=True)
class LoadedModel:
    tag: str
    predictor: Predictor


def load(tag: str, path: str | Path) -> LoadedModel:
    """Load a stored model folder; ArtifactError if it is missing or corrupted."""
    return LoadedModel(tag=tag, predictor=Predictor.load(path))
