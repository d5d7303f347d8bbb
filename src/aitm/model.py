"""AITM: Adaptive Information Transfer Multi-task model (Xi et al., KDD 2021).

Read bottom-up after `aitm.layers` (the fused field embedding, the batched towers, the heads):
the information-transfer function g, the AIT attention, and the whole model, which returns
end-to-end logits (B, T). Losses live in `aitm.losses`; nothing here applies a sigmoid
to the output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from aitm.config import ModelConfig
from aitm.layers import BatchedTowers, FieldEmbedding, TaskHeads, activation

if TYPE_CHECKING:
    from aitm.dropout import KeepMaskPool


class InformationTransfer(nn.Module):
    """g_{t-1}: what task t-1 passes on. (B, d_in) -> (B, d)."""

    def __init__(
        self, in_dim: int, dim: int, dropout: float, masks: KeepMaskPool | None = None
    ) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, dim)
        self.dropout = dropout
        self.activation = activation((dropout,))
        self.masks = masks

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.activation(self.linear(z), self.dropout, self.training, self.masks)


class AdaptiveInformationTransfer(nn.Module):
    """Attention over the two vectors [p_{t-1}, q_t], as in the paper and the authors' code.

    For u in {p, q}: w_u = <h1(u), h2(u)> / sqrt(d), softmax over the two, z_t = sum w_u h3(u),
    with h1, h2, h3 bias-free linear maps (query, key, value). (B, d), (B, d) -> (B, d).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.query = nn.Linear(dim, dim, bias=False)
        self.key = nn.Linear(dim, dim, bias=False)
        self.value = nn.Linear(dim, dim, bias=False)

    def score_map(self) -> torch.Tensor:
        """(d, d) A = h1^T h2 / sqrt(d), so that the score <h1(u), h2(u)> / sqrt(d) = u A u^T:
        one d x d product per vector instead of two."""
        return self.query.weight.t() @ self.key.weight / math.sqrt(self.dim)

    def project(
        self, u: torch.Tensor, score_map: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., d) -> the score <h1(u), h2(u)> / sqrt(d) (...) and the value h3(u) (..., d).
        `score_map` is `score_map()`, when the caller projects several vectors."""
        a = self.score_map() if score_map is None else score_map
        return ((u @ a) * u).sum(-1), self.value(u)

    @staticmethod
    def combine(transferred, own) -> torch.Tensor:
        """z from the (score, value) of p_{t-1} and of q_t: a softmax over two scores is the
        sigmoid of their difference, so z = v_q + w_p (v_p - v_q)."""
        (score_p, value_p), (score_q, value_q) = transferred, own
        w_p = torch.sigmoid(score_p - score_q).unsqueeze(-1)
        return torch.lerp(value_q, value_p, w_p)

    def attention_weights(self, transferred: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
        """(B, 2): the weight of p_{t-1} and of q_t."""
        scores = torch.stack((self.project(transferred)[0], self.project(own)[0]), dim=1)
        return scores.softmax(dim=1)

    def forward(self, transferred: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
        return self.combine(self.project(transferred), self.project(own))


class AITM(nn.Module):
    """Shared embedding, a tower per task, AIT from task t-1 to t, a head per task.

    transfer="ait" is the paper's model; "none" ablates the AIT module (z_t = q_t);
    "probability" passes only task t-1's predicted probability through g (the pattern the paper
    argues against). (B, F) field indices (float with numeric fields at positions `numeric`, see
    `FieldEmbedding`) -> (B, T) end-to-end logits.
    """

    def __init__(
        self,
        cardinalities: list[int],
        num_tasks: int,
        config: ModelConfig,
        numeric: Sequence[int] = (),
    ) -> None:
        super().__init__()
        if num_tasks < 2:
            raise ValueError(f"AITM needs at least 2 tasks, got {num_tasks}")
        self.num_tasks, self.transfer_mode = num_tasks, config.transfer
        d = config.tower_dims[-1]
        self.embedding = FieldEmbedding(cardinalities, config.embedding_dim, numeric=numeric)
        self.towers = BatchedTowers(
            num_tasks, self.embedding.output_dim, config.tower_dims, config.dropout
        )
        masks = self.towers.masks
        # transfer="none" builds no transfer modules: parameters without gradients break DDP.
        hops = 0 if config.transfer == "none" else num_tasks - 1
        transfer_in = 1 if config.transfer == "probability" else d
        self.transfer = nn.ModuleList(
            InformationTransfer(transfer_in, d, config.dropout[-1], masks) for _ in range(hops)
        )
        self.ait = None if config.transfer == "none" else AdaptiveInformationTransfer(d)
        self.heads = TaskHeads(num_tasks, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.towers(self.embedding(x))  # (T, B, d)
        if self.transfer_mode == "none":
            return self.heads(q)
        if self.transfer_mode == "probability":
            return self._forward_probability_transfer(q)
        score_map = self.ait.score_map()
        # Every q_t (t >= 2) projected in one product; unbind, not indexing, whose backward
        # would fill a zero tensor per task.
        own_scores, own_values = (part.unbind(0) for part in self.ait.project(q[1:], score_map))
        z = [q[0]]
        for t in range(1, self.num_tasks):
            transferred = self.ait.project(self.transfer[t - 1](z[-1]), score_map)
            z.append(self.ait.combine(transferred, (own_scores[t - 1], own_values[t - 1])))
        return self.heads(torch.stack(z))

    def _forward_probability_transfer(self, q: torch.Tensor) -> torch.Tensor:
        logits = [self._head(0, q[0])]
        for t in range(1, self.num_tasks):
            transferred = self.transfer[t - 1](torch.sigmoid(logits[-1]).unsqueeze(-1))
            logits.append(self._head(t, self.ait(transferred, q[t])))
        return torch.stack(logits, dim=1)

    def _head(self, t: int, z: torch.Tensor) -> torch.Tensor:
        return (z @ self.heads.weight[t]).squeeze(-1) + self.heads.bias[t, 0, 0]
