"""A trained AITM beats per-task logistic regression on every task and keeps the funnel order."""

from __future__ import annotations

import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder

from aitm.config import Config, TrainConfig
from aitm.data import encode, read_table
from aitm.evaluation import evaluate, exact_auc
from aitm.inference import predict_proba
from aitm.simulator import SimulationConfig, simulate
from aitm.training import selection_score, train

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]  # trains on 600k rows, 8 epochs


@pytest.fixture(scope="module")
def funnel(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim-600k")
    simulate(SimulationConfig(rows=600_000, days=15, val_days=2, test_days=2, n_users=110_000), out)
    return {s: read_table(out / s) for s in ("train", "val", "test")}


@pytest.fixture(scope="module")
def trained(funnel):
    config = Config(train=TrainConfig(max_epochs=8, progress=False))
    return train(config, funnel["train"], funnel["val"])


def test_aitm_beats_per_task_logistic_regression_on_every_task(funnel, trained):
    schema = trained.schema
    train_data, test_data = encode(funnel["train"], schema), encode(funnel["test"], schema)
    aitm_probs = predict_proba(trained.model, test_data.x)
    onehot = OneHotEncoder(handle_unknown="ignore").fit(train_data.x)
    x_train, x_test = onehot.transform(train_data.x), onehot.transform(test_data.x)
    for t, task in enumerate(schema.tasks):
        lr = LogisticRegression(C=0.1, max_iter=300).fit(x_train, train_data.y[:, t])
        lr_auc = exact_auc(test_data.y[:, t], lr.predict_proba(x_test)[:, 1])
        aitm_auc = exact_auc(test_data.y[:, t], aitm_probs[:, t])
        assert aitm_auc > lr_auc, f"{task}: AITM {aitm_auc:.4f} <= logistic regression {lr_auc:.4f}"


def test_violation_rate_under_one_percent_and_calibrated(funnel, trained):
    test_data = encode(funnel["test"], trained.schema)
    result = evaluate(
        trained.schema.tasks,
        test_data.y,
        predict_proba(trained.model, test_data.x),
        test_data.true_p,
    )
    assert result.violation_rate < 0.01
    for task, cal in result.calibration.items():
        assert 0.5 < cal.ratio < 1.5, f"{task} mean prediction off by {cal.ratio:.2f}x"
    for task in trained.schema.tasks:
        assert result.auc[task] < result.oracle_auc[task]  # the oracle is out of reach


def test_best_weights_are_restored(trained):
    history = trained.history
    bound = trained.config.train.max_violation_rate
    best = max(history, key=lambda e: selection_score(e.val_auc, e.val_violation_rate, bound))
    assert trained.best_epoch == best.epoch
    assert trained.validation.auc == pytest.approx(best.val_auc)
