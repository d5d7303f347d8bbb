"""The baselines: shapes, ESMM's funnel order and log-space arithmetic, a few training steps each,
gates that sum to one, and the per-task LightGBM baseline on tiny data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aitm.baselines import ESMM, PLE, MixtureOfExperts, chain_logits, log1mexp
from aitm.catalog import MODELS, build_model
from aitm.config import Config, ModelConfig, TrainConfig
from aitm.data import EncodedData
from aitm.schema import FeatureSchema, FieldSpec
from aitm.training import train_encoded

CARDS = [50, 7, 3, 11]
KINDS = ["mlp", "esmm", "omoe", "mmoe", "ple"]
SMALL = {"tower_dims": (16, 8), "dropout": (0.1, 0.3), "expert_dims": (16, 8), "num_experts": 3}


def _x(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, c, (n,), generator=g) for c in CARDS], dim=1)


def _funnel_labels(n: int, num_tasks: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = np.zeros((n, num_tasks), dtype=np.float32)
    alive = np.ones(n, dtype=bool)
    for t in range(num_tasks):
        alive &= rng.random(n) < (0.3 if t == 0 else 0.5)
        y[:, t] = alive
    return y


@pytest.mark.parametrize("num_tasks", [2, 4])
@pytest.mark.parametrize("kind", KINDS)
def test_baselines_map_indices_to_batch_by_tasks_logits(kind, num_tasks):
    model = MODELS[kind](CARDS, num_tasks, ModelConfig(kind=kind, **SMALL))
    out = model(_x(13))
    assert out.shape == (13, num_tasks)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def _schema() -> FeatureSchema:
    return FeatureSchema(
        fields=tuple(
            FieldSpec(f"f{i}", "int", tuple(range(c - 1)), 5) for i, c in enumerate(CARDS)
        ),
        tasks=("a", "b", "c"),
    )


def test_build_model_dispatches_on_kind():
    expected = {"mlp": "MultiTowerMLP", "esmm": "ESMM", "omoe": "MixtureOfExperts", "ple": "PLE"}
    for kind, name in expected.items():
        assert type(build_model(_schema(), ModelConfig(kind=kind))).__name__ == name


def test_unknown_model_kind_is_refused():
    config = ModelConfig.model_construct(**{**ModelConfig().model_dump(), "kind": "nope"})
    with pytest.raises(ValueError, match="unknown model kind 'nope'"):
        build_model(_schema(), config)


def test_esmm_is_monotone_on_random_inputs_and_weights():
    for seed in range(5):
        torch.manual_seed(seed)
        model = ESMM(CARDS, 4, ModelConfig(kind="esmm", **SMALL))
        with torch.no_grad():  # spread the weights so some steps saturate
            for p in model.parameters():
                p.mul_(10.0)
        model.eval()
        probs = torch.sigmoid(model(_x(5000, seed)))
        assert (probs[:, 1:] <= probs[:, :-1]).all()


def test_esmm_end_to_end_is_the_product_of_conditional_probabilities():
    torch.manual_seed(0)
    model = ESMM(CARDS, 3, ModelConfig(kind="esmm", **SMALL)).eval()
    x = _x(64)
    conditional = torch.sigmoid(model.conditional_logits(x).double())
    expected = conditional.cumprod(dim=1)
    got = torch.sigmoid(model(x).double())
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)


def test_chain_logits_are_stable_far_into_the_tails():
    c = torch.tensor([[40.0, 40.0, -40.0], [-60.0, -60.0, -60.0], [0.0, 0.0, 0.0]])
    logits = chain_logits(c)
    assert torch.isfinite(logits).all()
    # Three fair coins: 1/2, 1/4, 1/8. Deep in the left tail logit ~ log p.
    torch.testing.assert_close(
        torch.sigmoid(logits[2]), torch.tensor([0.5, 0.25, 0.125]), rtol=1e-6, atol=0
    )
    torch.testing.assert_close(logits[1], torch.tensor([-60.0, -120.0, -180.0]))
    assert logits[0, 0] > 30 and logits[0, 2] == pytest.approx(-40.0, abs=1e-3)
    # Gradients exist and are finite everywhere, including the saturated steps.
    c.requires_grad_(True)
    chain_logits(c).sum().backward()
    assert torch.isfinite(c.grad).all()


def test_log1mexp_matches_the_naive_formula_where_that_is_accurate():
    a = torch.tensor([-1e-6, -0.1, -0.6931, -0.7, -5.0], dtype=torch.float64)
    torch.testing.assert_close(log1mexp(a), torch.log(1 - torch.exp(a)), rtol=1e-9, atol=0)
    # Where 1 - exp(a) rounds to 1 or to 0, the naive formula loses everything; this does not.
    tails = log1mexp(torch.tensor([-50.0, -1e-20], dtype=torch.float64))
    torch.testing.assert_close(tails, torch.tensor([-np.exp(-50.0), np.log(1e-20)]).double())


@pytest.mark.parametrize("multi_gate", [False, True])
def test_moe_gates_are_distributions_one_per_task_or_one_shared(multi_gate):
    model = MixtureOfExperts(CARDS, 3, ModelConfig(**SMALL), multi_gate=multi_gate)
    gates = model.gate_weights(_x(9))
    assert gates.shape == ((3 if multi_gate else 1), 9, 3)
    torch.testing.assert_close(gates.sum(-1), torch.ones(gates.shape[:2]))


def test_ple_layers_and_experts_follow_the_config():
    config = ModelConfig(kind="ple", ple_layers=3, task_experts=2, **SMALL)
    model = PLE(CARDS, 4, config)
    assert len(model.layers) == 3
    assert [layer.shared_gate is None for layer in model.layers] == [False, False, True]
    assert model.layers[0].experts.num_towers == 4 * 2 + 3
    # Task t's gate sees its own 2 experts and the 3 shared ones.
    assert model.layers[1].task_selection[1].tolist() == [2, 3, 8, 9, 10]


def test_ple_task_branch_does_not_read_another_tasks_experts():
    torch.manual_seed(0)
    model = PLE(CARDS, 3, ModelConfig(kind="ple", ple_layers=1, **SMALL)).eval()
    x = _x(20)
    before = model(x)
    with torch.no_grad():  # task 0's only expert in the single (top) layer
        model.layers[0].experts.weights[-1][0].add_(1.0)
    after = model(x)
    assert not torch.allclose(before[:, 0], after[:, 0])
    torch.testing.assert_close(before[:, 1:], after[:, 1:])


@pytest.mark.parametrize("kind", KINDS)
def test_each_baseline_trains_with_the_shared_loop(kind):
    n, tasks = 600, ("click", "apply", "approve")
    schema = FeatureSchema(
        fields=tuple(
            FieldSpec(f"f{i}", "int", tuple(range(c - 1)), 4) for i, c in enumerate(CARDS)
        ),
        tasks=tasks,
    )
    x = _x(n).numpy()
    y = _funnel_labels(n, len(tasks))
    config = Config(
        model=ModelConfig(kind=kind, embedding_dim=4, **SMALL),
        train=TrainConfig(batch_size=100, max_epochs=2, patience=5, progress=False),
    )
    result = train_encoded(config, schema, EncodedData(x, y), EncodedData(x[:200], y[:200]))
    assert type(result.model).__name__ != "AITM"
    assert len(result.history) == 2
    assert np.isfinite(result.history[-1].train_loss)
    assert set(result.validation.auc) == set(tasks)
    assert result.model(torch.from_numpy(x[:7])).shape == (7, 3)


# LightGBM per task ------------------------------------------------------------------------


def test_lightgbm_per_task_learns_each_step_and_is_deterministic():
    pytest.importorskip("lightgbm")
    from aitm.evaluation import exact_auc
    from aitm.gbdt import GBDTConfig, fit_per_task

    rng = np.random.default_rng(0)
    n = 3000
    x = np.stack([rng.integers(0, 20, n), rng.integers(0, 5, n), rng.integers(0, 3, n)], axis=1)
    click = rng.random(n) < np.where(x[:, 0] < 5, 0.6, 0.1)
    buy = click & (rng.random(n) < np.where(x[:, 1] == 0, 0.7, 0.1))
    y = np.stack([click, buy], axis=1).astype(np.float32)
    config = GBDTConfig(max_rounds=60, early_stopping_rounds=10, num_threads=1)
    fit = fit_per_task(("click", "buy"), x[:2000], y[:2000], x[2000:2500], y[2000:2500], config)
    probs = fit.predict_proba(x[2500:])
    assert probs.shape == (500, 2)
    assert ((probs > 0) & (probs < 1)).all()
    assert exact_auc(y[2500:, 0], probs[:, 0]) > 0.75
    assert exact_auc(y[2500:, 1], probs[:, 1]) > 0.7
    assert set(fit.best_rounds) == {"click", "buy"} and all(
        1 <= r <= 60 for r in fit.best_rounds.values()
    )
    assert fit.settings["num_leaves"] == 63 and fit.settings["learning_rate"] == 0.05
    again = fit_per_task(("click", "buy"), x[:2000], y[:2000], x[2000:2500], y[2000:2500], config)
    np.testing.assert_array_equal(again.predict_proba(x[2500:]), probs)


def test_lightgbm_task_with_one_training_class_predicts_its_rate():
    pytest.importorskip("lightgbm")
    from aitm.gbdt import GBDTConfig, fit_per_task

    rng = np.random.default_rng(1)
    x = rng.integers(0, 4, (400, 2))
    y = np.stack([rng.random(400) < 0.3, np.zeros(400, dtype=bool)], axis=1).astype(np.float32)
    fit = fit_per_task(("a", "b"), x[:300], y[:300], x[300:], y[300:], GBDTConfig(max_rounds=5))
    probs = fit.predict_proba(x[300:])
    assert (probs[:, 1] == 0.0).all()
    assert fit.best_rounds["b"] == 0
