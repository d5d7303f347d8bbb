"""Which dataset spec the served model speaks: the one in its artifact, checked at start-up.

Request models, the OpenAPI document and the online lookups all take their names from it. An
artifact made before specs travelled with models is read as the default spec, if that spec's
fields are the model's; a deployment that names its spec (`AITM_DATASET`) refuses a model
trained on another one.
"""

from __future__ import annotations

from pathlib import Path

from aitm.checkpoint import SCHEMA
from aitm.dataset import DEFAULT_SPEC, DatasetSpec, SpecError, load_spec, spec_of
from aitm.schema import FeatureSchema


class SpecMismatchError(SpecError):
    """The model and the deployment (or the model's own schema) disagree on the dataset."""


def served_spec(schema: FeatureSchema, tag: str) -> DatasetSpec:
    """The spec carried in the model's schema; for an old artifact without one, the default
    spec, provided its fields are the model's. SpecMismatchError names what differs."""
    spec = spec_of(schema)
    where = f"the dataset spec in model {tag}"
    if spec is None:  # trained before specs travelled: on the simulator, the shipped default
        spec = load_spec(DEFAULT_SPEC)
        where = f"model {tag} carries no dataset spec, and the default one ({spec.name!r})"
    have, want = set(schema.field_names), set(spec.fields)
    if have != want:
        raise SpecMismatchError(
            f"{where} does not match the model's fields: fields only in the model "
            f"{sorted(have - want)}, only in the spec {sorted(want - have)}"
        )
    return spec


def artifact_spec(model_dir: str | Path) -> DatasetSpec:
    """`served_spec` of the model in a model folder (its schema alone is read)."""
    schema = FeatureSchema.from_json((Path(model_dir) / SCHEMA).read_text())
    return served_spec(schema, str(model_dir))


def expected_spec(path: str) -> DatasetSpec | None:
    """The spec a deployment names (`AITM_DATASET`, a path); None when it names none."""
    return load_spec(path) if path else None


def check_expected(spec: DatasetSpec, tag: str, expected: DatasetSpec | None) -> None:
    """SpecMismatchError unless the deployment's spec (None: no expectation) is the one the
    model was trained on, by name and by fingerprint."""
    if expected is None:
        return
    if expected.name != spec.name:
        raise SpecMismatchError(
            f"model {tag} was trained on dataset {spec.name!r} but AITM_DATASET names "
            f"{expected.name!r}"
        )
    if expected.fingerprint != spec.fingerprint:
        raise SpecMismatchError(
            f"model {tag} was trained on dataset {spec.name!r} (fingerprint "
            f"{spec.fingerprint}) but AITM_DATASET names {expected.name!r} with other fields, "
            f"roles or tasks (fingerprint {expected.fingerprint})"
        )
