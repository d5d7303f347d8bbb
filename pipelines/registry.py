"""The model registry: the BentoML model store plus a pointer to the promoted model.

BentoML has no mutable "stage" on a stored model (labels are fixed at creation), so promotion
is a small JSON pointer written atomically next to the store:

    $BENTOML_HOME/promoted/aitm.json
    {"tag": "aitm:<version>", "path": "models/aitm/<version>", "promoted_at": "...", ...}

`path` is relative to BENTOML_HOME. The serving layer loads "the promoted model" by reading
the pointer and calling `bentoml.models.get(tag)`; every promotion is also appended to
`promoted/aitm.history.jsonl`. A model is registered (copied into the store and checked
against its manifest) before the pointer moves, so the pointer never names a half-written
model, and a failed run leaves the previous pointer untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aitm.checkpoint import ArtifactError, verify_artifact

MODEL_NAME = "aitm"
POINTER_DIR = "promoted"
HOME_ENV = "BENTOML_HOME"
MODEL_TAG_ENV = "AITM_MODEL_TAG"  # set for `bentoml build`: the tag the bento should ship


@dataclass(frozen=True)
class Promoted:
    tag: str
    path: Path  # absolute path of the model folder in the store
    info: dict[str, Any]


def pointer_path(home: str | Path, name: str = MODEL_NAME) -> Path:
    return Path(home) / POINTER_DIR / f"{name}.json"


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
    return Promoted(tag=info["tag"], path=path, info=info)


def _bentoml(home: str | Path):
    """bentoml, imported with its store at `home` (the store location is fixed at import)."""
    home = str(Path(home).resolve())
    os.environ[HOME_ENV] = home
    import bentoml
    from bentoml._internal.configuration.containers import BentoMLContainer

    actual = str(Path(BentoMLContainer.bentoml_home.get()).resolve())
    if actual != home:
        raise RuntimeError(f"bentoml was imported with BENTOML_HOME={actual}, not {home}")
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
    bentoml = _bentoml(home)
    with bentoml.models.create(name=name, labels=labels, metadata=metadata) as model:
        shutil.copytree(model_dir, model.path, dirs_exist_ok=True)
    stored = Path(bentoml.models.get(model.tag).path)
    verify_artifact(stored)
    return str(model.tag), stored


def promote(
    home: str | Path, tag: str, path: str | Path, info: dict[str, Any], name: str = MODEL_NAME
) -> Path:
    """Point the promoted pointer of model `name` at a registered model (atomic replace)."""
    home = Path(home).resolve()
    path = Path(path).resolve()
    try:
        verify_artifact(path)
    except ArtifactError as exc:
        raise ArtifactError(f"refusing to promote {tag}: {exc}") from exc
    record = {
        "tag": tag,
        "path": str(path.relative_to(home)),
        "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **info,
    }
    pointer = pointer_path(home, name)
    pointer.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".aitm.", dir=pointer.parent)
    with os.fdopen(fd, "w") as handle:
        json.dump(record, handle, indent=2, default=str)
    os.replace(tmp, pointer)
    with (pointer.parent / f"{name}.history.jsonl").open("a") as history:
        history.write(json.dumps(record, default=str) + "\n")
    return pointer


def build_bento(bentofile: str | Path, home: str | Path, model_tag: str) -> str:
    """`bentoml build` offline (the bentofile should say `python: {lock_packages: false}`).

    Runs as a subprocess with BENTOML_HOME set and AITM_MODEL_TAG naming the model the bento
    should ship; returns the bento's tag.
    """
    bentofile = Path(bentofile).resolve()
    env = {**os.environ, HOME_ENV: str(Path(home).resolve()), MODEL_TAG_ENV: model_tag}
    env["BENTOML_DO_NOT_TRACK"] = "True"
    cmd = [sys.executable, "-m", "bentoml", "build", str(bentofile.parent),
           "-f", str(bentofile), "-o", "tag"]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=bentofile.parent)
    if done.returncode != 0:
        raise RuntimeError(
            f"bentoml build failed ({done.returncode}):\n{done.stdout[-2000:]}\n"
            f"{done.stderr[-4000:]}"
        )
    for line in done.stdout.splitlines():
        if line.startswith("__tag__:"):
            return line.removeprefix("__tag__:").strip()
    raise RuntimeError(f"bentoml build printed no tag:\n{done.stdout[-2000:]}")
