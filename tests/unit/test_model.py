"""Shapes, attention arithmetic, batched towers and the calibrator's gradient."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from aitm.config import ModelConfig
from aitm.dropout import KeepMaskPool, relu_dropout
from aitm.layers import BatchedTowers, FieldEmbedding
from aitm.losses import aitm_loss, behavioral_calibrator
from aitm.model import AITM, AdaptiveInformationTransfer

CARDS = [50, 7, 3, 11]


@pytest.mark.parametrize("num_tasks", [2, 3, 4, 5])
@pytest.mark.parametrize("transfer", ["ait", "none", "probability"])
def test_aitm_returns_logits_of_shape_batch_by_tasks(num_tasks, transfer):
    model = AITM(CARDS, num_tasks, ModelConfig(transfer=transfer))
    x = torch.stack([torch.randint(0, c, (17,)) for c in CARDS], dim=1)
    logits = model(x)
    assert logits.shape == (17, num_tasks)
    assert logits.dtype == torch.float32
    # Logits, not probabilities: an untrained model already has values outside [0, 1].
    model.eval()
    wide = model(x) * 1000
    assert (wide < 0).any() or (wide > 1).any()


def test_field_embedding_uses_one_row_range_per_field():
    emb = FieldEmbedding([3, 4], dim=2)
    with torch.no_grad():
        emb.table.weight.copy_(torch.arange(14, dtype=torch.float32).view(7, 2))
    out = emb(torch.tensor([[0, 0], [2, 3]]))
    # Field 1 rows start after field 0's 3 rows.
    assert out.tolist() == [[0.0, 1.0, 6.0, 7.0], [4.0, 5.0, 12.0, 13.0]]


def test_field_embedding_gradient_sums_every_lookup_of_a_row():
    torch.manual_seed(0)
    emb = FieldEmbedding([3, 4], dim=2)
    x = torch.tensor([[0, 1], [2, 1], [0, 3], [0, 1]])
    upstream = torch.randn(4, 4)
    (emb(x) * upstream).sum().backward()
    expected = torch.zeros(7, 2)
    for row, (a, b) in enumerate(x.tolist()):
        expected[a] += upstream[row, :2]
        expected[3 + b] += upstream[row, 2:]
    assert torch.allclose(emb.table.weight.grad, expected, atol=1e-6)


def test_attention_matches_hand_computation():
    torch.manual_seed(0)
    d = 3
    ait = AdaptiveInformationTransfer(d).requires_grad_(False)
    p, q = torch.randn(2, d), torch.randn(2, d)
    wq, wk, wv = ait.query.weight, ait.key.weight, ait.value.weight
    for row in range(2):
        vectors = [p[row], q[row]]
        scores = [float((wq @ u) @ (wk @ u)) / math.sqrt(d) for u in vectors]
        top = max(scores)
        exp = [math.exp(s - top) for s in scores]
        weights = [e / sum(exp) for e in exp]
        expected = sum(w * (wv @ u) for w, u in zip(weights, vectors))
        got_weights = ait.attention_weights(p, q)[row]
        assert got_weights.tolist() == pytest.approx(weights, abs=1e-6)
        assert ait(p, q)[row].tolist() == pytest.approx(expected.tolist(), abs=1e-6)


def test_attention_has_no_bias_and_separate_projections():
    ait = AdaptiveInformationTransfer(4)
    for layer in (ait.query, ait.key, ait.value):
        assert layer.bias is None
    assert len({id(ait.query.weight), id(ait.key.weight), id(ait.value.weight)}) == 3


def test_batched_towers_equal_separate_linear_stacks():
    torch.manual_seed(0)
    towers = BatchedTowers(3, in_dim=6, dims=(5, 4), dropout=(0.0, 0.0)).eval()
    x = torch.randn(9, 6)
    out = towers(x)
    assert out.shape == (3, 9, 4)
    for t in range(3):
        h = x
        for w, b in zip(towers.weights, towers.biases):
            linear = nn.Linear(w.shape[1], w.shape[2])
            with torch.no_grad():
                linear.weight.copy_(w[t].t())
                linear.bias.copy_(b[t, 0])
            h = torch.relu(linear(h))
        torch.testing.assert_close(out[t], h)


def test_first_tower_layer_is_initialised_like_nn_linear():
    towers = BatchedTowers(4, in_dim=100, dims=(8,), dropout=(0.1,))
    bound = 1 / math.sqrt(100)
    assert towers.weights[0].abs().max() <= bound
    assert towers.weights[0].abs().max() > 0.9 * bound


def test_relu_dropout_rate_scale_and_gradient():
    torch.manual_seed(0)
    x = torch.ones(400, 1000, requires_grad=True)
    out = relu_dropout(x.clone(), 0.3, training=True)
    dropped = (out == 0).float().mean().item()
    assert dropped == pytest.approx(38 / 128, abs=0.005)
    assert out.mean().item() == pytest.approx(1.0, abs=0.01)
    out.sum().backward()
    kept = out.detach() > 0
    torch.testing.assert_close(x.grad[kept], torch.full_like(x.grad[kept], 128 / 90))
    assert torch.all(x.grad[~kept] == 0)


def test_relu_dropout_is_relu_in_eval_and_repeats_under_a_seed():
    x = torch.randn(50, 20)
    assert torch.equal(relu_dropout(x.clone(), 0.3, training=False), torch.relu(x))
    torch.manual_seed(3)
    a = relu_dropout(x.clone(), 0.3, training=True)
    torch.manual_seed(3)
    b = relu_dropout(x.clone(), 0.3, training=True)
    assert torch.equal(a, b)


def test_keep_mask_pool_windows_have_the_dropout_rate_and_differ_per_call():
    torch.manual_seed(0)
    pool = KeepMaskPool(min_size=1 << 16, reuse=2)
    scale = 128 / 90
    windows = [pool.window(4_000, 38, scale) for _ in range(20)]
    values = torch.cat(windows)
    torch.testing.assert_close(values.unique(), torch.tensor([0.0, scale]))
    assert (values == 0).float().mean().item() == pytest.approx(38 / 128, abs=0.01)
    assert not torch.equal(windows[0], windows[1])


def test_keep_mask_pool_is_redrawn_after_serving_reuse_times_its_size():
    pool = KeepMaskPool(min_size=1_000, reuse=2)
    first = pool.window(100, 13, 128 / 115)
    drawn = pool._pools[13]
    assert len(drawn) == 1_000 and first.data_ptr() >= drawn.data_ptr()
    for _ in range(19):  # 2,000 elements served in all
        pool.window(100, 13, 128 / 115)
    assert pool._pools[13] is drawn
    pool.window(100, 13, 128 / 115)
    assert pool._pools[13] is not drawn


def test_models_built_under_one_seed_draw_the_same_masks():
    x = torch.randn(64, 32)
    outs = []
    for _ in range(2):
        torch.manual_seed(5)
        towers = BatchedTowers(2, in_dim=32, dims=(16,), dropout=(0.3,)).train()
        outs.append(towers(x))
    torch.testing.assert_close(outs[0], outs[1])


def test_relu_dropout_negative_inputs_get_no_gradient():
    x = torch.tensor([[-1.0, 2.0] * 500], requires_grad=True)
    relu_dropout(x * 1, 0.1, training=True).sum().backward()
    assert torch.all(x.grad[0, ::2] == 0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tower_dims": (8, 4), "dropout": (0.1,)},
        {"dropout": (0.1, 0.3, 1.0)},
        {"tower_dims": ()},
    ],
)
def test_model_config_rejects_inconsistent_settings(kwargs):
    with pytest.raises(ValueError):
        ModelConfig(**kwargs)


def test_constructors_reject_bad_arguments():
    with pytest.raises(ValueError, match="at least 2 tasks"):
        AITM(CARDS, 1, ModelConfig())
    with pytest.raises(ValueError, match="cardinality"):
        FieldEmbedding([3, 0], 4)
    with pytest.raises(ValueError, match="dropout"):
        BatchedTowers(2, 4, (3,), (0.1, 0.1))


def test_calibrator_is_zero_for_monotone_rows_and_sums_violations():
    probs = torch.tensor([[0.5, 0.4, 0.1], [0.2, 0.3, 0.5]])
    # Row 0 is in order; row 1 violates by 0.1 and 0.2.
    assert behavioral_calibrator(probs).item() == pytest.approx((0.0 + 0.3) / 2)


def test_calibrator_gradient_pushes_a_violating_pair_back_into_order():
    logits = torch.tensor([[-2.0, 1.0]], requires_grad=True)  # p2 > p1: a violation
    labels = torch.zeros(1, 2)
    with_cal = aitm_loss(logits, labels, calibrator_weight=0.6)
    with_cal.total.backward()
    grad_with = logits.grad.clone()
    logits.grad = None
    aitm_loss(logits, labels, calibrator_weight=0.0).total.backward()
    extra = grad_with - logits.grad
    # Gradient descent moves along -grad: the calibrator raises p1 and lowers p2.
    assert extra[0, 0] < 0 and extra[0, 1] > 0
    assert with_cal.calibrator.item() > 0


def test_loss_is_sum_of_per_task_cross_entropy_without_calibrator():
    logits = torch.tensor([[0.3, -1.0], [2.0, 0.5]])
    labels = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    parts = aitm_loss(logits, labels, 0.0)
    bce = nn.functional.binary_cross_entropy_with_logits
    expected = bce(logits[:, 0], labels[:, 0]) + bce(logits[:, 1], labels[:, 1])
    assert parts.total.item() == pytest.approx(expected.item())
    assert parts.cross_entropy.shape == (2,)
