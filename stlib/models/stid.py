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
        return STID(self, ds)


class STID(nn.Module):
    """Series encoding + node, time-of-day and day-of-week embeddings, concatenated, through residual MLP layers."""

    def __init__(self, o: STIDOptions, ds):
        super().__init__()
        self.spd, E = ds.steps_per_day, o.embed_dim
        self.series = nn.Linear(ds.input_steps, E)  # with data.lags: the lagged windows too
        self.node = nn.Parameter(torch.empty(ds.num_sensors, E))
        self.tod = nn.Parameter(torch.empty(ds.steps_per_day, E))
        self.dow = nn.Parameter(torch.empty(7, E))
        for p in (self.node, self.tod, self.dow):
            nn.init.xavier_uniform_(p)
        H = 4 * E
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Linear(H, H), nn.ReLU(), Dropout(o.dropout), nn.Linear(H, H)) for _ in range(o.num_layers)
        )
        self.head = nn.Linear(H, ds.out_steps)

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
