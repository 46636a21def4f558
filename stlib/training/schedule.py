"""The learning rate as one pure function of where training stands, matching torch's MultiStepLR (stepped at epoch
ends), CosineAnnealingLR (per step, down to train.min_lr, or over train.time_budget_s when the clock is further
along) and ReduceLROnPlateau (Plateau, the one schedule with state); a linear warmup multiplies any of them."""

from __future__ import annotations

import math

from ..metrics import is_gain


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Linear warmup: the lr multiplier for optimizer step `step` (0-based)."""
    return 1.0 if warmup_steps <= 0 else min(1.0, (step + 1) / warmup_steps)


def cosine_factor(step: int, total: int, floor: float, time_frac: float = 0.0) -> float:
    """Cosine decay from 1 to `floor` over `total` steps, or over the time budget when time_frac (its share spent)
    is further along, so a budgeted run anneals fully by its deadline ("budgeted training")."""
    t = min(max(step / max(total, 1), time_frac), 1.0)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))


def learning_rate(
    tc, step: int, epoch: int, steps_per_epoch: int, plateau_lr: float | None = None, time_frac: float = 0.0
) -> float:
    """The lr of optimizer step `step` (0-based, over the run) of epoch `epoch` (1-based) for TrainConfig tc;
    plateau_lr: the plateau rule's lr; time_frac: the share of train.time_budget_s spent. Milestone m cuts from
    epoch m + 1."""
    lr = plateau_lr if tc.scheduler == "plateau" and plateau_lr is not None else tc.lr
    if tc.scheduler == "multistep":
        lr *= tc.gamma ** sum(m <= epoch - 1 for m in tc.milestones)
    lr *= warmup_factor(step, tc.warmup_steps)
    if tc.scheduler == "cosine":
        lr *= cosine_factor(step, steps_per_epoch * tc.epochs, tc.min_lr / tc.lr, time_frac)
    return lr


def accumulation(i: int, n_batches: int, k: int) -> tuple[int, bool]:
    """Gradient accumulation over k micro-batches: (micro-batches in the optimizer step of batch i (0-based) of an
    epoch of n_batches, whether batch i ends that step). An epoch's last step may hold fewer."""
    return min(k, n_batches - i // k * k), (i + 1) % k == 0 or i + 1 == n_batches


class Plateau:
    """ReduceLROnPlateau semantics (mode min, relative threshold 1e-4), counted in validations."""

    def __init__(self, patience: int, factor: float, min_lr: float, threshold: float = 1e-4):
        self.patience, self.factor, self.min_lr, self.threshold = patience, factor, min_lr, threshold
        self.best, self.bad = math.inf, 0

    def step(self, metric: float, lr: float) -> float:
        """Record one validation metric; return the (possibly reduced) lr."""
        if is_gain(metric, self.best, self.threshold):
            self.best, self.bad = metric, 0
        else:
            self.bad += 1
        if self.bad > self.patience:
            self.bad = 0
            return max(lr * self.factor, self.min_lr)
        return lr
