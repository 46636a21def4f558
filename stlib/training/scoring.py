"""What training minimises and how a model is scored: the masked loss, the masked metrics of a split, and the
weight average (train.ema) that may be scored in place of the weights."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch.optim.swa_utils import AveragedModel

from ..data import Dataset
from ..metrics import MetricSums, masked_mae
from .distributed import Dist, all_reduce_sum, rank_slice


def compute_loss(out, y: torch.Tensor, mean: float, std: float, tc) -> torch.Tensor:
    """Masked MAE on z-scored values (missing = zero targets carry none), plus any auxiliary loss. out: the model's
    (B, out, N, 1) z-scored forecast, or (forecast, weighted auxiliary loss); y: (B, out, N, 1) original units."""
    pred, aux = out if isinstance(out, tuple) else (out, None)
    loss = masked_mae(pred.float(), (y - mean) / std, mask=(y != 0).to(torch.float32))
    return loss if aux is None else loss + aux.float()


@torch.no_grad()
def evaluate(
    model, batches, ds: Dataset, autocast, dist: Dist | None = None, device=None, mark_steps: bool = False
) -> dict:
    """Masked metrics of a model over a batch iterable, in original units (under DDP: every rank's shard).
    mark_steps: the model replays CUDA graphs (compile reduce-overhead): mark each batch a new step."""
    dist = dist or Dist()
    model.eval()
    sums = MetricSums(ds.out_steps)
    for x, y in batches:  # x (B, in, N, 3), y (B, out, N, 1) original units
        x, y, _ = rank_slice(x, y, dist)
        if mark_steps:
            torch.compiler.cudagraph_mark_step_begin()
        with autocast:
            pred = model(x)  # (B, out, N, 1) z-scored
        sums.update(ds.denormalize(pred.float()), y)
    if dist.world > 1:  # the sums over every rank's shard are the sums over the whole split
        total = all_reduce_sum(torch.stack([sums.abs, sums.sq, sums.ape, sums.count]), dist, device)  # (4, H)
        sums.abs, sums.sq, sums.ape, sums.count = total.unbind()
    return sums.result()


def ema_model(model: nn.Module, decay: float) -> AveragedModel:
    """A moving average of the model's weights and buffers, updated after each optimizer step. Its decay warms up as
    min(decay, (1 + n) / (10 + n)) over n updates: it forgets the random initial weights within tens of steps, not
    the 1 / (1 - decay) a fixed decay would need."""

    def avg(averaged: torch.Tensor, current: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        if not averaged.is_floating_point():  # an index table (e.g. STID's day classes) is copied, never averaged:
            return current  # 6 * d + 6 * (1 - d) can round to 5.999..., which the integer copy truncates to 5
        d = ema_warmup_decay(n.double()).clamp(max=decay)  # on n's device: no host sync per parameter
        return averaged * d + current * (1.0 - d)

    device = next(model.parameters()).device  # its update count beside the weights: no copy per parameter
    return AveragedModel(model, device=device, avg_fn=avg, use_buffers=True)


def ema_warmup_decay(n: float) -> float:
    """ema_model's warm-up: the highest decay the average uses at its n-th update."""
    return (1.0 + n) / (10.0 + n)


def ema_warmup_updates(decay: float) -> int:
    """The updates ema_model's warm-up takes to reach decay (ema_warmup_decay's inverse); before that the warm-up
    sets the average's decay, whatever decay says (0.999: 8,990 updates; 0.9995: 17,990)."""
    return max(0, math.ceil((10 * decay - 1) / (1 - decay) - 1e-6))
