"""Which model the service loads: AITM_MODEL_TAG, else the promoted pointer, else the store's
only `aitm` model (inside a built bento, which ships exactly one). Failure is loud."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from aitm.checkpoint import ArtifactError, Predictor, verify_artifact
from pipelines.registry import HOME_ENV, MODEL_NAME, promoted


@dataclass(frozen=True)
class LoadedModel:
    tag: str
    predictor: Predictor


def resolve_tag(tag: str = "") -> str:
    """The model tag to serve; raises ArtifactError if none can be found."""
    import bentoml

    if tag and not tag.endswith(":promoted"):
        return tag
    home = os.environ.get(HOME_ENV) or str(Path.home() / "bentoml")
    pointer = promoted(home)
    if pointer is not None:
        return pointer.tag
    models = bentoml.models.list(MODEL_NAME)
    if len(models) == 1:
        return str(models[0].tag)
    raise ArtifactError(
        f"no model to serve: AITM_MODEL_TAG is unset, no promoted pointer under {home}, and "
        f"the model store holds {len(models)} '{MODEL_NAME}' models"
    )


def verified_tag(setting: str = "") -> str:
    """The full tag to serve, its files checked against their manifest (ArtifactError)."""
    import bentoml

    tag = resolve_tag(setting)
    try:
        stored = bentoml.models.get(tag)
    except bentoml.exceptions.NotFound as exc:
        raise ArtifactError(f"model {tag} is not in the BentoML model store") from exc
    verify_artifact(stored.path)
    return str(stored.tag)


def load(tag: str, path: str | Path) -> LoadedModel:
    """Load a stored model folder; ArtifactError if it is missing or corrupted."""
    return LoadedModel(tag=tag, predictor=Predictor.load(path))
