"""Multi-task baselines that AITM is compared with, on the same embedding, loss and training loop.

Every model maps (B, F) field indices (float, with numeric fields at the positions `numeric`
names, see `aitm.layers.FieldEmbedding`) to (B, T) END-TO-END logits, so `aitm.losses`,
`aitm.training` and `aitm.evaluation` treat them exactly as they treat AITM. Read bottom-up:

- `mlp`: a tower per task over the shared embedding, nothing else shared.
- `esmm`: ESMM (Ma et al., SIGIR 2018) generalised to T steps. Towers predict the CONDITIONAL
  logit of step t given step t-1; the end-to-end probability is the running product of their
  sigmoids, so the funnel order holds by construction.
- `omoe` / `mmoe`: one gate shared by every task / one gate per task over shared experts
  (Ma et al., KDD 2018).
- `ple`: Progressive Layered Extraction (Tang et al., RecSys 2020): `ple_layers` extraction
  layers of shared and task-specific experts, gated per task (and, below the top layer, for the
  shared branch over all experts).

Experts are MLPs of `expert_dims` (ReLU, dropout `dropout[0]`); every model ends in towers of
`tower_dims` with the configured dropout and one linear head per task. All experts of a layer, and
all towers, run as one batched product each (no Python loop over experts).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from aitm.config import ModelConfig
from aitm.layers import BatchedTowers, FieldEmbedding, TaskHeads


def log1mexp(a: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(a)) for a < 0, accurate everywhere (Mächler 2012): expm1 near 0, log1p far.

    Each branch sees only inputs it handles, so the unused one cannot put NaN into the gradient.
    """
    near = a > -math.log(2.0)
    near_a = torch.where(near, a, -1.0)
    far_a = torch.where(near, -1.0, a)
    return torch.where(near, torch.log(-torch.expm1(near_a)), torch.log1p(-torch.exp(far_a)))


def chain_logits(conditional: torch.Tensor) -> torch.Tensor:
    """Conditional step logits (B, T) -> end-to-end logits (B, T), computed in log space.

    log p_t = sum_{s <= t} log sigmoid(c_s); logit_t = log p_t - log(1 - p_t). log p is clamped
    just below 0 so a saturated step gives a large finite logit, not +inf. The final cummin is a
    no-op in exact arithmetic; it guarantees non-increasing outputs under rounding too.
    """
    log_p = F.logsigmoid(conditional).cumsum(dim=1).clamp(max=-1e-30)
    logits = log_p - log1mexp(log_p)
    return logits.cummin(dim=1).values


class _Gates(nn.Module):
    """G softmax gates over K experts, one batched product: (G, B, in) -> (G, B, K).

    With a (B, in) input every gate reads the same input.
    """

    def __init__(self, num_gates: int, in_dim: int, num_experts: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)
        self.weight = nn.Parameter(
            torch.empty(num_gates, in_dim, num_experts).uniform_(-bound, bound)
        )
        self.bias = nn.Parameter(torch.empty(num_gates, 1, num_experts).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.weight.shape[0], *x.shape)
        return torch.baddbmm(self.bias, x, self.weight).softmax(dim=-1)


def _expert_dropout(config: ModelConfig) -> tuple[float, ...]:
    return (config.dropout[0],) * len(config.expert_dims)


def _check_tasks(name: str, num_tasks: int) -> None:
    if num_tasks < 2:
        raise ValueError(f"{name} needs at least 2 tasks, got {num_tasks}")


class MultiTowerMLP(nn.Module):
    """Shared embedding, an independent tower and head per task. (B, F) -> (B, T) logits."""

    def __init__(
        self,
        cardinalities: list[int],
        num_tasks: int,
        config: ModelConfig,
        numeric: Sequence[int] = (),
    ) -> None:
        super().__init__()
        _check_tasks("mlp", num_tasks)
        self.embedding = FieldEmbedding(cardinalities, config.embedding_dim, numeric=numeric)
        self.towers = BatchedTowers(
            num_tasks, self.embedding.output_dim, config.tower_dims, config.dropout
        )
        self.heads = TaskHeads(num_tasks, config.tower_dims[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads(self.towers(self.embedding(x)))


class ESMM(MultiTowerMLP):
    """ESMM over T steps: heads give conditional logits c_t = logit P(y_t | y_{t-1}, x).

    The end-to-end probability is prod_{s <= t} sigmoid(c_s), monotone in t by construction; the
    output is its logit (see `chain_logits`). (B, F) -> (B, T) end-to-end logits.
    """

    def conditional_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, F) -> (B, T) logits of each step given the one before."""
        return super().forward(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return chain_logits(self.conditional_logits(x))


class MixtureOfExperts(nn.Module):
    """OMoE (one gate for all tasks) or MMoE (a gate per task). (B, F) -> (B, T) logits.

    E experts run as one batched product on the embedding; gate g mixes them into (B, d_e);
    task t's tower reads the mixture of its gate.
    """

    def __init__(
        self,
        cardinalities: list[int],
        num_tasks: int,
        config: ModelConfig,
        *,
        multi_gate: bool,
        numeric: Sequence[int] = (),
    ) -> None:
        super().__init__()
        _check_tasks("mmoe" if multi_gate else "omoe", num_tasks)
        self.num_tasks, self.multi_gate = num_tasks, multi_gate
        self.embedding = FieldEmbedding(cardinalities, config.embedding_dim, numeric=numeric)
        in_dim = self.embedding.output_dim
        self.experts = BatchedTowers(
            config.num_experts, in_dim, config.expert_dims, _expert_dropout(config)
        )
        self.gates = _Gates(num_tasks if multi_gate else 1, in_dim, config.num_experts)
        self.towers = BatchedTowers(
            num_tasks, config.expert_dims[-1], config.tower_dims, config.dropout
        )
        self.heads = TaskHeads(num_tasks, config.tower_dims[-1])

    def gate_weights(self, x: torch.Tensor) -> torch.Tensor:
        """(B, F) -> (G, B, E): the weight each gate gives each expert (G = T or 1)."""
        return self.gates(self.embedding(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.embedding(x)
        experts = self.experts(e)  # (E, B, d_e)
        gates = self.gates(e)  # (G, B, E)
        mixed = torch.einsum("gbe,ebd->gbd", gates, experts)
        if self.multi_gate:
            return self.heads(self.towers(mixed))
        return self.heads(self.towers(mixed[0]))


class ExtractionLayer(nn.Module):
    """One PLE extraction layer (a CGC): task-specific and shared experts, gated per branch.

    Input (T + 1, B, in): one input per task branch, then the shared branch (the first layer
    passes the embedding to all). Output (T + 1, B, d_e), or (T, B, d_e) for the top layer, which
    has no shared gate. Task t's gate mixes its own `task_experts` and the `shared_experts`; the
    shared gate mixes every expert.
    """

    def __init__(
        self,
        num_tasks: int,
        in_dim: int,
        task_experts: int,
        shared_experts: int,
        dims: tuple[int, ...],
        dropout: tuple[float, ...],
        *,
        top: bool,
    ) -> None:
        super().__init__()
        self.num_tasks, self.top = num_tasks, top
        self.task_experts, self.shared_experts = task_experts, shared_experts
        n = num_tasks * task_experts + shared_experts
        self.experts = BatchedTowers(n, in_dim, dims, dropout)
        # Which branch input every expert reads, and which experts each task gate sees.
        branch = torch.arange(num_tasks).repeat_interleave(task_experts)
        self.register_buffer(
            "expert_branch", torch.cat((branch, torch.full((shared_experts,), num_tasks))), False
        )
        shared = torch.arange(num_tasks * task_experts, n)
        selection = [
            torch.cat((torch.arange(t * task_experts, (t + 1) * task_experts), shared))
            for t in range(num_tasks)
        ]
        self.register_buffer("task_selection", torch.stack(selection), persistent=False)
        self.task_gates = _Gates(num_tasks, in_dim, task_experts + shared_experts)
        self.shared_gate = None if top else _Gates(1, in_dim, n)

    def forward(self, h: torch.Tensor, *, same_input: bool = False) -> torch.Tensor:
        if same_input:  # (B, in): every branch reads the embedding
            experts = self.experts(h)
            task_in: torch.Tensor = h
            shared_in = h
        else:
            experts = self.experts(h.index_select(0, self.expert_branch))
            task_in, shared_in = h[: self.num_tasks], h[self.num_tasks]
        selected = experts[self.task_selection]  # (T, k, B, d_e)
        out = torch.einsum("tbk,tkbd->tbd", self.task_gates(task_in), selected)
        if self.shared_gate is None:
            return out
        shared = torch.einsum("be,ebd->bd", self.shared_gate(shared_in)[0], experts)
        return torch.cat((out, shared.unsqueeze(0)))


class PLE(nn.Module):
    """Progressive Layered Extraction: `ple_layers` extraction layers, then towers and heads.

    Each layer has `num_experts` shared experts and `task_experts` experts per task.
    (B, F) -> (B, T) logits.
    """

    def __init__(
        self,
        cardinalities: list[int],
        num_tasks: int,
        config: ModelConfig,
        numeric: Sequence[int] = (),
    ) -> None:
        super().__init__()
        _check_tasks("ple", num_tasks)
        self.embedding = FieldEmbedding(cardinalities, config.embedding_dim, numeric=numeric)
        dims, dropout = config.expert_dims, _expert_dropout(config)
        in_dims = [self.embedding.output_dim] + [dims[-1]] * (config.ple_layers - 1)
        self.layers = nn.ModuleList(
            ExtractionLayer(
                num_tasks,
                in_dim,
                config.task_experts,
                config.num_experts,
                dims,
                dropout,
                top=i == config.ple_layers - 1,
            )
            for i, in_dim in enumerate(in_dims)
        )
        self.towers = BatchedTowers(num_tasks, dims[-1], config.tower_dims, config.dropout)
        self.heads = TaskHeads(num_tasks, config.tower_dims[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embedding(x)
        for i, layer in enumerate(self.layers):
            h = layer(h, same_input=i == 0)
        return self.heads(self.towers(h))
