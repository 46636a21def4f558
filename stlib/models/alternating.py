"""Stage 2: the encoder-decoder with attention alternating between time and space.

Each block attends either over time (each sensor over its steps) or over sensors (each step over all sensors),
one attention layer serving both axes. `pattern` picks the order:

- alternating: T S T S ... (the roadmap's alternating spatio-temporal architecture)
- stacked:     T ... T S ... S (as STAEformer: temporal layers, then spatial layers)
- temporal:    T ... T (the stage-1 model; the control)

On STID's encoding, `stid_head` puts STID's own regression head on each sensor's STID state and adds the blocks'
linear head to it from zero: the model starts as STID exactly and attention learns a correction. `stem_epochs`
then trains STID's path alone (the blocks skipped, at STID's cost) before the blocks join; with `stem_patience`
they join earlier, once STID's path stops improving on validation (a rule that scales with the data: on a few
days STID peaks within tens of epochs, on more it is still improving at 200).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn as nn
from pydantic import Field

from ..config import register
from ..metrics import is_gain
from .encdec import EncDecOptions, EncoderDecoder

TIME, SPACE = 1, 2


def block_axes(pattern: str, depth: int) -> list[int]:
    """The attended axis of each of `depth` blocks for a pattern."""
    if pattern == "alternating":
        return [TIME if i % 2 == 0 else SPACE for i in range(depth)]
    if pattern == "stacked":
        n_time = (depth + 1) // 2
        return [TIME] * n_time + [SPACE] * (depth - n_time)
    if pattern == "temporal":
        return [TIME] * depth
    raise ValueError(f"model.pattern must be alternating, stacked or temporal, got {pattern!r}")


@register
class AlternatingOptions(EncDecOptions):
    name: Literal["alternating"] = "alternating"
    pattern: Literal["alternating", "stacked", "temporal"] = "alternating"
    adaptive_dim: int = Field(0, ge=0)  # STAEformer's adaptive embedding, one vector per (token, sensor); 0 = off
    stid_head: bool = False  # STID's head on the STID state plus the blocks' linear head from zero
    stem_epochs: int = Field(0, ge=0)  # with stid_head: the first this many epochs train STID's path alone
    stem_patience: int = Field(0, ge=0)  # with stem_epochs: the blocks join once this many validations gain nothing

    def check(self, cfg) -> None:
        super().check(cfg)
        if self.stid_head and (self.embedding != "stid" or self.head != "linear"):
            raise ValueError("model.stid_head needs model.embedding: stid and model.head: linear")
        if self.stem_epochs and not self.stid_head:
            raise ValueError(
                f"model.stem_epochs ({self.stem_epochs}) needs STID's head to train alone first (model.stid_head: true)"
            )
        if self.stem_patience and not self.stem_epochs:
            raise ValueError(
                f"model.stem_patience ({self.stem_patience}) ends the phase model.stem_epochs sets: give stem_epochs "
                "as its longest length"
            )
        if self.stem_epochs and self.stem_epochs >= cfg.train.epochs:
            raise ValueError(
                f"model.stem_epochs ({self.stem_epochs}) must be below train.epochs "
                f"({cfg.train.epochs}): the attention blocks would never train"
            )

    def build(self, ds):
        return AlternatingEncoderDecoder(self, ds)


class AlternatingEncoderDecoder(EncoderDecoder):
    """Encoder-decoder whose blocks attend over time or over sensors as `pattern` says, optionally on STID's head."""

    def __init__(self, o: AlternatingOptions, ds):
        super().__init__(o, ds, block_axes(o.pattern, o.encoder_depth), block_axes(o.pattern, o.decoder_depth))
        self.pattern, self.stem_epochs, self.stem_patience = o.pattern, o.stem_epochs, o.stem_patience
        self.stem_only = False
        self.stid_head = None
        if o.stid_head:
            self.stid_head = nn.Linear(self.embed.state_dim, self.out_steps)
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def start_epoch(self, epoch: int, val_maes: list[float]) -> None:
        """The trainer's hook, with the validation MAEs so far: through epoch stem_epochs STID's path alone (as
        trained, so validated), or until stem_patience validations in a row gained nothing."""
        self.stem_only = epoch <= self.stem_epochs and not stalled(val_maes, self.stem_patience)

    def forward(self, x: torch.Tensor):
        if self.stid_head is None:
            return super().forward(x)
        value, seen = self.inputs(x)
        state = self.embed.state(x, seen)  # (B, N, H)
        stid = self.stid_head(state).transpose(1, 2).unsqueeze(-1)  # (B, out, N, 1) STID's forecast
        if self.stem_only:  # the blocks (and the denoising reconstruction) wait their turn
            return stid
        memory = self.encode(x, seen, state)  # (B, P, N, D)
        pred = self.decode(x, memory)  # (B, out, N, 1) the blocks' correction
        return self.output(pred + stid.to(pred.dtype), memory, value)


def stalled(val_maes: list[float], patience: int) -> bool:
    """Whether `patience` validations in a row ever failed to beat the best before them (metrics.is_gain, the
    trainer's rule); 0 = never. Read from the history, so a resumed run decides as the uninterrupted one."""
    best, stale = math.inf, 0
    for v in val_maes:
        best, stale = (v, 0) if is_gain(v, best) else (best, stale + 1)
        if patience and stale >= patience:
            return True
    return False
