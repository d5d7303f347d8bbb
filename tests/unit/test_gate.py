"""The promotion gate's decision: floors, per-task floors, tolerance, no incumbent."""

from __future__ import annotations

import math

import pytest

from aitm.config import GateConfig
from workflow.gate import GateDecision, decide

AUC = {"click": 0.70, "application": 0.68, "approval": 0.66, "activation": 0.64}


def test_no_incumbent_promotes_when_every_task_meets_its_floor():
    decision = decide(AUC, GateConfig(default_auc_floor=0.6))
    assert decision.promote
    assert decision.incumbent_auc is None
    assert decision.floors == dict.fromkeys(AUC, 0.6)


def test_one_task_below_the_default_floor_rejects_and_names_it():
    decision = decide(AUC, GateConfig(default_auc_floor=0.65))
    assert not decision.promote
    assert len(decision.reasons) == 1
    assert decision.reasons[0].startswith("activation: AUC 0.6400 below the floor 0.6500")


def test_a_per_task_floor_overrides_the_default():
    gate = GateConfig(default_auc_floor=0.5, auc_floor={"click": 0.71})
    decision = decide(AUC, gate)
    assert not decision.promote
    assert decision.floors["click"] == 0.71 and decision.floors["approval"] == 0.5
    assert [r.split(":")[0] for r in decision.reasons] == ["click"]


def test_a_floor_exactly_met_passes():
    assert decide(AUC, GateConfig(default_auc_floor=0.64)).promote


def test_small_loss_against_the_incumbent_is_tolerated():
    incumbent = {**AUC, "approval": 0.664}  # candidate 0.004 worse, tolerance 0.005
    decision = decide(AUC, GateConfig(default_auc_floor=0.5, max_auc_drop=0.005), incumbent)
    assert decision.promote
    assert decision.incumbent_auc == incumbent


def test_a_larger_loss_on_any_task_rejects_even_if_the_others_improve():
    incumbent = {task: auc - 0.05 for task, auc in AUC.items()}
    incumbent["approval"] = 0.68  # candidate 0.02 worse on this task only
    decision = decide(AUC, GateConfig(default_auc_floor=0.5, max_auc_drop=0.005), incumbent,
                      "aitm:old")  # fmt: skip
    assert not decision.promote
    assert len(decision.reasons) == 1
    assert "approval" in decision.reasons[0] and "incumbent" in decision.reasons[0]
    assert decision.incumbent_tag == "aitm:old"


def test_floor_and_incumbent_failures_are_all_reported():
    incumbent = {task: 0.9 for task in AUC}
    decision = decide(AUC, GateConfig(default_auc_floor=0.69), incumbent)
    assert not decision.promote
    assert len(decision.reasons) == 3 + 4  # three tasks under the floor, four behind


def test_an_unmeasurable_auc_fails_the_gate():
    decision = decide({**AUC, "activation": math.nan}, GateConfig(default_auc_floor=0.5))
    assert not decision.promote
    assert "not measurable" in decision.reasons[0]


def test_a_floor_for_an_unknown_task_is_a_configuration_error():
    with pytest.raises(ValueError, match="purchase"):
        decide(AUC, GateConfig(auc_floor={"purchase": 0.6}))


def test_the_decision_round_trips_through_json_shapes():
    decision = decide(AUC, GateConfig(default_auc_floor=0.5), AUC, "aitm:x")
    assert GateDecision.from_dict(decision.to_dict()) == decision
