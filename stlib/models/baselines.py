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


class HistoricalAverage(nn.Module):
    """Mean of the training rows per (day of week,) time of day and sensor, missing values excluded."""

    def __init__(self, ds, by_weekday: bool = True):
        super().__init__()
        rows = ds.train_rows
        z = ds.normalize(ds.target[rows])  # (R, N)
        observed = ds.target[rows] != 0
        tod, dow = ds.time_of_day[rows], ds.day_of_week[rows] if by_weekday else np.zeros(z.shape[0], np.int64)
        days, spd = (7 if by_weekday else 1), ds.steps_per_day
        total = np.zeros((days, spd, z.shape[1]))
        count = np.zeros_like(total)
        np.add.at(total, (dow, tod), np.where(observed, z, 0.0))
        np.add.at(count, (dow, tod), observed)
        # slots never seen in training fall back to the time-of-day mean, then to the sensor mean
        tod_mean = total.sum(0) / np.maximum(count.sum(0), 1)  # (spd, N)
        sensor_mean = np.where(observed, z, 0).sum(0) / np.maximum(observed.sum(0), 1)  # (N,)
        tod_mean = np.where(count.sum(0) > 0, tod_mean, sensor_mean)
        profile = np.where(count > 0, total / np.maximum(count, 1), tod_mean[None])
        self.register_buffer("profile", torch.as_tensor(profile, dtype=torch.float32))  # (days, spd, N)
        self.by_weekday, self.spd, self.out_steps = by_weekday, spd, ds.out_steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tod, dow = future_time_indices(x, self.spd, self.out_steps)  # (B, out, N)
        if not self.by_weekday:
            dow = torch.zeros_like(dow)
        node = torch.arange(x.shape[2], device=x.device).view(1, 1, -1).expand_as(tod)
        return self.profile[dow, tod, node].unsqueeze(-1)  # (B, out, N, 1)


class STID(nn.Module):
    """STID-style MLP (after Shao et al., CIKM 2022): series encoding + node, time-of-day and
    day-of-week embeddings, concatenated and passed through residual MLP layers."""

    def __init__(self, num_sensors: int, in_steps: int, out_steps: int, steps_per_day: int,
                 embed_dim: int = 32, num_layers: int = 3, dropout: float = 0.15):
        super().__init__()
        self.spd = steps_per_day
        self.series = nn.Linear(in_steps, embed_dim)
        self.node = nn.Parameter(torch.empty(num_sensors, embed_dim))
        self.tod = nn.Parameter(torch.empty(steps_per_day, embed_dim))
        self.dow = nn.Parameter(torch.empty(7, embed_dim))
        for p in (self.node, self.tod, self.dow):
            nn.init.xavier_uniform_(p)
        hidden = 4 * embed_dim
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
        h = torch.cat([
            series,
            self.node.to(dt).expand(B, -1, -1),  # (B, N, E)
            F.embedding(tod, self.tod.to(dt)),  # (B, N, E); F.embedding's backward is cheaper than indexing's
            F.embedding(dow, self.dow.to(dt)),  # (B, N, E)
        ], dim=-1)  # (B, N, 4E)
        for layer in self.layers:
            h = h + layer(h)  # residual MLP
        return self.head(h).transpose(1, 2).unsqueeze(-1)  # (B, out, N, 1)
