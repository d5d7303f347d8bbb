"""The AITM training objective: per-task cross-entropy plus the behavioral expectation calibrator.

The L2 penalty on embeddings is applied by the optimizer as weight decay on the embedding
table (see `aitm.training`), which is the gradient of (l2 / 2) * ||E||^2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def behavioral_calibrator(probs: torch.Tensor) -> torch.Tensor:
    """mean over rows of sum_{t >= 2} max(p_t - p_{t-1}, 0). probs: (B, T) -> scalar."""
    return F.relu(probs[:, 1:] - probs[:, :-1]).sum(dim=1).mean()


@dataclass(frozen=True)
class LossParts:
    total: torch.Tensor
    cross_entropy: torch.Tensor  # (T,) per task, detached
    calibrator: torch.Tensor  # detached


def aitm_loss(logits: torch.Tensor, labels: torch.Tensor, calibrator_weight: float) -> LossParts:
    """logits, labels: (B, T). Sum of per-task mean BCE + alpha * calibrator."""
    per_task = F.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(dim=0)
    total = per_task.sum()
    calibrator = logits.new_zeros(())
    if calibrator_weight > 0:
        calibrator = behavioral_calibrator(torch.sigmoid(logits))
        total = total + calibrator_weight * calibrator
    return LossParts(total, per_task.detach(), calibrator.detach())
