"""STID (after Shao et al., CIKM 2022): the MLP baseline every stage is measured against."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import Field

from ..config import ModelOptions, register
from .layers import Dropout, time_indices


@register
class STIDOptions(ModelOptions):
    name: Literal["stid"] = "stid"
    embed_dim: int = Field(32, ge=1)  # each of the four parts of the hidden state
    num_layers: int = Field(3, ge=1)  # residual MLP layers
    dropout: float = Field(0.05, ge=0, le=0.95)

    def build(self, ds):
        return STID(
            ds.num_sensors, ds.in_steps, ds.out_steps, ds.steps_per_day, self.embed_dim, self.num_layers, self.dropout
        )


class STID(nn.Module):
    """STID-style MLP (after Shao et al., CIKM 2022): series encoding + node, time-of-day and
    day-of-week embeddings, concatenated and passed through residual MLP layers."""

    def __init__(
        self,
        num_sensors: int,
        in_steps: int,
        out_steps: int,
        steps_per_day: int,
        embed_dim: int = 32,
        num_layers: int = 3,
        dropout: float = 0.15,
    ):
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
            for _ in range(num_layers)
        )
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
        h = torch.cat(parts, dim=-1)  # (B, N, 4E)
        for layer in self.layers:
            h = h + layer(h)  # residual MLP
        return self.head(h).transpose(1, 2).unsqueeze(-1)  # (B, out, N, 1)
