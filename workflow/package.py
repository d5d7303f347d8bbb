"""(e) Package: register the gated model, promote it with its reference window, build a bento."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from workflow.evaluate import DECISION_FILE, EVALUATION_FILE
from workflow.gate import GateDecision
from workflow.params import parse_config, parse_spec

ROOT = Path(__file__).resolve().parents[1]


def default_bentofile() -> str:
    path = ROOT / "serving" / "bentofile.yaml"
    return str(path) if path.is_file() else ""


def package_model(
    model_dir: str,
    decision_dir: str,
    bentoml_home: str,
    *,
    config_yaml: str,
    train_window: tuple[str, str],
    eval_window: tuple[str, str],
    feature_service: str,
    git_revision: str,
    bentofile: str = "",
    reference_dir: str = "",
    dataset_yaml: str = "",
    run: str = "",
) -> dict[str, Any]:
    """Register the model in the BentoML store, promote it (with `reference_dir`, from
    save_reference, as its reference window), and build a bento if a bentofile is given (or
    serving/bentofile.yaml exists). Refuses unless the gate said promote."""
    from monitoring.reference import copy_with_info
    from registry.store import build_bento, promote, register

    decision = GateDecision.from_dict(json.loads((Path(decision_dir) / DECISION_FILE).read_text()))
    if not decision.promote:
        raise RuntimeError(f"the gate rejected this model: {list(decision.reasons)}")
    evaluation = json.loads((Path(decision_dir) / EVALUATION_FILE).read_text())["candidate"]
    spec = parse_spec(dataset_yaml)
    config = parse_config(config_yaml, spec)
    windows = {"train_window": list(train_window), "eval_window": list(eval_window)}
    metadata = {
        "metrics": {k: evaluation[k] for k in ("rows", "auc", "logloss", "violation_rate")},
        "gate": decision.to_dict(), **windows, "feature_service": feature_service,
        "dataset": spec.name, "config": config.model_dump(mode="json"),
        "git_revision": git_revision,
    }  # fmt: skip
    labels = {"feature_service": feature_service, "git_revision": git_revision[:63],
              "model_kind": config.model.kind, "dataset": spec.name}  # fmt: skip
    tag, path = register(
        model_dir, bentoml_home, labels=labels, metadata=_no_none(metadata), name=spec.model_name
    )
    info = {"auc": evaluation["auc"], "eval_window": list(eval_window),
            "feature_service": feature_service, "git_revision": git_revision}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        reference = copy_with_info(reference_dir, Path(tmp), model_tag=tag) if reference_dir \
            else None  # fmt: skip
        pointer = promote(bentoml_home, tag, path, info, spec.model_name, run=run,
                          reference=reference)  # fmt: skip
    bentofile = bentofile or default_bentofile()
    bento = build_bento(bentofile, bentoml_home, tag) if bentofile else None
    return {"model_tag": tag, "model_path": str(path), "pointer": str(pointer), "bento": bento}


def _no_none(value: Any) -> Any:
    """BentoML metadata takes no None: drop such entries (an absent incumbent, ...)."""
    if isinstance(value, dict):
        return {k: _no_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_no_none(v) for v in value if v is not None]
    return value


def git_revision(root: str | Path | None = None) -> str:
    root = root or ROOT
    git = ["git", "-C", str(root)]
    done = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
    if done.returncode != 0:
        return "unknown"
    dirty = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True)
    return done.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
