"""Shared building blocks: attention along one axis of (B, T, N, D), transformer blocks, embeddings."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


@torch.compiler.disable  # numpy inside: under torch.compile this is a clean graph break, not a trace attempt
def keep_mask(x: torch.Tensor, p: float) -> torch.Tensor:
    """Bernoulli(1 - p) keep mask shaped like x (CPU), 16 random bits per element; p exact to 2^-16.

    torch's CPU generators draw one Mersenne-twister call per element (bernoulli_) or per int64
    (random_), which makes the masks a large share of a small model's step on CPU. Here torch's
    generator draws one seed, and numpy's PCG64, far cheaper per bit, expands it into the bits, so
    torch's RNG state stays the one source of truth: manual_seed reproduces the masks and an exact
    resume restores them. The measured costs: docs/benchmarks.md.
    """
    n = x.numel()
    seed = int(torch.empty((), dtype=torch.int64).random_())
    bits = np.random.PCG64(seed).random_raw((n + 3) // 4)  # uint64: four uniform 16-bit lanes each
    lanes = torch.from_numpy(bits.view(np.int16))  # uniform over int16
    keep = lanes >= round(p * 65536) - 32768  # P(keep) = 1 - p
    return keep[:n].view(x.shape)


class Dropout(nn.Module):
    """Inverted dropout, as nn.Dropout; on CPU the mask comes from keep_mask (much cheaper than bernoulli_).

    Elsewhere (CUDA) it is F.dropout, whose fused kernel is already cheap.
    """

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, True)
        # a multiply by the scaled mask (saved for backward) is cheaper than where() forward and back
        # (docs/benchmarks.md)
        return x * keep_mask(x, self.p).to(x.dtype).mul_(1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


# CUDA's fused attention kernels put the batch on a grid axis of at most 2^16 - 1 blocks (pytorch#146704):
# a folded batch (windows x sensors, e.g. 512 x 170 at evaluation) larger than this runs in chunks
SDPA_MAX_BATCH = 65535


def short_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float = 0.0) -> torch.Tensor:
    """softmax(q k^T / sqrt(dh)) v by two batched matmuls, the softmax in fp32: (S, h, Lq, dh) -> (S, h, Lq, dh).

    For short sequences (a 12-step window) the fused kernels pad each sequence to their tile (64 or
    128 rows), so most of their work is padding; the (S, h, Lq, Lk) score tensor this path writes is
    small when Lq and Lk are.
    """
    scores = torch.matmul(q, k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)  # (S, h, Lq, Lk)
    weights = scores.float().softmax(dim=-1).to(v.dtype)
    if dropout_p:
        weights = F.dropout(weights, dropout_p)
    return torch.matmul(weights, v)


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float = 0.0, max_batch: int | None = None
) -> torch.Tensor:
    """scaled_dot_product_attention over (S, h, L, dh), in batch chunks of at most max_batch sequences
    (default: SDPA_MAX_BATCH on CUDA, no limit elsewhere)."""
    limit = max_batch or (SDPA_MAX_BATCH if q.device.type == "cuda" else None)
    if limit is None or q.shape[0] <= limit:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    return torch.cat(
        [
            F.scaled_dot_product_attention(a, b, c, dropout_p=dropout_p)
            for a, b, c in zip(q.split(limit), k.split(limit), v.split(limit))
        ]
    )


class AxisAttention(nn.Module):
    """Multi-head attention along one axis of a (B, T, N, D) tensor: axis 1 = time, axis 2 = sensors.

    One layer serves both axes: the attended axis is moved next to the features and the other
    axis is folded into the batch (transpose, don't duplicate). Uses scaled_dot_product_attention,
    so a fused / memory-efficient kernel runs where the device has one.

    `short` > 0: sequences of at most `short` steps (queries and keys) attend by explicit matmuls
    instead (short_attention); longer ones (sensors) keep the memory-efficient kernels. Meant for
    GPUs: on this 2-core CPU it is slower than the fp32 flash kernel (12 steps, 64 x 170 sequences,
    4 heads, fwd+bwd: 388 vs 220 ms at head dim 16).
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, short: int = 0):
        super().__init__()
        self.h, self.dh = n_heads, d_model // n_heads
        self.short = short
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, axis: int = 1) -> torch.Tensor:
        # move the attended axis next to the features: (B, M, L, D), M folded into the batch
        x = x.transpose(1, 2) if axis == 1 else x
        ctx = x if context is None else (context.transpose(1, 2) if axis == 1 else context)
        B, M, Lq, D = x.shape
        Lk = ctx.shape[2]
        q = self.q(x).view(B * M, Lq, self.h, self.dh).transpose(1, 2)  # (B*M, h, Lq, dh)
        k, v = self.kv(ctx).view(B * M, Lk, 2, self.h, self.dh).permute(2, 0, 3, 1, 4)  # 2 x (B*M, h, Lk, dh)
        drop = self.dropout if self.training else 0.0
        if max(Lq, Lk) <= self.short:
            y = short_attention(q, k, v, drop)
        elif q.device.type == "cpu" and q.dtype != torch.float32:
            # the CPU flash kernel is slower in bf16 than in fp32 at these short sequences and small heads
            # (docs/benchmarks.md): attend in fp32 and cast back. Autocast must be off here, or it casts the fp32
            # inputs straight back to bf16. CUDA keeps the bf16 kernels.
            with torch.autocast("cpu", enabled=False):
                y = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), dropout_p=drop).to(q.dtype)
        else:
            y = attention(q, k, v, drop)
        y = self.out(y.transpose(1, 2).reshape(B, M, Lq, D))  # (B, M, Lq, D)
        return y.transpose(1, 2) if axis == 1 else y  # back to (B, T, N, D)


class Block(nn.Module):
    """Pre-norm transformer block: self-attention along an axis, optional cross-attention, MLP."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        ffn_mult: int = 4,
        dropout: float = 0.0,
        cross: bool = False,
        short_attn: int = 0,
    ):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        # dropout on the residual branches only: masks over attention weights and MLP hiddens double the
        # random-number cost on CPU for no measurable gain at these sizes
        self.attn = AxisAttention(d_model, n_heads, short=short_attn)
        self.cross = AxisAttention(d_model, n_heads, short=short_attn) if cross else None
        self.ln2 = nn.LayerNorm(d_model) if cross else None
        self.ln3 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, ffn_mult * d_model), nn.GELU(), nn.Linear(ffn_mult * d_model, d_model)
        )
        self.drop = Dropout(dropout)

    def zero_residuals(self) -> None:
        """Start as the identity: every residual branch's last projection at zero."""
        for lin in (self.attn.out, self.mlp[-1], *([self.cross.out] if self.cross is not None else [])):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, x: torch.Tensor, axis: int = 1, memory: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), axis=axis))  # (B, L, N, D)
        if self.cross is not None and memory is not None:
            x = x + self.drop(self.cross(self.ln2(x), memory, axis=1))  # queries over time attend to memory
        return x + self.drop(self.mlp(self.ln3(x)))


def sinusoidal(length: int, d_model: int) -> torch.Tensor:
    """(length, d_model) fixed sinusoidal positional encoding (Vaswani et al.)."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(length, d_model)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)[:, : d_model // 2]
    return pe


class PositionalEncoding(nn.Module):
    """Positions 0..length-1 -> (length, D): 'fixed' sinusoidal or 'learned'."""

    def __init__(self, length: int, d_model: int, kind: str = "fixed"):
        super().__init__()
        if kind == "fixed":
            self.register_buffer("table", sinusoidal(length, d_model), persistent=False)
        elif kind == "learned":
            self.table = nn.Parameter(torch.randn(length, d_model) * 0.02)
        else:
            raise ValueError(f"pos_encoding must be 'fixed' or 'learned', got {kind!r}")

    def forward(self, start: int, length: int) -> torch.Tensor:
        return self.table[start : start + length]  # (length, D)


def time_indices(x: torch.Tensor, steps_per_day: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x (B, T, N, 3) -> (time-of-day slot, day of week), each (B, T, N) long."""
    tod = (x[..., 1] * steps_per_day).round().long().clamp_(0, steps_per_day - 1)
    dow = x[..., 2].round().long().clamp_(0, 6)
    return tod, dow


def future_time_indices(x: torch.Tensor, steps_per_day: int, out_steps: int):
    """Time-of-day slot and day of week of the out_steps rows after the input window, (B, out, N)."""
    tod, dow = time_indices(x[:, -1:], steps_per_day)  # (B, 1, N)
    ahead = torch.arange(1, out_steps + 1, device=x.device).view(1, -1, 1)  # (1, out, 1)
    total = tod + ahead  # (B, out, N)
    return total % steps_per_day, (dow + total // steps_per_day) % 7
