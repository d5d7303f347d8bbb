"""Early stopping's ranking of epochs: the violation bound first, then the validation AUC sum."""

from __future__ import annotations

import math

from aitm.training import selection_score


def test_an_epoch_within_the_violation_bound_beats_a_better_scoring_one_outside_it():
    within = selection_score({"a": 0.70, "b": 0.80}, violation_rate=0.005, max_violation_rate=0.01)
    outside = selection_score({"a": 0.79, "b": 0.90}, violation_rate=0.02, max_violation_rate=0.01)
    assert within > outside


def test_auc_sum_decides_on_the_same_side_of_the_bound():
    low = selection_score({"a": 0.70, "b": 0.80}, violation_rate=0.0, max_violation_rate=0.01)
    high = selection_score({"a": 0.71, "b": 0.80}, violation_rate=0.009, max_violation_rate=0.01)
    assert high > low
    over_low = selection_score({"a": 0.7, "b": 0.8}, violation_rate=0.5, max_violation_rate=0.01)
    over_high = selection_score({"a": 0.8, "b": 0.8}, violation_rate=0.6, max_violation_rate=0.01)
    assert over_high > over_low


def test_a_task_without_auc_does_not_poison_the_sum():
    score = selection_score({"a": 0.7, "b": math.nan}, violation_rate=0.0, max_violation_rate=0.01)
    assert score == (True, 0.7)
