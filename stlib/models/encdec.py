"""The roadmap's simple transformer encoder-decoder (stage 1).

Attention runs over each sensor's time steps (sensors are a batch dimension). The decoder holds
out_steps learned horizon queries that attend to each other and cross-attend to the encoder
memory: one non-autoregressive pass. `use_denoising` corrupts the encoder input in training and
adds an auxiliary loss reconstructing the clean input.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import Block, PositionalEncoding, future_time_indices, time_indices


class STEmbedding(nn.Module):
    """Value projection + node, time-of-day, day-of-week and positional embeddings, summed to d_model."""

    def __init__(self, num_sensors: int, steps_per_day: int, length: int, d_model: int, pos_encoding: str,
                 adaptive_steps: int = 0, adaptive_dim: int = 0):
        super().__init__()
        self.spd = steps_per_day
        self.value = nn.Linear(1, d_model)
        self.node = nn.Embedding(num_sensors, d_model)
        self.tod = nn.Embedding(steps_per_day, d_model)
        self.dow = nn.Embedding(7, d_model)
        self.pos = PositionalEncoding(length, d_model, pos_encoding)
        # optional adaptive spatio-temporal embedding (STAEformer-style), one vector per (step, sensor)
        self.adaptive = None
        if adaptive_dim:
            self.adaptive = nn.Parameter(torch.empty(adaptive_steps, num_sensors, adaptive_dim))
            nn.init.xavier_uniform_(self.adaptive)
            self.adaptive_proj = nn.Linear(adaptive_dim, d_model, bias=False)

    def context(self, tod: torch.Tensor, dow: torch.Tensor, start: int) -> torch.Tensor:
        """Everything but the value: (B, L, N) time indices -> (B, L, N, D)."""
        L, N = tod.shape[1], tod.shape[2]
        e = self.tod(tod) + self.dow(dow)  # (B, L, N, D)
        e = e + self.node.weight[None, None] + self.pos(start, L)[None, :, None]
        if self.adaptive is not None and start == 0:
            e = e + self.adaptive_proj(self.adaptive[:L])[None]  # (1, L, N, D)
        return e

    def forward(self, x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        tod, dow = time_indices(x, self.spd)  # (B, T, N)
        return self.value(value) + self.context(tod, dow, 0)  # (B, T, N, D)


class EncoderDecoder(nn.Module):
    """Transformer encoder-decoder over time, per sensor (no spatial attention)."""

    def __init__(self, num_sensors: int, in_steps: int, out_steps: int, steps_per_day: int, null_z: float,
                 d_model=64, n_heads=4, encoder_depth=4, decoder_depth=2, ffn_mult=4, dropout=0.05,
                 pos_encoding="fixed", use_denoising=True, denoise_mask_ratio=0.15, denoise_noise_std=0.1,
                 adaptive_dim=0, encoder_axes=None, decoder_axes=None, attn_short=0, **_):
        super().__init__()
        if decoder_depth < 1:
            raise ValueError("encdec needs model.decoder_depth >= 1")
        self.in_steps, self.out_steps, self.spd = in_steps, out_steps, steps_per_day
        # the axis each block attends over: 1 = time (each sensor over its steps), 2 = sensors
        self.encoder_axes = list(encoder_axes or [1] * encoder_depth)
        self.decoder_axes = list(decoder_axes or [1] * decoder_depth)
        self.null_z = null_z  # the z-score of a missing (0) value
        self.use_denoising, self.mask_ratio, self.noise_std = use_denoising, denoise_mask_ratio, denoise_noise_std
        self.embed = STEmbedding(num_sensors, steps_per_day, in_steps + out_steps, d_model, pos_encoding,
                                 in_steps, adaptive_dim)
        self.queries = nn.Parameter(torch.randn(out_steps, d_model) * 0.02)  # one learned query per horizon
        self.encoder = nn.ModuleList(Block(d_model, n_heads, ffn_mult, dropout, short_attn=attn_short)
                                     for _ in range(encoder_depth))
        self.decoder = nn.ModuleList(Block(d_model, n_heads, ffn_mult, dropout, cross=True, short_attn=attn_short)
                                     for _ in range(decoder_depth))
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, 1)
        self.recon = nn.Linear(d_model, 1) if use_denoising else None

    def corrupt(self, value: torch.Tensor) -> torch.Tensor:
        """Denoising input: mask a share of steps to the mean (z = 0) and add Gaussian noise."""
        keep = torch.rand_like(value) >= self.mask_ratio
        return torch.where(keep, value, torch.zeros_like(value)) + torch.randn_like(value) * self.noise_std

    def encode(self, x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        h = self.embed(x, value)  # (B, T, N, D)
        for blk, axis in zip(self.encoder, self.encoder_axes):
            h = blk(h, axis=axis)  # (B, T, N, D) over time or over sensors
        return h

    def decode(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        tod, dow = future_time_indices(x, self.spd, self.out_steps)  # (B, out, N)
        q = self.queries[None, :, None] + self.embed.context(tod, dow, self.in_steps)  # (B, out, N, D)
        for blk, axis in zip(self.decoder, self.decoder_axes):
            q = blk(q, axis=axis, memory=memory)  # queries attend along `axis`, then to the memory over time
        return self.head(self.ln(q))  # (B, out, N, 1)

    def forward(self, x: torch.Tensor):
        value = x[..., :1]  # (B, T, N, 1) z-scored
        denoise = self.training and self.use_denoising
        memory = self.encode(x, self.corrupt(value) if denoise else value)  # (B, T, N, D)
        pred = self.decode(x, memory)  # (B, out, N, 1)
        if not denoise:
            return pred
        recon = self.recon(memory)  # (B, T, N, 1) reconstruct the clean input
        observed = (value != self.null_z).to(value.dtype)
        aux = ((recon - value).abs() * observed).sum() / observed.sum().clamp_min(1)
        return pred, aux
