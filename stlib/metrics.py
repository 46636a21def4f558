"""Masked MAE / RMSE / MAPE ignoring zero (missing) targets, per horizon and averaged.

The BasicTS / STAEformer convention: an element counts only where its target is not `null_val`
(0 for PeMS flow). Averages are over all counted elements; with nothing counted the result is 0,
never NaN. MAPE is returned as a fraction by `masked_mape` and reported in percent by `forecast_metrics`.
"""

from __future__ import annotations

import torch


def is_gain(value: float, best: float, threshold: float = 1e-4) -> bool:
    """Whether a validation value beats the best so far by the relative threshold (ReduceLROnPlateau's rule, mode
    min): the one rule for a gain of the plateau schedule and the stage-2 stem. Early stopping counts instead the
    validations after the best checkpoint (any lower MAE resets it): with a moving average of the weights validation
    can fall by less than the threshold for tens of epochs and still gain after a later cut of the lr."""
    return value < best * (1 - threshold)


def _mask(target: torch.Tensor, null_val: float = 0.0) -> torch.Tensor:
    """1 where the target counts, 0 where it equals null_val (null_val=nan: where it is NaN)."""
    if null_val != null_val:  # NaN marks missing values: `target != nan` would be True everywhere
        return (~torch.isnan(target)).to(target.dtype)
    return (target != null_val).to(target.dtype)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor, dim=None) -> torch.Tensor:
    values = torch.where(mask > 0, values, torch.zeros_like(values))  # drop NaN/inf from masked cells
    total = (values * mask).sum(dim=dim) if dim is not None else (values * mask).sum()
    count = mask.sum(dim=dim) if dim is not None else mask.sum()
    return total / count.clamp_min(1)


def masked_mae(pred: torch.Tensor, target: torch.Tensor, null_val: float = 0.0, dim=None, mask=None) -> torch.Tensor:
    """Mean |pred - target| over elements whose target != null_val (or where `mask` is 1)."""
    return _masked_mean((pred - target).abs(), _mask(target, null_val) if mask is None else mask, dim)


def masked_rmse(pred: torch.Tensor, target: torch.Tensor, null_val: float = 0.0, dim=None) -> torch.Tensor:
    """sqrt of the mean squared error over elements whose target != null_val."""
    return _masked_mean((pred - target) ** 2, _mask(target, null_val), dim).sqrt()


def masked_mape(pred: torch.Tensor, target: torch.Tensor, null_val: float = 0.0, dim=None) -> torch.Tensor:
    """Mean |pred - target| / |target| (a fraction) over elements whose target != null_val."""
    mask = _mask(target, null_val)
    safe = torch.where(mask > 0, target, torch.ones_like(target))
    return _masked_mean((pred - target).abs() / safe.abs(), mask, dim)


class MetricSums:
    """Running per-horizon sums so a whole split is scored without keeping every prediction."""

    def __init__(self, horizons: int):
        self.abs = torch.zeros(horizons, dtype=torch.float64)
        self.sq = torch.zeros(horizons, dtype=torch.float64)
        self.ape = torch.zeros(horizons, dtype=torch.float64)
        self.count = torch.zeros(horizons, dtype=torch.float64)

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor, null_val: float = 0.0) -> None:
        """pred, target: (B, H, N, C) in original units."""
        pred, target = pred.detach().double().cpu(), target.detach().double().cpu()
        mask = _mask(target, null_val)
        err = torch.where(mask > 0, pred - target, torch.zeros_like(pred))
        safe = torch.where(mask > 0, target, torch.ones_like(target))
        dims = [d for d in range(pred.dim()) if d != 1]  # all but the horizon axis
        self.abs += err.abs().sum(dims)
        self.sq += (err**2).sum(dims)
        self.ape += (err.abs() / safe.abs()).sum(dims)
        self.count += mask.sum(dims)

    def result(self, report=(3, 6, 12)) -> dict:
        """{'mae', 'rmse', 'mape' (percent), 'by_horizon': {'3': {...}, ...}} averaged over all horizons."""

        def pack(a, s, p, c):
            c = max(float(c), 1.0)
            return {"mae": float(a) / c, "rmse": (float(s) / c) ** 0.5, "mape": 100.0 * float(p) / c}

        out = pack(self.abs.sum(), self.sq.sum(), self.ape.sum(), self.count.sum())
        out["by_horizon"] = {
            str(h): pack(self.abs[h - 1], self.sq[h - 1], self.ape[h - 1], self.count[h - 1])
            for h in report
            if h <= len(self.abs)
        }
        out["mae_per_step"] = [float(a) / max(float(c), 1.0) for a, c in zip(self.abs, self.count)]
        return out


def forecast_metrics(pred: torch.Tensor, target: torch.Tensor, null_val: float = 0.0, report=(3, 6, 12)) -> dict:
    """Metrics of a whole (B, H, N, C) prediction: averaged over horizons and at `report` horizons."""
    sums = MetricSums(pred.shape[1])
    sums.update(torch.as_tensor(pred), torch.as_tensor(target), null_val)
    return sums.result(report)
