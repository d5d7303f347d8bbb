"""(d) Evaluate and gate: the candidate and the promoted incumbent on the same held-out
window, the gate's decision, and the monitoring reference built from the same window."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from workflow.gate import GateDecision, decide
from workflow.params import parse_config, parse_spec

DECISION_FILE = "decision.json"
EVALUATION_FILE = "evaluation.json"


@dataclass(frozen=True)
class EvaluationOutcome:
    candidate: dict[str, Any]  # aitm.evaluation.Evaluation.to_dict()
    incumbent: dict[str, Any] | None
    incumbent_tag: str | None
    decision: GateDecision


def _true_probabilities(frame: pd.DataFrame, oracle_data: str, tasks) -> pd.DataFrame | None:
    """True end-to-end probabilities of the frame's impressions from a simulated folder."""
    import pyarrow.dataset as ds

    from aitm.data import TRUE_PREFIX, split_paths
    from aitm.dataset import ROW_ID

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
    from aitm.data import encode
    from aitm.evaluation import evaluate
    from aitm.inference import Predictor

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
    """Evaluate the candidate and the promoted incumbent (if any), then decide the gate."""
    from aitm.checkpoint import verify_artifact
    from registry.store import promoted

    spec = parse_spec(dataset_yaml)
    config = parse_config(config_yaml, spec)
    verify_artifact(model_dir)
    frame = pd.read_parquet(eval_path)
    true_p = _true_probabilities(frame, oracle_data, config.data.tasks) if oracle_data else None
    candidate = _evaluate_one(model_dir, frame, true_p)
    current = promoted(bentoml_home, spec.model_name) if bentoml_home else None
    incumbent = None if current is None else _evaluate_one(current.path, frame, true_p)
    incumbent_tag = None if current is None else current.tag
    decision = decide(candidate["auc"], config.gate,
                      None if incumbent is None else incumbent["auc"], incumbent_tag)  # fmt: skip
    return EvaluationOutcome(candidate, incumbent, incumbent_tag, decision)


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
    lines = ["# AITM evaluation", "",
             f"Held-out window: {window[0]} to {window[1]} ({cand['rows']:,} impressions).", "",
             head, rule]  # fmt: skip
    for task, auc in cand["auc"].items():
        row = f"| {task} | {_fmt(auc)} | {_fmt(outcome.decision.floors.get(task))} |"
        if inc is not None:
            row += f" {_fmt(inc['auc'].get(task))} |"
        if oracle:
            row += f" {_fmt(oracle.get(task))} |"
        lines.append(row)
    verdict = "PROMOTE" if outcome.decision.promote else "REJECT"
    lines += ["", f"Funnel-order violation rate: {cand['violation_rate']:.4%}.", "",
              f"## Gate: {verdict}", "",
              *(f"- {reason}" for reason in outcome.decision.reasons), ""]  # fmt: skip
    return "\n".join(lines)


def outcome_metrics(outcome: EvaluationOutcome) -> dict[str, float | None]:
    """The outcome's numbers, flat (for a kfp Metrics artifact)."""
    cand, inc = outcome.candidate, outcome.incumbent or {}
    out: dict[str, float | None] = {"rows": cand["rows"]}
    for prefix, values in (("auc", cand["auc"]), ("logloss", cand["logloss"]),
                           ("oracle_auc", cand.get("oracle_auc") or {}),
                           ("incumbent_auc", inc.get("auc") or {})):  # fmt: skip
        out.update({f"{prefix}_{task}": value for task, value in values.items()})
    out["violation_rate"] = cand["violation_rate"]
    out["promote"] = float(outcome.decision.promote)
    return out


def write_outcome(outcome: EvaluationOutcome, decision_dir: str) -> None:
    """decision.json (the gate) and evaluation.json (every measurement) in one folder."""
    out = Path(decision_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / DECISION_FILE).write_text(json.dumps(outcome.decision.to_dict(), indent=2))
    full = {"candidate": outcome.candidate, "incumbent": outcome.incumbent,
            "incumbent_tag": outcome.incumbent_tag}  # fmt: skip
    (out / EVALUATION_FILE).write_text(json.dumps(full, indent=2, default=str))


def save_reference(
    model_dir: str, eval_path: str, out_dir: str, eval_window: tuple[str, str]
) -> dict[str, Any]:
    """The monitoring reference: the evaluation window with the candidate's predictions and
    the labels (monitoring/reference.py). Packaging hands it to the registry."""
    from monitoring.reference import build_reference

    frame = pd.read_parquet(eval_path)
    info = {"eval_window": list(eval_window), "model_dir": str(model_dir)}
    build_reference(model_dir, frame, out_dir, info)
    return {"rows": len(frame)}
