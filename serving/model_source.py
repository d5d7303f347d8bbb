"""Which model the service loads: AITM_MODEL_TAG, else the promoted pointer, else the store's
only `aitm` model (inside a built bento, which ships exactly one). Failure is loud."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from aitm.checkpoint import SCHEMA, ArtifactError, Predictor, verify_artifact
from aitm.schema import FeatureSchema
from pipelines.registry import HOME_ENV, MODEL_NAME, promoted


@dataclass(frozen=True)
class LoadedModel:
    tag: str
    predictor: Predictor


def resolve_tag(tag: str = "", name: str = MODEL_NAME) -> str:
    """The model tag to serve; raises ArtifactError if none can be found. `name` is the model
    name whose promoted pointer counts (a tag "<name>:promoted" names its own)."""
    import bentoml

    if tag and not tag.endswith(":promoted"):
        return tag
    if tag:
        name = tag.removesuffix(":promoted")
    home = os.environ.get(HOME_ENV) or str(Path.home() / "bentoml")
    pointer = promoted(home, name)
    if pointer is not None:
        return pointer.tag
    models = bentoml.models.list(name)
    if len(models) == 1:
        return str(models[0].tag)
    raise ArtifactError(
        f"no model to serve: AITM_MODEL_TAG is unset, no promoted pointer under {home}, and "
        f"the model store holds {len(models)} '{name}' models"
    )


def verified_tag(setting: str = "", name: str = MODEL_NAME) -> str:
    """The full tag to serve, its files checked against their manifest (ArtifactError)."""
    import bentoml

    tag = resolve_tag(setting, name)
    try:
        stored = bentoml.models.get(tag)
    except bentoml.exceptions.NotFound as exc:
        raise ArtifactError(f"model {tag} is not in the BentoML model store") from exc
    verify_artifact(stored.path)
    return str(stored.tag)


def stored_schema(tag: str) -> FeatureSchema:
    """The feature schema of a stored model (the weights are not read)."""
    import bentoml

    return FeatureSchema.from_json(Path(bentoml.models.get(tag).path_of(SCHEMA)).read_text())


def load(tag: str, path: str | Path) -> LoadedModel:
    """Load a stored model folder; ArtifactError if it is missing or corrupted."""
    return LoadedModel(tag=tag, predictor=Predictor.load(path))
