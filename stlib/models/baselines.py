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


def training_profile(ds, by_weekday: bool = False) -> np.ndarray:
    """The z-scored mean of the training rows per (day of week,) time of day and sensor, missing values excluded:
    (7 or 1, steps_per_day, N). Slots never seen in training fall back to the time-of-day mean, then to the
    sensor mean."""
    rows = ds.train_rows
    z = ds.normalize(ds.target[rows])  # (R, N)
    observed = ds.target[rows] != 0
    tod, dow = ds.time_of_day[rows], ds.day_of_week[rows] if by_weekday else np.zeros(z.shape[0], np.int64)
    days, spd = (7 if by_weekday else 1), ds.steps_per_day
    total = np.zeros((days, spd, z.shape[1]))
    count = np.zeros_like(total)
    np.add.at(total, (dow, tod), np.where(observed, z, 0.0))
    np.add.at(count, (dow, tod), observed)
    tod_mean = total.sum(0) / np.maximum(count.sum(0), 1)  # (spd, N)
    sensor_mean = np.where(observed, z, 0).sum(0) / np.maximum(observed.sum(0), 1)  # (N,)
    tod_mean = np.where(count.sum(0) > 0, tod_mean, sensor_mean)
    return np.where(count > 0, total / np.maximum(count, 1), tod_mean[None])


def profile_window(profile: torch.Tensor, x: torch.Tensor, steps_per_day: int, out_steps: int) -> torch.Tensor:
    """Each sensor's training profile (spd, N) at the input steps and the forecast steps of x (B, T, N, 3):
    (B, N, T + out)."""
    tod = torch.cat([time_indices(x, steps_per_day)[0], future_time_indices(x, steps_per_day, out_steps)[0]], 1)
    node = torch.arange(x.shape[2], device=x.device).expand_as(tod)  # (B, T + out, N)
    return profile[tod, node].transpose(1, 2)


class HistoricalAverage(nn.Module):
    """Mean of the training rows per (day of week,) time of day and sensor, missing values excluded."""

    def __init__(self, ds, by_weekday: bool = True):
        super().__init__()
        self.register_buffer("profile", torch.as_tensor(training_profile(ds, by_weekday), dtype=torch.float32))
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

    `profile` (steps_per_day, N), z-scored: each sensor's mean day in the training rows (training_profile). Given
    one, its values at the input and forecast steps are encoded like the series, one more part of the hidden
    state: what the sensor usually carries at these times, which the node and time-of-day embeddings can only
    learn as a sum."""

    def __init__(self, num_sensors: int, in_steps: int, out_steps: int, steps_per_day: int,
                 embed_dim: int = 32, num_layers: int = 3, dropout: float = 0.15, profile: torch.Tensor | None = None):
        super().__init__()
        self.spd, self.out_steps = steps_per_day, out_steps
        self.register_buffer("profile", profile, persistent=False)  # (spd, N) or None
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
