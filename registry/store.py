"""The model registry: BentoML's model store, the promotion pointer, its history, the promoted
model's reference window, and rollback. Pipelines write through it; serving and monitoring
only read through it.

BentoML labels are fixed when a model is created, so promotion is a JSON pointer beside the
store, replaced atomically; every transition is a line of the history:

    $BENTOML_HOME/models/<name>/<version>/        the model store (bentoml.models)
    $BENTOML_HOME/promoted/<name>.json            the pointer: the history's current record
    $BENTOML_HOME/promoted/<name>.history.jsonl   one record per promote or rollback
    $BENTOML_HOME/promoted/references/<version>/  the reference window of a promoted model

A record says what was promoted (`tag`, `path` relative to the home), when (`promoted_at`),
from which run (`run`), what it replaced (`replaced`: the history id, `replaced_tag`), and how
(`action`: promote or rollback). A model is verified against its manifest before the pointer
moves, so the pointer never names a half-written model and a failed run leaves it as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aitm.checkpoint import SCHEMA, ArtifactError, verify_artifact
from aitm.proc import run_checked
from aitm.schema import FeatureSchema

MODEL_NAME = "aitm"
POINTER_DIR = "promoted"
REFERENCES_DIR = "references"
REFERENCE_KEY = "reference"  # the pointer's key: the reference folder, relative to the home
HOME_ENV = "BENTOML_HOME"
MODEL_TAG_ENV = "AITM_MODEL_TAG"  # set for `bentoml build`: the tag the bento should ship
PROMOTED_SUFFIX = ":promoted"  # a tag "<name>:promoted" names that model's promoted pointer


class RegistryError(RuntimeError):
    """The registry cannot do what was asked (nothing to roll back to, a foreign store, ...)."""


@dataclass(frozen=True)
class Promoted:
    tag: str
    path: Path  # absolute path of the model folder in the store
    info: dict[str, Any]  # the pointer's record
    home: Path

    @property
    def reference(self) -> Path | None:
        """The promoted model's reference folder, or None if it was promoted without one."""
        relative = self.info.get(REFERENCE_KEY)
        return None if relative is None else self.home / relative


def default_home() -> Path:
    """$BENTOML_HOME, else BentoML's own default."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / "bentoml")


def pointer_path(home: str | Path, name: str = MODEL_NAME) -> Path:
    return Path(home) / POINTER_DIR / f"{name}.json"


def history_path(home: str | Path, name: str = MODEL_NAME) -> Path:
    return Path(home) / POINTER_DIR / f"{name}.history.jsonl"


# -- reading ----------------------------------------------------------------------------------


def promoted(home: str | Path, name: str = MODEL_NAME) -> Promoted | None:
    """The promoted model, or None if nothing was ever promoted in this store.

    Raises ArtifactError if the pointer names a model that is missing or corrupted.
    """
    pointer = pointer_path(home, name)
    if not pointer.is_file():
        return None
    info = json.loads(pointer.read_text())
    path = Path(home) / info["path"]
    verify_artifact(path)
    return Promoted(tag=info["tag"], path=path, info=info, home=Path(home))


def pointer_stamp(home: str | Path, name: str = MODEL_NAME) -> tuple[int, int] | None:
    """A cheap fingerprint of the promoted pointer (inode, mtime in ns), None if there is none.

    Every promote and rollback replaces the file (a new inode), so a changed stamp says the
    pointer moved; a watcher stats it each poll and reads `promoted` only when it changes."""
    try:
        stat = pointer_path(home, name).stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def pointer_record(home: str | Path, name: str = MODEL_NAME) -> dict[str, Any] | None:
    """The pointer's record as written (the model it names is not checked: `promoted` does),
    or None if nothing was ever promoted."""
    try:
        return json.loads(pointer_path(home, name).read_text())
    except FileNotFoundError:
        return None


def watched_name(setting: str, name: str) -> str | None:
    """The model name whose pointer a service following promotions watches, given its model
    tag setting (`serving_tag`'s): `name` for an empty setting, the name of "<name>:promoted",
    None for a setting that pins one version (nothing to watch)."""
    if not setting:
        return name
    if setting.endswith(PROMOTED_SUFFIX):
        return setting.removesuffix(PROMOTED_SUFFIX)
    return None


def history(home: str | Path, name: str = MODEL_NAME) -> list[dict[str, Any]]:
    """Every promote and rollback of model `name`, oldest first."""
    path = history_path(home, name)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def promoted_reference(home: str | Path, name: str = MODEL_NAME) -> Path:
    """The reference folder of the model promoted under `name`; FileNotFoundError if none."""
    pointer = pointer_path(home, name)
    if not pointer.is_file():
        raise FileNotFoundError(f"no promoted model under {home} ({pointer} is missing)")
    info = json.loads(pointer.read_text())
    if REFERENCE_KEY not in info:
        raise FileNotFoundError(
            f"the promoted model {info.get('tag')} has no reference window: promote a model "
            "with the training pipeline, or pass --reference"
        )
    return Path(home) / info[REFERENCE_KEY]


def serving_tag(setting: str = "", name: str = MODEL_NAME, home: str | Path | None = None) -> str:
    """The full tag to serve: `setting` if it is a tag, else the promoted pointer of `name` (or
    of "<name>:promoted"), else the store's only `name` model (a built bento ships exactly one).
    Its files are checked against their manifest; ArtifactError if none can be found."""
    import bentoml

    if setting.endswith(PROMOTED_SUFFIX):
        name, setting = setting.removesuffix(PROMOTED_SUFFIX), ""
    home = Path(home) if home is not None else default_home()
    if not setting:
        pointer = promoted(home, name)
        models = [] if pointer is not None else bentoml.models.list(name)
        if pointer is None and len(models) != 1:
            raise ArtifactError(
                f"no model to serve: AITM_MODEL_TAG is unset, no promoted pointer under {home}, "
                f"and the model store holds {len(models)} '{name}' models"
            )
        setting = pointer.tag if pointer is not None else str(models[0].tag)
    try:
        stored = bentoml.models.get(setting)
    except bentoml.exceptions.NotFound as exc:
        raise ArtifactError(f"model {setting} is not in the BentoML model store") from exc
    verify_artifact(stored.path)
    return str(stored.tag)


def stored_path(tag: str) -> Path:
    """The folder of a stored model (bentoml's store, as imported)."""
    import bentoml

    return Path(bentoml.models.get(tag).path)


def stored_schema(tag: str) -> FeatureSchema:
    """The feature schema of a stored model (the weights are not read)."""
    return FeatureSchema.from_json((stored_path(tag) / SCHEMA).read_text())


# -- writing ----------------------------------------------------------------------------------


def _bentoml(home: str | Path):
    """bentoml with its store at `home`: BentoML fixes the store location when first used."""
    os.environ[HOME_ENV] = str(Path(home).resolve())
    import bentoml

    return bentoml


def register(
    model_dir: str | Path,
    home: str | Path,
    *,
    labels: dict[str, str],
    metadata: dict[str, Any],
    name: str = MODEL_NAME,
) -> tuple[str, Path]:
    """Copy a verified artifact folder into the BentoML model store; return (tag, path)."""
    verify_artifact(model_dir)
    home = Path(home).resolve()
    bentoml = _bentoml(home)
    with bentoml.models.create(name=name, labels=labels, metadata=metadata) as model:
        shutil.copytree(model_dir, model.path, dirs_exist_ok=True)
    stored = Path(bentoml.models.get(model.tag).path).resolve()
    if not stored.is_relative_to(home):
        bentoml.models.delete(model.tag)
        raise RegistryError(
            f"bentoml was imported with another store than {home} (the model went to "
            f"{stored}): register in a process that imports bentoml after setting {HOME_ENV}"
        )
    verify_artifact(stored)
    return str(model.tag), stored


def _write_pointer(home: Path, name: str, record: dict[str, Any]) -> Path:
    pointer = pointer_path(home, name)
    pointer.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=pointer.parent)
    with os.fdopen(fd, "w") as handle:
        json.dump(record, handle, indent=2, default=str)
    os.replace(tmp, pointer)
    with history_path(home, name).open("a") as log:
        log.write(json.dumps(record, default=str) + "\n")
    return pointer


def _transition(home: Path, name: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
    """A history record: `body` plus when, what it replaced and its own id."""
    past = history(home, name)
    current = past[-1] if past else None
    return {
        **body,
        "action": action,
        "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "id": len(past),
        "replaced": None if current is None else current["id"],
        "replaced_tag": None if current is None else current["tag"],
    }


def _store_reference(source: str | Path, home: Path, version: str) -> str:
    """Copy a reference folder into the registry; its path relative to the home."""
    relative = Path(POINTER_DIR) / REFERENCES_DIR / version
    target = home / relative
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    return relative.as_posix()


def promote(
    home: str | Path,
    tag: str,
    path: str | Path,
    info: dict[str, Any],
    name: str = MODEL_NAME,
    *,
    run: str = "",
    reference: str | Path | None = None,
) -> Path:
    """Point model `name`'s pointer at a registered model (atomic replace) and log it.

    `reference` (a reference folder, see monitoring.reference) is copied into the registry and
    named in the pointer, so monitoring finds the promoted model's reference window."""
    home = Path(home).resolve()
    path = Path(path).resolve()
    try:
        verify_artifact(path)
    except ArtifactError as exc:
        raise ArtifactError(f"refusing to promote {tag}: {exc}") from exc
    body = {"tag": tag, "path": str(path.relative_to(home)), "run": run, **info}
    if reference is not None:
        body[REFERENCE_KEY] = _store_reference(reference, home, tag.split(":")[-1])
    return _write_pointer(home, name, _transition(home, name, "promote", body))


def rollback(home: str | Path, name: str = MODEL_NAME) -> dict[str, Any]:
    """Point `name` back at the model the current pointer replaced; return the new record.

    Rolling back again goes one further step back (a rollback record replaces what its target
    replaced). RegistryError when there is nothing before the current model."""
    home = Path(home).resolve()
    past = history(home, name)
    if not past:
        raise RegistryError(f"nothing was ever promoted as '{name}' under {home}")
    current = past[-1]
    target_id = current["replaced"] if current["action"] == "promote" else current["back_to"]
    if target_id is None:
        raise RegistryError(f"{current['tag']} is the first model promoted as '{name}'")
    target = past[target_id]
    verify_artifact(home / target["path"])
    transition = {"action", "promoted_at", "id", "replaced", "replaced_tag", "back_to"}
    body = {k: v for k, v in target.items() if k not in transition}
    record = _transition(home, name, "rollback", body)
    record["back_to"] = target["replaced"]  # where the next rollback goes
    _write_pointer(home, name, record)
    return record


def build_context(bentofile: str | Path) -> Path:
    """The folder `bentoml build` runs in for `bentofile`: the project it belongs to (the nearest
    folder above it holding a pyproject.toml: serving/bentofile.yaml includes src/aitm,
    registry/, ...), else the bentofile's own folder."""
    bentofile = Path(bentofile).resolve()
    for folder in bentofile.parents:
        if (folder / "pyproject.toml").is_file():
            return folder
    return bentofile.parent


def build_bento(bentofile: str | Path, home: str | Path, model_tag: str) -> str:
    """`bentoml build` offline (the bentofile says `python: {lock_packages: false}`) in the
    bentofile's build context (`build_context`), in a subprocess with BENTOML_HOME set and
    AITM_MODEL_TAG naming the model the bento ships; returns the bento's tag."""
    bentofile = Path(bentofile).resolve()
    context = build_context(bentofile)
    env = {**os.environ, HOME_ENV: str(Path(home).resolve()), MODEL_TAG_ENV: model_tag,
           "BENTOML_DO_NOT_TRACK": "True"}  # fmt: skip
    cmd = [sys.executable, "-m", "bentoml", "build", str(context),
           "-f", str(bentofile), "-o", "tag"]  # fmt: skip
    done = run_checked(cmd, "bentoml build", env=env, cwd=context)
    for line in done.stdout.splitlines():
        if line.startswith("__tag__:"):
            return line.removeprefix("__tag__:").strip()
    raise RuntimeError(f"bentoml build printed no tag:\n{done.stdout[-2000:]}")
