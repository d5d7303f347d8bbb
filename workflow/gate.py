"""The promotion gate: a candidate's AUCs against floors and against the incumbent's.

Pure functions on plain dicts (no I/O), so the decision is unit-tested directly and the
pipeline's evaluate step only measures and records.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from aitm.config import GateConfig


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reasons: tuple[str, ...]  # every failed check, or what passed when promoting
    floors: dict[str, float] = field(default_factory=dict)  # task -> floor applied
    candidate_auc: dict[str, float] = field(default_factory=dict)
    incumbent_auc: dict[str, float] | None = None
    incumbent_tag: str | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        out["reasons"] = list(self.reasons)
        return out

    @classmethod
    def from_dict(cls, raw: dict) -> GateDecision:
        return cls(**{**raw, "reasons": tuple(raw["reasons"])})


def floor_for(task: str, gate: GateConfig) -> float:
    return gate.auc_floor.get(task, gate.default_auc_floor)


def decide(
    candidate_auc: dict[str, float],
    gate: GateConfig,
    incumbent_auc: dict[str, float] | None = None,
    incumbent_tag: str | None = None,
) -> GateDecision:
    """Promote only if every task's AUC >= its floor and none is worse than the incumbent's
    (measured on the same window) by more than `gate.max_auc_drop`.

    A task whose AUC cannot be measured (NaN: one class only in the window) fails the gate.
    Floors for tasks the candidate does not predict are an error in the configuration.
    """
    if not candidate_auc:
        raise ValueError("the candidate has no AUC for any task")
    unknown = sorted(set(gate.auc_floor) - set(candidate_auc))
    if unknown:
        raise ValueError(f"gate.auc_floor names tasks the model does not predict: {unknown}")
    failed: list[str] = []
    floors = {task: floor_for(task, gate) for task in candidate_auc}
    for task, auc in candidate_auc.items():
        if auc is None or math.isnan(auc):
            failed.append(f"{task}: AUC not measurable on the evaluation window (one class only)")
        elif auc < floors[task]:
            failed.append(f"{task}: AUC {auc:.4f} below the floor {floors[task]:.4f}")
    if incumbent_auc is not None:
        for task, auc in candidate_auc.items():
            old = incumbent_auc.get(task)
            if old is None or math.isnan(old) or auc is None or math.isnan(auc):
                continue  # the incumbent lacks the task, or the floor check already failed
            if old - auc > gate.max_auc_drop:
                failed.append(
                    f"{task}: AUC {auc:.4f} worse than the incumbent's {old:.4f} by "
                    f"{old - auc:.4f} (> {gate.max_auc_drop:.4f} allowed)"
                )
    if failed:
        reasons = tuple(failed)
    else:
        against = (
            f"no worse than {incumbent_tag or 'the incumbent'} by more than {gate.max_auc_drop}"
            if incumbent_auc is not None
            else "no incumbent to compare"
        )
        reasons = (f"every task's AUC at or above its floor; {against}",)
    return GateDecision(
        promote=not failed,
        reasons=reasons,
        floors=floors,
        candidate_auc=dict(candidate_auc),
        incumbent_auc=None if incumbent_auc is None else dict(incumbent_auc),
        incumbent_tag=incumbent_tag,
    )
