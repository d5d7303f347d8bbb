"""Exact AUC, log loss, calibration and the violation rate."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.metrics import roc_auc_score

from aitm.evaluation import evaluate, exact_auc, violation_mask


def test_exact_auc_matches_sklearn_with_many_ties():
    rng = np.random.default_rng(0)
    labels = rng.random(5000) < 0.1
    scores = np.round(rng.random(5000) + labels * 0.3, 2)  # rounding makes ties
    assert exact_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_exact_auc_edge_cases():
    assert exact_auc([0, 1], [0.1, 0.9]) == 1.0
    assert exact_auc([1, 0], [0.1, 0.9]) == 0.0
    assert exact_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert math.isnan(exact_auc([0, 0], [0.1, 0.2]))


def test_violation_mask_flags_rows_where_a_later_step_exceeds_an_earlier_one():
    probs = np.array([[0.5, 0.4, 0.4], [0.5, 0.6, 0.1], [0.3, 0.2, 0.25]])
    assert violation_mask(probs).tolist() == [False, True, True]


def test_evaluate_reports_every_metric_per_task():
    rng = np.random.default_rng(1)
    true_p = np.sort(rng.random((2000, 2)) * 0.5, axis=1)[:, ::-1]
    labels = (rng.random((2000, 2)) < true_p).astype(float)
    labels[:, 1] = labels[:, 1] * labels[:, 0]
    probs = np.clip(true_p + rng.normal(0, 0.05, true_p.shape), 0.01, 0.99)
    result = evaluate(["a", "b"], labels, probs, true_p)
    assert set(result.auc) == {"a", "b"}
    assert result.logloss["a"] == pytest.approx(sk_log_loss(labels[:, 0], probs[:, 0]), rel=1e-6)
    assert result.calibration["b"].observed_rate == pytest.approx(labels[:, 1].mean())
    assert result.violation_rate == pytest.approx(violation_mask(probs).mean())
    assert result.oracle_auc["a"] > 0.5
    assert "oracle_auc" not in evaluate(["a", "b"], labels, probs).to_dict()


def test_evaluate_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="must both be"):
        evaluate(["a", "b"], np.zeros((3, 2)), np.zeros((3, 3)))
