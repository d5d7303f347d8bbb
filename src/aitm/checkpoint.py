"""Self-describing model artifacts: weights + config + feature schema + metrics in one folder.

`aitm.inference.Predictor.load(path)` needs nothing else. Weights load with
`weights_only=True`, so an artifact cannot run code. Artifacts are written to a temporary
sibling folder and renamed into place, so a reader never sees a half-written one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from aitm.training import TrainResult

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
