"""The AITM ablations remove what they claim to remove.

- transfer="none": task t reads nothing of task t-1 (no path from tower t-1 to logit t);
- transfer="probability": only task t-1's predicted probability, one scalar per row, flows on;
- calibrator_weight=0: the loss is the plain sum of per-task cross-entropies.

Each check has a positive control on the full model, so it can fail.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from aitm.catalog import MODELS
from aitm.config import ModelConfig
from aitm.losses import aitm_loss
from aitm.model import AITM

CARDS = [40, 9, 5, 13]
SMALL = {"tower_dims": (16, 8), "dropout": (0.1, 0.3)}


def _x(n: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.stack([torch.randint(0, c, (n,), generator=g) for c in CARDS], dim=1)


def _model(transfer: str, num_tasks: int = 3) -> AITM:
    torch.manual_seed(0)
    return AITM(CARDS, num_tasks, ModelConfig(transfer=transfer, **SMALL)).eval()


def _perturb_tower(model: AITM, t: int) -> None:
    with torch.no_grad():
        for w, b in zip(model.towers.weights, model.towers.biases):
            w[t].add_(torch.randn_like(w[t]))
            b[t].add_(0.5)


def _tower_outputs_with_grad(model: AITM, x: torch.Tensor):
    """Run the model keeping the tower outputs q (T, B, d) as a leaf that collects gradients."""
    captured = {}

    def hook(_module, _inputs, output):
        output = output.detach().requires_grad_(True)
        captured["q"] = output
        return output

    handle = model.towers.register_forward_hook(hook)
    try:
        logits = model(x)
    finally:
        handle.remove()
    return logits, captured["q"]


@pytest.mark.parametrize("transfer, later_changes", [("none", False), ("ait", True)])
def test_without_ait_later_tasks_ignore_the_earlier_tower(transfer, later_changes):
    model, x = _model(transfer), _x()
    before = model(x)
    _perturb_tower(model, 0)
    after = model(x)
    assert not torch.allclose(before[:, 0], after[:, 0])
    assert torch.allclose(before[:, 1:], after[:, 1:]) is not later_changes


def test_without_ait_no_gradient_reaches_the_previous_tower():
    model, x = _model("none"), _x()
    logits, q = _tower_outputs_with_grad(model, x)
    logits[:, 2].sum().backward()
    assert q.grad[:2].abs().max() == 0  # towers 0 and 1
    assert q.grad[2].abs().max() > 0


@pytest.mark.parametrize("transfer, scalar_only", [("probability", True), ("ait", False)])
def test_probability_transfer_passes_one_scalar_per_row(transfer, scalar_only):
    """d logit_1 / d q_0 must be parallel to task 0's head: q_0 reaches task 1 only via p_0."""
    model, x = _model(transfer, num_tasks=2), _x(64)
    logits, q = _tower_outputs_with_grad(model, x)
    logits[:, 1].sum().backward()
    grad = q.grad[0]  # (B, d)
    assert grad.abs().max() > 0  # task 1 does depend on tower 0
    head = model.heads.weight[0, :, 0].detach()
    along = grad @ head / head.dot(head)
    residual = grad - along[:, None] * head[None, :]
    relative = residual.norm() / grad.norm()
    if scalar_only:
        assert relative < 1e-5
        assert model.transfer[0].linear.in_features == 1
    else:
        assert relative > 1e-2


def test_probability_transfer_sees_the_same_probability_whatever_the_hidden_state():
    """Two different tower-0 states with the same p_0 give task 1 the same output."""
    model, x = _model("probability", num_tasks=2), _x(16)
    _, q = _tower_outputs_with_grad(model, x)
    head = model.heads.weight[0, :, 0].detach()
    # Move q_0 orthogonally to the head: p_0 stays, the hidden state changes.
    direction = torch.randn_like(head)
    direction -= direction.dot(head) / head.dot(head) * head
    moved = q.detach().clone()
    moved[0] += 3.0 * direction

    def replace(_module, _inputs, _output):
        return moved

    with torch.no_grad():
        handle = model.towers.register_forward_hook(replace)
        try:
            shifted = model(x)
        finally:
            handle.remove()
        original = model(x)
    torch.testing.assert_close(shifted[:, 0], original[:, 0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(shifted[:, 1], original[:, 1], rtol=1e-5, atol=1e-5)


def test_calibrator_weight_zero_is_plain_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(50, 3, requires_grad=True)
    labels = (torch.rand(50, 3) < 0.3).float().cummin(dim=1).values
    plain = F.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(0).sum()
    ablated = aitm_loss(logits, labels, calibrator_weight=0.0)
    full = aitm_loss(logits, labels, calibrator_weight=0.6)
    torch.testing.assert_close(ablated.total, plain)
    assert float(ablated.calibrator) == 0.0
    assert float(full.calibrator) > 0  # random logits violate the funnel order somewhere
    assert not torch.allclose(full.total, plain)


@pytest.mark.parametrize(
    "kind, transfer",
    [("aitm", "ait"), ("aitm", "none"), ("aitm", "probability")]
    + [(k, "ait") for k in ("mlp", "esmm", "omoe", "mmoe", "ple")],
)
def test_every_parameter_gets_a_gradient(kind, transfer):
    """An ablation must not leave dead parameters behind: DDP (torchrun) fails on them."""
    torch.manual_seed(0)
    config = ModelConfig(kind=kind, transfer=transfer, expert_dims=(8, 4), **SMALL)
    model = MODELS[kind](CARDS, 3, config)
    model.train()
    model(_x(64)).sum().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None]
    assert dead == []
