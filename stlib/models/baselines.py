"""Reference baselines: last value, historical average, and an STID-style MLP.

All models map x (B, in, N, 3) [z-scored value, time of day, day of week] to a z-scored forecast
(B, out, N, 1); the trainer turns it back into original units.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import Dropout, future_time_indices, time_indices


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

    days: "all" -> (1, spd, N), every training day; "weekday" -> (7, spd, N), the days of that weekday (the
    historical average by weekday); "other" -> (7, spd, N), the days of every other weekday, so a training
    window's profile does not hold its own targets. Slots never seen (for "other": on no other weekday) fall back
    to the time-of-day mean over all days, then to the sensor mean."""
    total, count = _training_sums(ds)
    sensor = total.sum((0, 1)) / np.maximum(count.sum((0, 1)), 1)  # (N,)
    every = _mean(total.sum(0), count.sum(0), sensor[None])  # (spd, N)
    if days == "all":
        return every[None]
    if days == "weekday":
        return _mean(total, count, every[None])
    if days == "other":
        return _mean(total.sum(0)[None] - total, count.sum(0)[None] - count, every[None])
    raise ValueError(f"days must be all, weekday or other, got {days!r}")


def profile_window(profile: torch.Tensor, x: torch.Tensor, steps_per_day: int, out_steps: int) -> torch.Tensor:
    """The profile (D, spd, N) at the input and forecast steps of x (B, T, N, 3): (B, N, T + out). D = 7 reads
    each step's day of week, D = 1 the same day for all."""
    tod, dow = time_indices(x, steps_per_day)
    future_tod, future_dow = future_time_indices(x, steps_per_day, out_steps)
    tod, dow = torch.cat([tod, future_tod], 1), torch.cat([dow, future_dow], 1)  # (B, T + out, N)
    node = torch.arange(x.shape[2], device=x.device).expand_as(tod)
    return profile[dow if len(profile) == 7 else torch.zeros_like(dow), tod, node].transpose(1, 2)


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


class STID(nn.Module):
    """STID-style MLP (after Shao et al., CIKM 2022): series encoding + node, time-of-day and
    day-of-week embeddings, concatenated and passed through residual MLP layers.

    `profile` (1 or 7, steps_per_day, N), z-scored: each sensor's mean day in the training rows (training_profile).
    Given one, its values at the input and forecast steps are encoded like the series, one more part of the hidden
    state: what the sensor usually carries at these times, which the node and time-of-day embeddings can only
    learn as a sum."""

    def __init__(self, num_sensors: int, in_steps: int, out_steps: int, steps_per_day: int,
                 embed_dim: int = 32, num_layers: int = 3, dropout: float = 0.15, profile: torch.Tensor | None = None):
        super().__init__()
        self.spd, self.out_steps = steps_per_day, out_steps
        self.register_buffer("profile", profile, persistent=False)  # (1 or 7, spd, N) or None
        self.profile_enc = nn.Linear(in_steps + out_steps, embed_dim) if profile is not None else None
        self.series = nn.Linear(in_steps, embed_dim)
        self.node = nn.Parameter(torch.empty(num_sensors, embed_dim))
        self.tod = nn.Parameter(torch.empty(steps_per_day, embed_dim))
        self.dow = nn.Parameter(torch.empty(7, embed_dim))
        for p in (self.node, self.tod, self.dow):
            nn.init.xavier_uniform_(p)
        hidden = (4 + (profile is not None)) * embed_dim
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), Dropout(dropout), nn.Linear(hidden, hidden))
            for _ in range(num_layers))
        self.head = nn.Linear(hidden, out_steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, N, _ = x.shape
        tod, dow = time_indices(x[:, -1], self.spd)  # (B, N) each, of the last input step
        series = self.series(x[..., 0].transpose(1, 2))  # (B, N, E) from the N series of T steps
        # the tables follow the series' dtype (bf16 under autocast), so the hidden stream keeps one dtype:
        # a float32 stream would cast before every layer and add mixed dtypes after it, a large share of a CPU
        # step (docs/benchmarks.md)
        dt = series.dtype
        parts = [
            series,
            self.node.to(dt).expand(B, -1, -1),  # (B, N, E)
            F.embedding(tod, self.tod.to(dt)),  # (B, N, E); F.embedding's backward is cheaper than indexing's
            F.embedding(dow, self.dow.to(dt)),  # (B, N, E)
        ]
        if self.profile_enc is not None:  # (B, N, T + out) -> (B, N, E)
            parts.append(self.profile_enc(profile_window(self.profile, x, self.spd, self.out_steps)).to(dt))
        h = torch.cat(parts, dim=-1)  # (B, N, 4E [+ E])
        for layer in self.layers:
            h = h + layer(h)  # residual MLP
        return self.head(h).transpose(1, 2).unsqueeze(-1)  # (B, out, N, 1)
