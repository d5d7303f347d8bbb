"""AITM: Adaptive Information Transfer Multi-task model (Xi et al., KDD 2021).

Read bottom-up: the fused field embedding, the T towers computed as one batched product per
layer, the information-transfer function g, the AIT attention, and the whole model, which
returns end-to-end logits (B, T). Losses live in `aitm.losses`; nothing here applies a sigmoid
to the output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from aitm.config import ModelConfig
from aitm.schema import FeatureSchema


def _draw_keep_mask(n: int, drop: int, scale: float) -> torch.Tensor:
    """(n,) floats: `scale` (kept) or 0 (dropped), P(drop) = drop / 128.

    Cut from random 64-bit words, one byte per element, which is several times cheaper than
    one Bernoulli draw per element. The top byte of a word from `random_()` has only 7 random
    bits, so it is compared with `drop` and the other (8-bit) bytes with `2 * drop`.
    """
    words = torch.empty((n + 7) // 8, dtype=torch.int64).random_()
    thresholds = torch.tensor([2 * drop] * 7 + [drop], dtype=torch.uint8)
    keep = words.view(torch.uint8).view(-1, 8) >= thresholds
    return keep.view(-1)[:n].to(torch.float32).mul_(scale)


class KeepMaskPool:
    """Dropout keep masks served as windows, at random offsets, of a pool of i.i.d. draws.

    Drawing fresh masks cost more CPU time per step than the tower products. A window of an
    i.i.d. sequence is itself i.i.d. Bernoulli, so every mask keeps the dropout distribution;
    the pool (at least `min_size` and 8 windows) is redrawn once it has served `reuse` times its
    size, so an element recurs in about `reuse` windows, each for another row of another batch.
    Offsets and draws come from torch's default generator, so seeded runs repeat.
    """

    def __init__(self, min_size: int = 1 << 22, reuse: int = 8) -> None:
        self.min_size, self.reuse = min_size, reuse
        self._pools: dict[int, torch.Tensor] = {}
        self._served: dict[int, int] = {}

    def window(self, n: int, drop: int, scale: float) -> torch.Tensor:
        pool = self._pools.get(drop)
        served = self._served.get(drop, 0)
        if pool is None or len(pool) < 8 * n or served >= self.reuse * len(pool):
            pool = _draw_keep_mask(max(self.min_size, 8 * n), drop, scale)
            self._pools[drop], served = pool, 0
        self._served[drop] = served + n
        offset = int(torch.randint(len(pool) - n + 1, ()))
        return pool[offset : offset + n]


class _ReluDropout(torch.autograd.Function):
    """relu(x) then inverted dropout, in place on x, saving only the output for backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, drop: int, masks: KeepMaskPool | None) -> torch.Tensor:
        scale = 128.0 / (128 - drop)
        n = x.numel()
        mask = _draw_keep_mask(n, drop, scale) if masks is None else masks.window(n, drop, scale)
        mask = mask.view(x.shape)
        out = x.clamp_min_(0.0).mul_(mask)
        ctx.mark_dirty(x)
        ctx.save_for_backward(out)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (out,) = ctx.saved_tensors
        # out > 0 exactly where the input was positive and the element was kept.
        return torch.ops.aten.threshold_backward(grad, out, 0.0).mul_(ctx.scale), None, None


def relu_dropout(
    x: torch.Tensor, p: float, training: bool, masks: KeepMaskPool | None = None
) -> torch.Tensor:
    """relu then dropout. In training the rate is p rounded to 1/128 (0.1 -> 0.1016, 0.3 ->
    0.2969) and survivors are scaled by the exact inverse keep rate, so the expectation holds.
    Masks come from `masks` (a model's pool) or are drawn fresh; draws use torch's default
    generator, so seeded runs repeat. May overwrite x.
    """
    drop = round(p * 128)
    if not training or p == 0.0:
        return F.relu(x, inplace=True)
    if not 0 < drop < 128:  # p < 1/256 would round to no dropout, p > 255/256 to all
        return F.dropout(F.relu(x), p, training)
    return _ReluDropout.apply(x, drop, masks)


class _GatherRows(torch.autograd.Function):
    """table.index_select(0, rows) whose backward scatters into the flattened table.

    A 1-D scatter_add is 2 to 4 times cheaper on CPU than index_select's own backward (a
    row-wise index_add) for narrow tables; the dense gradient is the same.
    """

    @staticmethod
    def forward(ctx, table: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(rows)
        ctx.table_shape = table.shape
        return table.index_select(0, rows)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (rows,) = ctx.saved_tensors
        num_rows, dim = ctx.table_shape
        flat = (rows.unsqueeze(1) * dim + torch.arange(dim, device=rows.device)).view(-1)
        table_grad = grad.new_zeros(num_rows * dim).scatter_add_(0, flat, grad.reshape(-1))
        return table_grad.view(num_rows, dim), None


class FieldEmbedding(nn.Module):
    """(B, F) per-field indices -> (B, F * D), one table with a row range per field.

    Fields at the `numeric` positions are numbers: each has 2 rows, 0 the "missing" vector and 1
    the "value" vector, and embeds as value * row 1, or row 0 where the value is NaN. x is then
    float (categorical columns holding their index); with no numeric field it is int64 and the
    forward pass is one gather.
    """

    def __init__(
        self,
        cardinalities: list[int],
        dim: int,
        init_std: float = 0.01,
        numeric: Sequence[int] = (),
    ) -> None:
        super().__init__()
        if not cardinalities or min(cardinalities) < 1:
            raise ValueError(f"every field needs a cardinality >= 1, got {cardinalities}")
        if dim < 1:
            raise ValueError(f"embedding dim must be >= 1, got {dim}")
        numeric = sorted(set(numeric))
        if numeric and (numeric[0] < 0 or numeric[-1] >= len(cardinalities)):
            raise ValueError(f"numeric positions {numeric} outside 0..{len(cardinalities) - 1}")
        if any(cardinalities[j] != 2 for j in numeric):
            raise ValueError(
                f"numeric fields need cardinality 2 (missing, value), got "
                f"{[cardinalities[j] for j in numeric]} at positions {numeric}"
            )
        offsets = torch.tensor([0, *cardinalities[:-1]], dtype=torch.long).cumsum(0)
        self.register_buffer("offsets", offsets, persistent=False)
        mask = None
        if numeric:  # uint8, not bool: DDP broadcasts buffers and gloo aborts on bool tensors
            mask = torch.zeros(len(cardinalities), dtype=torch.uint8)
            mask[numeric] = 1
        self.register_buffer("numeric_mask", mask, persistent=False)
        self.cardinalities = list(cardinalities)
        self.numeric = tuple(numeric)
        self.table = nn.Embedding(sum(cardinalities), dim)
        nn.init.normal_(self.table.weight, std=init_std)
        self.output_dim = len(cardinalities) * dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.numeric_mask is not None:
            return self._forward_numeric(x)
        if x.is_floating_point():  # indices passed as floats
            x = x.long()
        rows = _GatherRows.apply(self.table.weight, (x + self.offsets).view(-1))
        return rows.view(x.shape[0], -1)

    def _forward_numeric(self, x: torch.Tensor) -> torch.Tensor:
        """The same single gather, numeric fields at row 1 (present) or 0 (NaN), times a
        per-element scale: the value for a present numeric field, else 1."""
        numeric, present = self.numeric_mask.bool(), ~torch.isnan(x)
        codes = torch.where(numeric, present.to(x.dtype), x.nan_to_num(0.0)).long()
        rows = _GatherRows.apply(self.table.weight, (codes + self.offsets).view(-1))
        scale = torch.where(numeric & present, x, 1.0).to(rows.dtype)
        return (rows.view(*x.shape, -1) * scale.unsqueeze(-1)).view(x.shape[0], -1)


class BatchedTowers(nn.Module):
    """T MLPs over one input, every layer of all towers computed as one batched product.

    (B, in) -> (T, B, dims[-1]). Layer l holds weights (T, d_l, d_{l+1}); each tower is
    initialised like an `nn.Linear` stack.
    """

    def __init__(
        self,
        num_towers: int,
        in_dim: int,
        dims: tuple[int, ...],
        dropout: tuple[float, ...],
        masks: KeepMaskPool | None = None,
    ) -> None:
        super().__init__()
        if num_towers < 1 or in_dim < 1 or not dims or len(dropout) != len(dims):
            raise ValueError(
                f"need towers >= 1, in_dim >= 1 and one dropout rate per layer; got "
                f"{num_towers}, {in_dim}, {dims}, {dropout}"
            )
        self.num_towers, self.dims, self.dropout = num_towers, tuple(dims), tuple(dropout)
        self.masks = masks or KeepMaskPool()
        sizes = (in_dim, *dims)
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(num_towers, a, b)) for a, b in zip(sizes, sizes[1:])
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.empty(num_towers, 1, b)) for b in sizes[1:]
        )
        for w, b, fan_in in zip(self.weights, self.biases, sizes):
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(w, -bound, bound)
            nn.init.uniform_(b, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.unsqueeze(0).expand(self.num_towers, *x.shape)
        for w, b, p in zip(self.weights, self.biases, self.dropout):
            h = relu_dropout(torch.baddbmm(b, h, w), p, self.training, self.masks)
        return h


class InformationTransfer(nn.Module):
    """g_{t-1}: what task t-1 passes on. (B, d_in) -> (B, d)."""

    def __init__(
        self, in_dim: int, dim: int, dropout: float, masks: KeepMaskPool | None = None
    ) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, dim)
        self.dropout = dropout
        self.masks = masks

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return relu_dropout(self.linear(z), self.dropout, self.training, self.masks)


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


class TaskHeads(nn.Module):
    """One linear head per task, as one batched product. (T, B, d) -> (B, T) logits."""

    def __init__(self, num_tasks: int, dim: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(dim)
        self.weight = nn.Parameter(torch.empty(num_tasks, dim, 1).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(num_tasks, 1, 1).uniform_(-bound, bound))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, z, self.weight).squeeze(-1).transpose(0, 1)


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


def build_model(schema: FeatureSchema, config: ModelConfig) -> nn.Module:
    """The model a config names, sized by the schema."""
    dims = {f.embedding_dim for f in schema.fields}
    if dims != {config.embedding_dim}:
        raise ValueError(
            f"schema embedding sizes {sorted(dims)} differ from model.embedding_dim "
            f"{config.embedding_dim}"
        )
    numeric = schema.numeric_positions
    if config.kind == "aitm":
        return AITM(schema.cardinalities, len(schema.tasks), config, numeric=numeric)
    from aitm.baselines import build_baseline

    return build_baseline(schema.cardinalities, len(schema.tasks), config, numeric=numeric)
