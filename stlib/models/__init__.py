"""The models, one module each with its options class: build_model(cfg.model, ds) -> nn.Module mapping x
(B, in, N, 3) to a z-scored forecast (B, out, N, 1). A module registers its model with `@config.register` on its
options class; importing it is all a new model needs (docs/ARCHITECTURE.md, "A model")."""

from __future__ import annotations

import torch.nn as nn

from ..config import MODELS, ModelOptions
from .alternating import AlternatingEncoderDecoder

# isort: off (the built-in models register in this order, which errors list)
from .baselines import HistoricalAverage, LastValue, training_profile
from .encdec import EncoderDecoder
from .stid import STID

# isort: on

for _name in ("last_value", "historical_average", "stid", "encdec", "alternating"):  # listed in this order
    MODELS[_name] = MODELS.pop(_name)


def build_model(cfg: ModelOptions, ds) -> nn.Module:
    """The model a ModelOptions names, sized for the dataset."""
    return cfg.build(ds)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = [
    "build_model",
    "count_parameters",
    "training_profile",
    "LastValue",
    "HistoricalAverage",
    "STID",
    "EncoderDecoder",
    "AlternatingEncoderDecoder",
]
