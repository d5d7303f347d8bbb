"""The training loop: `train(config, train_frame, val_frame) -> TrainResult`.

Tensors are built once and batches are sliced from them (no per-row Python). Early stopping
watches the sum of validation AUCs over every task and always restores the best weights. Under
`torchrun` (WORLD_SIZE > 1) the same function trains data-parallel with DDP on gloo.
"""

from __future__ import annotations

import ctypes
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from aitm.catalog import build_model
from aitm.config import Config, TrainConfig
from aitm.data import EncodedData, encode
from aitm.evaluation import Evaluation, evaluate
from aitm.inference import predict_proba
from aitm.losses import aitm_loss
from aitm.schema import FeatureSchema, fit_schema, with_dataset

if TYPE_CHECKING:
    from aitm.dataset import DatasetSpec


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    train_loss: float
    val_auc: dict[str, float]
    val_violation_rate: float
    seconds: float
    samples_per_second: float


@dataclass
class TrainResult:
    model: nn.Module  # best weights, eval mode
    schema: FeatureSchema
    config: Config
    best_epoch: int
    validation: Evaluation  # of the best weights on the validation data
    history: list[EpochStats] = field(default_factory=list)

    @property
    def samples_per_second(self) -> float:
        """Training throughput over all epochs (validation passes excluded)."""
        seconds = sum(e.seconds for e in self.history)
        samples = sum(e.samples_per_second * e.seconds for e in self.history)
        return samples / seconds if seconds else 0.0


@dataclass(frozen=True)
class _Distributed:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _distributed_from_env() -> _Distributed:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return _Distributed()
    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    return _Distributed(rank=dist.get_rank(), world_size=dist.get_world_size())


def _tune_cpu_runtime() -> None:
    """Flush denormals (dense Adam on big tables slows 5x without it) and keep freed memory.

    Large activations are otherwise returned to the OS and page-faulted back every step.
    """
    torch.set_flush_denormal(True)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
        except OSError:
            return
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 1 << 30)
        libc.mallopt(m_trim_threshold, 1 << 31)


def selection_score(
    auc: dict[str, float], violation_rate: float, max_violation_rate: float
) -> tuple[bool, float]:
    """Early stopping's ranking of an epoch: within the violation bound first, then AUC sum."""
    return violation_rate <= max_violation_rate, float(np.nansum(list(auc.values())))


def effective_batch_size(tc: TrainConfig, rows: int) -> int:
    """`tc.batch_size`, shrunk for a small table to give `tc.min_steps_per_epoch` steps."""
    if tc.min_steps_per_epoch == 0:
        return tc.batch_size
    return min(tc.batch_size, max(16, math.ceil(rows / tc.min_steps_per_epoch)))


def train(
    config: Config,
    train_frame: pd.DataFrame,
    val_frame: pd.DataFrame,
    schema: FeatureSchema | None = None,
    dataset: DatasetSpec | None = None,
) -> TrainResult:
    """Fit the schema on the training frame (unless given), encode both frames, train. With a
    dataset spec, the schema (and so the artifact) carries it: see `with_dataset`."""
    schema = schema or fit_schema(train_frame, config)
    if dataset is not None:
        schema = with_dataset(schema, dataset)
    return train_encoded(config, schema, encode(train_frame, schema), encode(val_frame, schema))


def train_encoded(
    config: Config, schema: FeatureSchema, train_data: EncodedData, val_data: EncodedData
) -> TrainResult:
    if train_data.y is None or val_data.y is None:
        raise ValueError("training and validation data need labels")
    if len(train_data) == 0 or len(val_data) == 0:
        raise ValueError(f"empty data: {len(train_data)} training, {len(val_data)} validation rows")
    run = _set_up(config, schema, train_data)
    selection = _Selection(config.train)
    history: list[EpochStats] = []
    for epoch in range(1, config.train.max_epochs + 1):
        train_loss, rows, seconds = _train_epoch(run, epoch)
        stats, val_eval = _validate(run, schema, val_data, epoch, train_loss, rows, seconds)
        history.append(stats)
        if selection.observe(epoch, val_eval, run.model):
            break
    return selection.result(run.model, schema, config, history)


@dataclass
class _Run:
    """What every epoch of one training run works with."""

    config: Config
    ctx: _Distributed
    model: nn.Module
    net: nn.Module  # the model, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    x: torch.Tensor
    y: torch.Tensor
    local_batch: int  # rows per step on this rank
    generator: torch.Generator  # the epochs' row orders


def _set_up(config: Config, schema: FeatureSchema, train_data: EncodedData) -> _Run:
    """The model (under `seed`), its optimizer and the training tensors."""
    _tune_cpu_runtime()
    ctx = _distributed_from_env()
    tc = config.train
    torch.manual_seed(tc.seed)
    model = build_model(schema, config.model)
    torch.manual_seed(tc.seed * 1_000 + ctx.rank + 1)  # dropout draws differ per rank
    net: nn.Module = model
    if ctx.world_size > 1:
        net = nn.parallel.DistributedDataParallel(model)

    embedding_params = [p for n, p in model.named_parameters() if n.startswith("embedding.")]
    other_params = [p for n, p in model.named_parameters() if not n.startswith("embedding.")]
    optimizer = torch.optim.Adam(
        [
            {"params": embedding_params, "weight_decay": config.loss.embedding_l2},
            {"params": other_params, "weight_decay": 0.0},
        ],
        lr=tc.learning_rate,
        fused=True,
    )
    x = torch.from_numpy(train_data.x)
    y = torch.from_numpy(train_data.y)
    local_batch = max(1, effective_batch_size(tc, len(x)) // ctx.world_size)
    generator = torch.Generator().manual_seed(tc.seed)
    return _Run(config, ctx, model, net, optimizer, x, y, local_batch, generator)


def _train_epoch(run: _Run, epoch: int) -> tuple[float, int, float]:
    """One pass over this rank's share of the rows -> (mean loss, rows of all ranks, seconds)."""
    tc, ctx, net, optimizer = run.config.train, run.ctx, run.net, run.optimizer
    x, y, local_batch = run.x, run.y, run.local_batch
    order = torch.randperm(len(x), generator=run.generator)
    order = order[ctx.rank :: ctx.world_size]
    steps = (len(order) + local_batch - 1) // local_batch
    net.train()
    bar = tqdm(
        total=len(order) * ctx.world_size,
        desc=f"epoch {epoch}",
        unit="rows",
        unit_scale=True,
        disable=not (tc.progress and ctx.is_main),
        mininterval=0.5,
        file=sys.stderr,
    )
    loss_sum = torch.zeros(())
    start = time.perf_counter()
    for step in range(steps):
        idx = order[step * local_batch : (step + 1) * local_batch]
        labels = y.index_select(0, idx)
        parts = aitm_loss(net(x.index_select(0, idx)), labels, run.config.loss.calibrator_weight)
        optimizer.zero_grad(set_to_none=True)
        parts.total.backward()
        optimizer.step()
        loss_sum += parts.total.detach()
        bar.update(len(idx) * ctx.world_size)
        if step % 50 == 0:
            rate = bar.n / max(time.perf_counter() - start, 1e-9)
            bar.set_postfix(loss=f"{parts.total.item():.4f}", rows_per_s=f"{rate:,.0f}")
    seconds = time.perf_counter() - start
    bar.close()
    return float(loss_sum) / max(steps, 1), len(order) * ctx.world_size, seconds


def _validate(
    run: _Run,
    schema: FeatureSchema,
    val_data: EncodedData,
    epoch: int,
    train_loss: float,
    rows: int,
    seconds: float,
) -> tuple[EpochStats, Evaluation]:
    """The epoch's statistics and its evaluation on the validation data (printed if progress)."""
    tc = run.config.train
    probs = predict_proba(run.model, val_data.x, tc.eval_batch_size)
    val_eval = evaluate(schema.tasks, val_data.y, probs, val_data.true_p)
    stats = EpochStats(
        epoch=epoch,
        train_loss=train_loss,
        val_auc=val_eval.auc,
        val_violation_rate=val_eval.violation_rate,
        seconds=seconds,
        samples_per_second=rows / seconds,
    )
    if run.ctx.is_main and tc.progress:
        aucs = " ".join(f"{t}={a:.4f}" for t, a in val_eval.auc.items())
        print(
            f"epoch {epoch}: loss {stats.train_loss:.4f}, {stats.samples_per_second:,.0f} "
            f"rows/s, val AUC {aucs}, violations {val_eval.violation_rate:.2%}",
            file=sys.stderr,
        )
    return stats, val_eval


class _Selection:
    """The kept epoch (best `selection_score`) and early stopping on the validation AUC sum."""

    def __init__(self, tc: TrainConfig) -> None:
        self.tc = tc
        self.best_score: tuple[bool, float] | None = None
        self.best_epoch, self.best_state, self.best_eval = 0, None, None
        self.best_auc_sum, self.epochs_without_gain = -np.inf, 0

    def observe(self, epoch: int, val_eval: Evaluation, model: nn.Module) -> bool:
        """Keep the epoch's weights if it ranks best so far; True when training should stop."""
        tc = self.tc
        score = selection_score(val_eval.auc, val_eval.violation_rate, tc.max_violation_rate)
        if self.best_score is None or score > self.best_score:
            self.best_score, self.best_epoch, self.best_eval = score, epoch, val_eval
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        # Stopping follows the AUC sum alone: an epoch over the violation bound is not kept,
        # but it still shows whether the model is improving.
        if score[1] > self.best_auc_sum:
            self.best_auc_sum, self.epochs_without_gain = score[1], 0
            return False
        self.epochs_without_gain += 1
        return self.epochs_without_gain > tc.patience

    def result(
        self, model: nn.Module, schema: FeatureSchema, config: Config, history: list[EpochStats]
    ) -> TrainResult:
        """The model restored to the kept epoch's weights, in eval mode."""
        if self.best_state is None or self.best_eval is None:
            raise RuntimeError("no epoch was observed")  # max_epochs >= 1: cannot happen
        model.load_state_dict(self.best_state)
        model.eval()
        return TrainResult(model, schema, config, self.best_epoch, self.best_eval, history)
