"""The building blocks every model shares, read bottom-up: the fused field embedding (one table,
one gather), the T towers computed as one batched product per layer, and the T linear heads.

Layers with a dropout rate above 0 take their activation from `aitm.dropout`, loaded only then.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from aitm.dropout import KeepMaskPool

# (x, dropout rate, training, mask pool) -> relu(x), then dropout in training; may overwrite x.
Activation = Callable[[torch.Tensor, float, bool, "KeepMaskPool | None"], torch.Tensor]


def _relu(
    x: torch.Tensor, p: float, training: bool, masks: KeepMaskPool | None = None
) -> torch.Tensor:
    return F.relu(x, inplace=True)


def activation(rates: Sequence[float]) -> Activation:
    """The activation of layers with these dropout rates: relu in place when every rate is 0,
    else `aitm.dropout.relu_dropout`, whose mask kernels are imported only then."""
    if not any(rates):
        return _relu
    from aitm.dropout import relu_dropout

    return relu_dropout


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
    """T MLPs, every layer of all towers computed as one batched product.

    (B, in) or (T, B, in) -> (T, B, dims[-1]). Layer l holds weights (T, d_l, d_{l+1}); each
    tower is initialised like an `nn.Linear` stack. With a dropout rate above 0 the towers own a
    `KeepMaskPool` (or share the one given), which the layers above them may share too.
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
        self.activation = activation(self.dropout)
        self.masks = masks
        if masks is None and any(self.dropout):
            from aitm.dropout import KeepMaskPool  # with the kernels, see `activation`

            self.masks = KeepMaskPool()
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
        """(B, in), read by every tower, or (T, B, in), one input per tower."""
        if x.dim() == 2:
            h = x.unsqueeze(0).expand(self.num_towers, *x.shape)
        elif x.dim() == 3 and x.shape[0] == self.num_towers:
            h = x
        else:
            raise ValueError(
                f"expected input (B, in) or (T={self.num_towers}, B, in), got {tuple(x.shape)}"
            )
        for w, b, p in zip(self.weights, self.biases, self.dropout):
            h = self.activation(torch.baddbmm(b, h, w), p, self.training, self.masks)
        return h


class TaskHeads(nn.Module):
    """One linear head per task, as one batched product. (T, B, d) -> (B, T) logits."""

    def __init__(self, num_tasks: int, dim: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(dim)
        self.weight = nn.Parameter(torch.empty(num_tasks, dim, 1).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(num_tasks, 1, 1).uniform_(-bound, bound))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, z, self.weight).squeeze(-1).transpose(0, 1)
