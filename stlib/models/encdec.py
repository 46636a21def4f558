"""The roadmap's transformer encoder-decoder (stage 1): attention over each sensor's time steps, sensors a batch axis.

The decoder's out_steps learned horizon queries attend to each other and cross-attend to the encoder memory, in one
non-autoregressive pass; `head="linear"` replaces it by STAEformer's output (each sensor's tokens, flattened, map to
the horizon). `patch` > 1 embeds each run of `patch` steps as one token. `use_denoising` corrupts the encoder input in
training and adds an auxiliary loss reconstructing the clean input.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import Field

from ..config import ModelOptions, register
from .layers import Block, Dropout, PositionalEncoding, future_time_indices, time_indices


@register
class EncDecOptions(ModelOptions):
    name: Literal["encdec"] = "encdec"
    d_model: int = Field(64, ge=1)
    n_heads: int = Field(4, ge=1)
    encoder_depth: int = Field(4, ge=1)
    decoder_depth: int = Field(2, ge=0)
    ffn_mult: int = Field(4, ge=1)
    dropout: float = Field(0.05, ge=0, le=0.95)
    pos_encoding: Literal["fixed", "learned"] = "fixed"
    # denoising: mask this share of the input steps, add this noise, reconstruct the clean input at this weight
    use_denoising: bool = True
    denoise_mask_ratio: float = Field(0.15, ge=0, le=0.95)
    denoise_noise_std: float = Field(0.1, ge=0)
    denoise_weight: float = Field(0.1, ge=0)
    # sequences of at most this many steps attend by explicit matmuls instead of the fused kernels (which pad a
    # 12-step sequence to a 64- or 128-row tile): 1.22x on an H100 for stage 1, slower on CPU; 0 = always fused
    attn_short: int = Field(0, ge=0)
    patch: int = Field(1, ge=1)  # time steps per token: T input steps become T / patch tokens
    # decoder: horizon queries attend to each other and to the encoder memory (the roadmap's encoder-decoder);
    # linear: each sensor's tokens, flattened, map to the horizon by one linear layer (STAEformer's output)
    head: Literal["decoder", "linear"] = "decoder"
    # sum: value, node, time and position embeddings summed at d_model; stid: STID's encoding of each sensor
    # (embed_dim parts refined by stem_layers residual MLPs) in every token, the blocks starting as the identity
    embedding: Literal["sum", "stid"] = "sum"
    embed_dim: int = Field(32, ge=1)
    stem_layers: int = Field(2, ge=0)

    def check(self, cfg) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"model.d_model ({self.d_model}) must be divisible by model.n_heads ({self.n_heads})")
        if self.head == "decoder" and self.decoder_depth < 1:
            raise ValueError("model.decoder_depth must be >= 1 with model.head: decoder (or set model.head: linear)")
        d = cfg.data
        if (steps := len(d.lags) * (d.in_steps + d.out_steps) + d.in_steps) % self.patch:  # the Dataset's input_steps
            lagged = f" and {len(d.lags)} lagged windows of data.lags" if d.lags else ""
            raise ValueError(
                f"model.patch ({self.patch}) must divide data.in_steps ({d.in_steps}){lagged}: {steps} steps"
            )

    def build(self, ds):
        return EncoderDecoder(self, ds)


def to_patches(value: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, T, N, 1) -> (B, T / patch, N, patch): token i holds steps i*patch .. i*patch + patch - 1."""
    B, T, N, _ = value.shape
    return value[..., 0].reshape(B, T // patch, patch, N).transpose(2, 3)


def from_patches(tokens: torch.Tensor) -> torch.Tensor:
    """The inverse of to_patches: (B, P, N, patch) -> (B, P * patch, N, 1)."""
    B, P, N, p = tokens.shape
    return tokens.transpose(2, 3).reshape(B, P * p, N, 1)


class STEmbedding(nn.Module):
    """Value projection + node, time-of-day, day-of-week and positional embeddings, summed to d_model."""

    def __init__(self, o: EncDecOptions, ds):
        super().__init__()
        D, tokens = o.d_model, ds.input_steps // o.patch
        self.spd, self.patch = ds.steps_per_day, o.patch
        self.value = nn.Linear(o.patch, D)  # one token per run of `patch` steps
        self.node = nn.Embedding(ds.num_sensors, D)
        self.tod = nn.Embedding(ds.steps_per_day, D)
        self.dow = nn.Embedding(7, D)
        self.pos = PositionalEncoding(tokens + ds.out_steps, D, o.pos_encoding)
        self.adaptive, A = None, getattr(o, "adaptive_dim", 0)  # STAEformer's, one vector per (token, sensor)
        if A:
            self.adaptive = nn.Parameter(torch.empty(tokens, ds.num_sensors, A))
            nn.init.xavier_uniform_(self.adaptive)
            self.adaptive_proj = nn.Linear(A, D, bias=False)

    def context(self, tod: torch.Tensor, dow: torch.Tensor, start: int) -> torch.Tensor:
        """Everything but the value: (B, L, N) time indices -> (B, L, N, D)."""
        L = tod.shape[1]
        e = self.tod(tod) + self.dow(dow) + self.node.weight[None, None] + self.pos(start, L)[None, :, None]
        if self.adaptive is not None and start == 0:
            e = e + self.adaptive_proj(self.adaptive[:L])[None]  # (1, L, N, D)
        return e  # (B, L, N, D)

    def forward(self, x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """x (B, T, N, 3), value (B, T, N, 1) -> (B, P, N, D) with P = T / patch tokens."""
        p = self.patch
        tod, dow = time_indices(x[:, p - 1 :: p], self.spd)  # (B, P, N) of each patch's last step
        return self.value(to_patches(value, p)) + self.context(tod, dow, 0)  # (B, P, N, D)


class STIDEmbedding(nn.Module):
    """STID's encoding, then one token per patch.

    Per sensor, as STID: [whole-window series, node, time of day, day of week], embed_dim E each, concatenated to 4E
    and refined by `stem_layers` residual MLPs: the sensor's STID hidden state, computed once per sensor (STID's
    cost). Each of its P = T / patch tokens is that state beside the token's own values and time of day (and an
    optional adaptive embedding), projected to d_model, plus the token's position. With the blocks' residual
    branches starting at zero and a linear head, the model starts as STID: attention can only add to it.
    """

    def __init__(self, o: EncDecOptions, ds):
        super().__init__()
        E, tokens = o.embed_dim, ds.input_steps // o.patch
        self.spd, self.patch = ds.steps_per_day, o.patch
        self.series = nn.Linear(ds.input_steps, E)
        self.node = nn.Parameter(torch.empty(ds.num_sensors, E))
        self.tod = nn.Parameter(torch.empty(ds.steps_per_day, E))
        self.dow = nn.Parameter(torch.empty(7, E))
        for t in (self.node, self.tod, self.dow):
            nn.init.xavier_uniform_(t)
        self.state_dim = H = 4 * E
        self.stem = nn.ModuleList(
            nn.Sequential(nn.Linear(H, H), nn.ReLU(), Dropout(o.dropout), nn.Linear(H, H)) for _ in range(o.stem_layers)
        )
        self.value = nn.Linear(o.patch, E)  # each token's own steps
        self.adaptive, A = None, getattr(o, "adaptive_dim", 0)  # STAEformer's (a stage-2 option)
        if A:  # one vector per (token, sensor)
            self.adaptive = nn.Parameter(torch.empty(tokens, ds.num_sensors, A))
            nn.init.xavier_uniform_(self.adaptive)
        self.proj = nn.Linear(H + 2 * E + A, o.d_model)
        # decoder queries (head="decoder"): the future steps' node, time of day and day of week, and their positions
        self.future = nn.Linear(3 * E, o.d_model)
        self.pos = PositionalEncoding(tokens + ds.out_steps, o.d_model, o.pos_encoding)

    def context(self, tod: torch.Tensor, dow: torch.Tensor, start: int) -> torch.Tensor:
        """(B, L, N) time indices of the future steps -> (B, L, N, D) decoder query context."""
        B, L, N = tod.shape
        e = torch.cat([self.node.expand(B, L, -1, -1), F.embedding(tod, self.tod), F.embedding(dow, self.dow)], -1)
        return self.future(e) + self.pos(start, L)[None, :, None]

    def forward(self, x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """x (B, T, N, 3), value (B, T, N, 1) -> (B, P, N, D) with P = T / patch tokens."""
        return self.tokens(x, value, self.state(x, value))

    def state(self, x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """STID's hidden state of each sensor: x (B, T, N, 3), value (B, T, N, 1) -> (B, N, H)."""
        series = self.series(value[..., 0].transpose(1, 2))  # (B, N, E) from each sensor's T steps
        B, dt = series.shape[0], series.dtype  # one dtype for the hidden stream (bf16 under autocast), as STID
        tod, dow = time_indices(x[:, -1], self.spd)  # (B, N) of the last input step
        tables = [
            self.node.to(dt).expand(B, -1, -1),
            F.embedding(tod, self.tod.to(dt)),
            F.embedding(dow, self.dow.to(dt)),
        ]
        h = torch.cat([series, *tables], dim=-1)  # (B, N, 4E)
        for layer in self.stem:
            h = h + layer(h)  # STID's residual MLP, once per sensor
        return h  # (B, N, H)

    def tokens(self, x: torch.Tensor, value: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """The P tokens of each sensor from its state h (B, N, H) -> (B, P, N, D)."""
        p, dt, B = self.patch, h.dtype, h.shape[0]
        patches = self.value(to_patches(value, p))  # (B, P, N, E)
        P = patches.shape[1]
        token_tod, _ = time_indices(x[:, p - 1 :: p], self.spd)  # (B, P, N) of each patch's last step
        parts = [h[:, None].expand(-1, P, -1, -1), patches.to(dt), F.embedding(token_tod, self.tod.to(dt))]
        if self.adaptive is not None:
            parts.append(self.adaptive.to(dt).expand(B, -1, -1, -1))  # (B, P, N, A)
        return self.proj(torch.cat(parts, dim=-1)) + self.pos(0, P)[None, :, None]  # (B, P, N, D)


class EncoderDecoder(nn.Module):
    """Transformer encoder-decoder over time, per sensor; encoder_axes / decoder_axes: the axis each block attends
    over (1 = time, 2 = sensors; the stage-2 model sets them)."""

    def __init__(self, o: EncDecOptions, ds, encoder_axes=None, decoder_axes=None):
        super().__init__()
        decoder_depth = o.decoder_depth if o.head == "decoder" else 0
        self.in_steps, self.out_steps, self.spd = ds.input_steps, ds.out_steps, ds.steps_per_day
        self.tokens, self.head_kind = ds.input_steps // o.patch, o.head  # tokens per sensor
        self.encoder_axes = list(encoder_axes or [1] * o.encoder_depth)
        self.decoder_axes = list(decoder_axes or [1] * decoder_depth)[:decoder_depth]
        self.null_z = float(ds.normalize(0.0))  # the z-score of a missing (0) value
        self.use_denoising, self.mask_ratio, self.noise_std = o.use_denoising, o.denoise_mask_ratio, o.denoise_noise_std
        self.denoise_weight = o.denoise_weight
        self.embed = (STIDEmbedding if o.embedding == "stid" else STEmbedding)(o, ds)
        D = o.d_model
        # one learned query per horizon (decoder head)
        self.queries = nn.Parameter(torch.randn(ds.out_steps, D) * 0.02) if o.head == "decoder" else None
        block = dict(n_heads=o.n_heads, ffn_mult=o.ffn_mult, dropout=o.dropout, short_attn=o.attn_short)
        self.encoder = nn.ModuleList(Block(D, **block) for _ in range(o.encoder_depth))
        self.decoder = nn.ModuleList(Block(D, cross=True, **block) for _ in range(decoder_depth))
        self.ln = nn.LayerNorm(D)
        # decoder: each horizon query -> its value; linear: a sensor's P tokens x D features -> the horizon
        self.head = nn.Linear(D, 1) if o.head == "decoder" else nn.Linear(self.tokens * D, ds.out_steps)
        self.recon = nn.Linear(D, o.patch) if o.use_denoising else None  # each token -> its patch's values
        if o.embedding == "stid":  # every residual branch starts at zero: the model starts as the STID encoding
            for blk in [*self.encoder, *self.decoder]:
                blk.zero_residuals()

    def corrupt(self, value: torch.Tensor) -> torch.Tensor:
        """Denoising input: mask a share of steps to the mean (z = 0) and add Gaussian noise."""
        keep = torch.rand_like(value) >= self.mask_ratio
        return torch.where(keep, value, torch.zeros_like(value)) + torch.randn_like(value) * self.noise_std

    def encode(self, x: torch.Tensor, value: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        # (B, P, N, D), P = T / patch tokens; from a given STID state (B, N, H) when there is one
        h = self.embed(x, value) if state is None else self.embed.tokens(x, value, state)
        for blk, axis in zip(self.encoder, self.encoder_axes):
            h = blk(h, axis=axis)  # (B, P, N, D) over time or over sensors
        return h

    def decode(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        if self.head_kind == "linear":
            B, P, N, D = memory.shape
            flat = self.ln(memory).transpose(1, 2).reshape(B, N, P * D)  # (B, N, P*D)
            return self.head(flat).transpose(1, 2).unsqueeze(-1)  # (B, out, N, 1)
        tod, dow = future_time_indices(x, self.spd, self.out_steps)  # (B, out, N)
        q = self.queries[None, :, None] + self.embed.context(tod, dow, self.tokens)  # (B, out, N, D)
        for blk, axis in zip(self.decoder, self.decoder_axes):
            q = blk(q, axis=axis, memory=memory)  # queries attend along `axis`, then to the memory over time
        return self.head(self.ln(q))  # (B, out, N, 1)

    def inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(clean value, what the encoder sees): (B, T, N, 1) z-scored, corrupted in training with denoising."""
        value = x[..., :1]
        return value, self.corrupt(value) if self.training and self.use_denoising else value

    def output(self, pred: torch.Tensor, memory: torch.Tensor, value: torch.Tensor):
        """The forecast; in training with denoising, (forecast, the weighted reconstruction loss of the input)."""
        if not (self.training and self.use_denoising):
            return pred
        recon = from_patches(self.recon(memory))  # (B, T, N, 1) reconstruct the clean input
        observed = (value != self.null_z).to(value.dtype)
        aux = ((recon - value).abs() * observed).sum() / observed.sum().clamp_min(1)
        return pred, self.denoise_weight * aux.float()

    def forward(self, x: torch.Tensor):
        value, seen = self.inputs(x)
        memory = self.encode(x, seen)  # (B, P, N, D)
        return self.output(self.decode(x, memory), memory, value)  # (B, out, N, 1)
