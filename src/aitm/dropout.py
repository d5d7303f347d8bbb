"""ReLU then dropout, with keep masks cut from random bytes and served from a pool.

Only models with a dropout rate above 0 load this module (see `aitm.layers.activation`); the
default configuration trains and serves without it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
