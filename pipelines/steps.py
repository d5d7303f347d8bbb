"""What each pipeline step does, as plain functions: the components in components/ call these.

Unit and integration tests call them directly too. Heavy packages (feast, great_expectations,
bentoml, torch) are imported inside the function that needs them.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from aitm.config import Config
from aitm.dataset import DatasetSpec, load_spec
from pipelines.gate import GateDecision, decide

VALIDATION_SUMMARY = "validation.json"
DECISION_FILE = "decision.json"
EVALUATION_FILE = "evaluation.json"


class ValidationFailedError(RuntimeError):
    """The fetched data failed the Great Expectations suite: the pipeline stops here."""


def parse_spec(dataset_yaml: str) -> DatasetSpec:
    """The pipeline's dataset parameter (the spec's YAML text; empty means the default)."""
    return DatasetSpec.from_text(dataset_yaml) if dataset_yaml.strip() else load_spec()


def parse_config(config_yaml: str, spec: DatasetSpec | None = None) -> Config:
    """The pipeline's config parameter (YAML text; empty means every default). With a dataset
    spec, the data section and the gate's floors (where the spec sets them) come from it."""
    raw = yaml.safe_load(config_yaml) if config_yaml.strip() else {}
    if not isinstance(raw, dict):
        raise ValueError(f"config_yaml must hold a mapping, got {type(raw).__name__}")
    config = Config.model_validate(raw)
    if spec is None:
        return config
    floors = spec.floors
    update: dict[str, Any] = {"auc_floor": {**config.gate.auc_floor, **floors.auc_floor}}
    if floors.default_auc_floor is not None:
        update["default_auc_floor"] = floors.default_auc_floor
    gate = config.gate.model_copy(update=update)
    return config.with_dataset(spec).model_copy(update={"gate": gate})


def feature_service_of(dataset_yaml: str, override: str = "") -> str:
    """The feature service a run fetches by: the pipeline parameter if set, else the spec's."""
    return override or parse_spec(dataset_yaml).feature_service


# -- (a) fetch ------------------------------------------------------------------------------


def _write(frame: pd.DataFrame, out: str) -> int:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    return len(frame)


def stratified_split(
    frame: pd.DataFrame, tasks: list[str], fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded random split (for tables without time), stratified by funnel depth (how many
    steps a row converted), so each step's few positives fall on both sides when there are
    at least two of them."""
    import numpy as np

    depth = frame[tasks].to_numpy().sum(axis=1)
    rng = np.random.default_rng(seed)
    held = np.zeros(len(frame), dtype=bool)
    for level in np.unique(depth):
        rows = rng.permutation(np.flatnonzero(depth == level))
        n = int(round(len(rows) * fraction))
        if len(rows) >= 2:
            n = min(max(n, 1), len(rows) - 1)
        held[rows[:n]] = True
    return frame[~held], frame[held]


def fetch_windows(
    repo: str,
    train_window: tuple[str, str],
    eval_window: tuple[str, str],
    train_out: str,
    eval_out: str,
    service: str,
    dataset_yaml: str = "",
) -> dict[str, int]:
    """Both windows with one store (one Feast import); raises if any impression lacks features.

    A spec without a timestamp has one snapshot time: every impression is fetched and the
    held-out part is a seeded split (`stratified_split`), the windows are not used."""
    from features.retrieval import training_frame
    from features.store import open_store

    spec = parse_spec(dataset_yaml)
    store = open_store(repo)
    if spec.timestamp is None:
        from aitm.dataset import SNAPSHOT_TIME

        start = pd.Timestamp(SNAPSHOT_TIME)
        frame = training_frame(
            store, repo, start, start + pd.Timedelta(days=1), spec=spec, service=service
        ).frame
        train, held = stratified_split(frame, spec.tasks, spec.eval_fraction, spec.seed)
        return {"train": _write(train, train_out), "eval": _write(held, eval_out)}
    if pd.Timestamp(train_window[1]) > pd.Timestamp(eval_window[0]):
        raise ValueError(
            f"the evaluation window {eval_window} must start at or after the end of the "
            f"training window {train_window}"
        )
    windows = {"train": (train_window, train_out), "eval": (eval_window, eval_out)}
    return {
        name: _write(training_frame(store, repo, *w, spec=spec, service=service).frame, out)
        for name, (w, out) in windows.items()
    }


# -- (b) validate ---------------------------------------------------------------------------


def _index_page(results: dict[str, Any]) -> str:
    rows = "".join(
        f"<li><a href='{name}/index.html'>{name}</a>: {r.describe()}</li>"
        for name, r in results.items()
    )
    return f"<html><body><h1>AITM data validation</h1><ul>{rows}</ul></body></html>\n"


def validate_windows(
    train_path: str,
    eval_path: str,
    docs_dir: str,
    train_window: tuple[str, str],
    eval_window: tuple[str, str],
    dataset_yaml: str = "",
) -> dict[str, Any]:
    """Great Expectations suite on both windows; the training window is the reference.

    Data docs go to docs_dir/{train,eval}/ with an index.html linking both, and a
    validation.json summary beside them. Raises ValidationFailedError (after writing both) if
    either window fails.
    """
    from features.validation import validate, validation_config

    spec = parse_spec(dataset_yaml)
    config = validation_config(spec)
    train = pd.read_parquet(train_path)
    frames = {"train": (train, train_window), "eval": (pd.read_parquet(eval_path), eval_window)}
    docs = Path(docs_dir)
    docs.mkdir(parents=True, exist_ok=True)
    results = {
        name: validate(
            frame,
            train,
            spec=spec,
            config=config,
            window=window if spec.timestamp else None,
            docs_dir=docs / name,
            raise_on_failure=False,
        )
        for name, (frame, window) in frames.items()
    }
    (docs / "index.html").write_text(_index_page(results))
    summary = {
        "success": all(r.success for r in results.values()),
        "windows": {
            name: {
                "success": r.success,
                "rows": r.rows,
                "evaluated": r.evaluated,
                "failed": [f.describe() for f in r.failed],
            }
            for name, r in results.items()
        },
    }
    (docs / VALIDATION_SUMMARY).write_text(json.dumps(summary, indent=2))
    if not summary["success"]:
        text = "\n".join(r.describe() for r in results.values() if not r.success)
        raise ValidationFailedError(f"data validation failed, the pipeline stops here:\n{text}")
    return summary


# -- (c) train ------------------------------------------------------------------------------


def train_model(
    config_yaml: str,
    train_path: str,
    out_dir: str,
    nproc_per_node: int = 1,
    dataset_yaml: str = "",
) -> dict[str, Any]:
    """Train on the training window (its latest 10% by time for early stopping, or a seeded
    10% without a timestamp) and write the artifact, which carries the dataset spec.
    nproc_per_node > 1 trains data-parallel: `torchrun --standalone -m aitm train`."""
    if nproc_per_node < 1:
        raise ValueError(f"nproc_per_node must be >= 1, got {nproc_per_node}")
    spec = parse_spec(dataset_yaml)
    config = parse_config(config_yaml, spec)
    if nproc_per_node > 1:
        return _train_distributed(config, spec, train_path, out_dir, nproc_per_node)

    from aitm.checkpoint import save_artifact
    from aitm.data import check_frame, time_split
    from aitm.training import train

    frame = pd.read_parquet(train_path)
    check_frame(frame, config.data)
    train_frame, val_frame = time_split(frame, config.data.timestamp, seed=config.train.seed)
    result = train(config, train_frame, val_frame, dataset=spec)
    save_artifact(result, out_dir)
    return {
        "train_rows": len(train_frame),
        "val_rows": len(val_frame),
        "best_epoch": result.best_epoch,
        "val_auc": result.validation.auc,
        "world_size": 1,
    }


def torchrun_command(
    config_file: str, train_path: str, out_dir: str, nproc_per_node: int, dataset_file: str = ""
) -> list[str]:
    dataset = ["--dataset", dataset_file] if dataset_file else []
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={nproc_per_node}",
        "-m", "aitm", "train", "--data", train_path, "--out", out_dir, "--config", config_file,
        *dataset,
    ]  # fmt: skip


def _train_distributed(
    config: Config, spec: DatasetSpec, train_path: str, out_dir: str, nproc_per_node: int
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        config_file = Path(tmp) / "config.yaml"
        config_file.write_text(config.to_yaml())
        dataset_file = Path(tmp) / "dataset.yaml"
        dataset_file.write_text(spec.to_yaml())
        cmd = torchrun_command(
            str(config_file), train_path, out_dir, nproc_per_node, str(dataset_file)
        )
        done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(
            f"torchrun training failed ({done.returncode}):\n{done.stdout[-2000:]}\n"
            f"{done.stderr[-4000:]}"
        )
    start = done.stdout.index("{")
    return json.loads(done.stdout[start:])


# -- (d) evaluate and gate ------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationOutcome:
    candidate: dict[str, Any]  # aitm.evaluation.Evaluation.to_dict()
    incumbent: dict[str, Any] | None
    incumbent_tag: str | None
    decision: GateDecision


def _true_probabilities(frame: pd.DataFrame, oracle_data: str, tasks) -> pd.DataFrame | None:
    """True end-to-end probabilities of the frame's impressions from a simulated folder."""
    import pyarrow.dataset as ds

    from aitm.data import split_paths
    from aitm.simulator import TRUE_PREFIX
    from features.fields import ROW_ID

    parts = split_paths(oracle_data)
    if not parts:
        return None
    columns = [ROW_ID, *(TRUE_PREFIX + t for t in tasks)]
    files = sorted(str(f) for part in parts.values() for f in part.glob("*.parquet"))
    dataset = ds.dataset(files, format="parquet")
    if not set(columns) <= set(dataset.schema.names):
        return None
    ids = frame[ROW_ID].to_numpy()
    table = dataset.to_table(columns=columns, filter=ds.field(ROW_ID).isin(ids)).to_pandas()
    merged = frame[[ROW_ID]].merge(table, on=ROW_ID, how="left")
    if len(merged) != len(frame) or merged.isna().any().any():
        return None  # not the data this store was built from
    return merged[columns[1:]]


def _evaluate_one(model_dir: str | Path, frame: pd.DataFrame, true_p) -> dict[str, Any]:
    from aitm.checkpoint import Predictor
    from aitm.data import encode
    from aitm.evaluation import evaluate

    predictor = Predictor.load(model_dir)
    encoded = encode(frame, predictor.schema)
    probs = predictor.predict_encoded(encoded.x)
    truth = None if true_p is None else true_p.to_numpy()
    return evaluate(predictor.tasks, encoded.y, probs, truth).to_dict()


def evaluate_and_gate(
    model_dir: str,
    eval_path: str,
    config_yaml: str,
    bentoml_home: str,
    oracle_data: str = "",
    dataset_yaml: str = "",
) -> EvaluationOutcome:
    """Evaluate the candidate and the promoted incumbent (if any) on the same held-out window,
    then decide the gate."""
    from aitm.checkpoint import verify_artifact
    from pipelines.registry import promoted

    spec = parse_spec(dataset_yaml)
    config = parse_config(config_yaml, spec)
    verify_artifact(model_dir)
    frame = pd.read_parquet(eval_path)
    true_p = _true_probabilities(frame, oracle_data, config.data.tasks) if oracle_data else None
    candidate = _evaluate_one(model_dir, frame, true_p)
    current = promoted(bentoml_home, spec.model_name) if bentoml_home else None
    incumbent = None if current is None else _evaluate_one(current.path, frame, true_p)
    decision = decide(
        candidate["auc"],
        config.gate,
        None if incumbent is None else incumbent["auc"],
        None if current is None else current.tag,
    )
    return EvaluationOutcome(candidate, incumbent, None if current is None else current.tag,
                             decision)  # fmt: skip


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.4f}"  # fmt: skip


def evaluation_markdown(outcome: EvaluationOutcome, window: tuple[str, str]) -> str:
    cand, inc = outcome.candidate, outcome.incumbent
    oracle = cand.get("oracle_auc")
    head = "| task | candidate AUC | floor |"
    rule = "|---|---|---|"
    if inc is not None:
        head += f" incumbent AUC ({outcome.incumbent_tag}) |"
        rule += "---|"
    if oracle:
        head += " oracle AUC |"
        rule += "---|"
    lines = [
        "# AITM evaluation",
        "",
        f"Held-out window: {window[0]} to {window[1]} ({cand['rows']:,} impressions).",
        "",
        head,
        rule,
    ]
    for task, auc in cand["auc"].items():
        row = f"| {task} | {_fmt(auc)} | {_fmt(outcome.decision.floors.get(task))} |"
        if inc is not None:
            row += f" {_fmt(inc['auc'].get(task))} |"
        if oracle:
            row += f" {_fmt(oracle.get(task))} |"
        lines.append(row)
    verdict = "PROMOTE" if outcome.decision.promote else "REJECT"
    lines += [
        "",
        f"Funnel-order violation rate: {cand['violation_rate']:.4%}.",
        "",
        f"## Gate: {verdict}",
        "",
        *(f"- {reason}" for reason in outcome.decision.reasons),
        "",
    ]
    return "\n".join(lines)


def flat_metrics(outcome: EvaluationOutcome) -> dict[str, float]:
    """Numbers for a kfp Metrics artifact (NaN dropped: kfp wants finite values)."""
    out: dict[str, float] = {"rows": float(outcome.candidate["rows"])}
    for task, auc in outcome.candidate["auc"].items():
        out[f"auc_{task}"] = auc
    for task, loss in outcome.candidate["logloss"].items():
        out[f"logloss_{task}"] = loss
    for task, auc in (outcome.candidate.get("oracle_auc") or {}).items():
        out[f"oracle_auc_{task}"] = auc
    for task, auc in ((outcome.incumbent or {}).get("auc") or {}).items():
        out[f"incumbent_auc_{task}"] = auc
    out["violation_rate"] = outcome.candidate["violation_rate"]
    out["promote"] = float(outcome.decision.promote)
    return {k: float(v) for k, v in out.items() if v is not None and math.isfinite(v)}


def write_outcome(outcome: EvaluationOutcome, decision_dir: str) -> None:
    """decision.json (the gate) and evaluation.json (every measurement) in one folder."""
    out = Path(decision_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / DECISION_FILE).write_text(json.dumps(outcome.decision.to_dict(), indent=2))
    full = {
        "candidate": outcome.candidate,
        "incumbent": outcome.incumbent,
        "incumbent_tag": outcome.incumbent_tag,
    }
    (out / EVALUATION_FILE).write_text(json.dumps(full, indent=2, default=str))


def save_reference(
    model_dir: str, eval_path: str, out_dir: str, eval_window: tuple[str, str]
) -> dict[str, Any]:
    """The monitoring reference: the evaluation window with the candidate's predictions and
    the labels (monitoring/reference.py). Package copies it beside the promoted model."""
    from monitoring.reference import build_reference

    frame = pd.read_parquet(eval_path)
    info = {"eval_window": list(eval_window), "model_dir": str(model_dir)}
    build_reference(model_dir, frame, out_dir, info)
    return {"rows": len(frame)}


# -- (e) package ----------------------------------------------------------------------------


def default_bentofile() -> str:
    path = Path(__file__).resolve().parents[1] / "serving" / "bentofile.yaml"
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
) -> dict[str, Any]:
    """Register the model in the BentoML store, promote it, and build a bento if a bentofile
    is given (or serving/bentofile.yaml exists). Refuses unless the gate said promote.

    `reference_dir` (from save_reference) is copied to promoted/references/<version>/ and named
    in the pointer, so the monitoring job finds the promoted model's reference window."""
    from pipelines.registry import build_bento, promote, register

    decision = GateDecision.from_dict(json.loads((Path(decision_dir) / DECISION_FILE).read_text()))
    if not decision.promote:
        raise RuntimeError(f"the gate rejected this model: {list(decision.reasons)}")
    evaluation = json.loads((Path(decision_dir) / EVALUATION_FILE).read_text())["candidate"]
    spec = parse_spec(dataset_yaml)
    config = parse_config(config_yaml, spec)
    metadata = {
        "metrics": {k: evaluation[k] for k in ("rows", "auc", "logloss", "violation_rate")},
        "gate": decision.to_dict(),
        "train_window": list(train_window),
        "eval_window": list(eval_window),
        "feature_service": feature_service,
        "dataset": spec.name,
        "config": config.model_dump(mode="json"),
        "git_revision": git_revision,
    }
    labels = {
        "feature_service": feature_service,
        "git_revision": git_revision[:63],
        "model_kind": config.model.kind,
        "dataset": spec.name,
    }
    tag, path = register(
        model_dir, bentoml_home, labels=labels, metadata=_no_none(metadata), name=spec.model_name
    )
    info = {
        "auc": evaluation["auc"],
        "eval_window": list(eval_window),
        "feature_service": feature_service,
        "git_revision": git_revision,
    }
    if reference_dir:
        import json as _json

        from monitoring.reference import INFO, POINTER_KEY, store_reference

        stored = store_reference(reference_dir, bentoml_home, tag.split(":")[-1])
        ref_info = Path(bentoml_home) / stored / INFO
        ref_info.write_text(_json.dumps({**_json.loads(ref_info.read_text()), "model_tag": tag},
                                        indent=2))  # fmt: skip
        info[POINTER_KEY] = stored
    pointer = promote(bentoml_home, tag, path, info, name=spec.model_name)
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
    root = root or Path(__file__).resolve().parents[1]
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        return "unknown"
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True
    ).stdout.strip()
    return done.stdout.strip() + ("-dirty" if dirty else "")


def environment_for_tasks(root: str | Path | None = None) -> dict[str, str]:
    """PYTHONPATH for local task subprocesses: the project root and src/ importable."""
    root = Path(root or Path(__file__).resolve().parents[1])
    paths = [str(root), str(root / "src"), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}
