"""Reference baselines without weights to train: last value and historical average.

All models map x (B, in, N, 3) [z-scored value, time of day, day of week] to a z-scored forecast
(B, out, N, 1); the trainer turns it back into original units.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn as nn

from ..config import ModelOptions, register
from .layers import future_time_indices


class LastValue(nn.Module):
    """Repeat the last observed step over the whole horizon."""

    def __init__(self, out_steps: int):
        super().__init__()
        self.out_steps = out_steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, -1:, :, :1].expand(-1, self.out_steps, -1, -1)  # (B, out, N, 1)


def _training_sums(ds) -> tuple[np.ndarray, np.ndarray]:
    """The sum and the count of the observed z-scored training values per day of week, time of day and sensor:
    two (7, steps_per_day, N) arrays."""
    rows = ds.train_rows
    z = ds.normalize(ds.target[rows])  # (R, N)
    observed = ds.target[rows] != 0
    total = np.zeros((7, ds.steps_per_day, z.shape[1]))
    count = np.zeros_like(total)
    np.add.at(total, (ds.day_of_week[rows], ds.time_of_day[rows]), np.where(observed, z, 0.0))
    np.add.at(count, (ds.day_of_week[rows], ds.time_of_day[rows]), observed)
    return total, count


def _mean(total: np.ndarray, count: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    return np.where(count > 0, total / np.maximum(count, 1), fallback)


def training_profile(ds, days: str = "all") -> np.ndarray:
    """The z-scored mean of the training rows per (day of week,) time of day and sensor, missing values excluded.

    days: "all" -> (1, spd, N), every training day; "weekday" -> (7, spd, N), the days of that weekday. Slots never
    seen fall back to the time-of-day mean over all days, then to the sensor mean."""
    total, count = _training_sums(ds)
    sensor = total.sum((0, 1)) / np.maximum(count.sum((0, 1)), 1)  # (N,)
    every = _mean(total.sum(0), count.sum(0), sensor[None])  # (spd, N)
    if days == "all":
        return every[None]
    if days == "weekday":
        return _mean(total, count, every[None])
    raise ValueError(f"days must be all or weekday, got {days!r}")


class HistoricalAverage(nn.Module):
    """Mean of the training rows per (day of week,) time of day and sensor, missing values excluded."""

    def __init__(self, ds, by_weekday: bool = True):
        super().__init__()
        days = "weekday" if by_weekday else "all"
        self.register_buffer("profile", torch.as_tensor(training_profile(ds, days), dtype=torch.float32))
        self.by_weekday, self.spd, self.out_steps = by_weekday, ds.steps_per_day, ds.out_steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tod, dow = future_time_indices(x, self.spd, self.out_steps)  # (B, out, N)
        if not self.by_weekday:
            dow = torch.zeros_like(dow)
        node = torch.arange(x.shape[2], device=x.device).view(1, 1, -1).expand_as(tod)
        return self.profile[dow, tod, node].unsqueeze(-1)  # (B, out, N, 1)


@register
class LastValueOptions(ModelOptions):
    name: Literal["last_value"] = "last_value"
    trains = False

    def build(self, ds):
        return LastValue(ds.out_steps)


@register
class HistoricalAverageOptions(ModelOptions):
    name: Literal["historical_average"] = "historical_average"
    trains = False
    by_weekday: bool = True  # one profile per day of the week, else one for all days

    def build(self, ds):
        return HistoricalAverage(ds, self.by_weekday)
