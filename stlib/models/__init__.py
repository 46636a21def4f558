"""Model registry: build_model(config.model, dataset) -> nn.Module mapping (B, in, N, 3) -> (B, out, N, 1)."""

from __future__ import annotations

import torch
import torch.nn as nn

from ..config import MODEL_OPTIONS
from .alternating import AlternatingEncoderDecoder
from .baselines import STID, HistoricalAverage, LastValue, training_profile
from .encdec import EncoderDecoder


def build_model(cfg, ds) -> nn.Module:
    """The model a ModelConfig names, sized for the dataset, given the options it takes (config.MODEL_OPTIONS)."""
    dims = dict(num_sensors=ds.num_sensors, in_steps=ds.in_steps, out_steps=ds.out_steps,
                steps_per_day=ds.steps_per_day)
    if cfg.name not in MODEL_OPTIONS:
        raise ValueError(f"unknown model '{cfg.name}' (known: {', '.join(MODEL_OPTIONS)})")
    kw = {k: getattr(cfg, k) for k in MODEL_OPTIONS[cfg.name]}
    if cfg.name == "last_value":
        return LastValue(ds.out_steps)
    if cfg.name == "historical_average":
        return HistoricalAverage(ds, **kw)
    days = kw.pop("daily_profile", "none")  # the training rows' mean day of each sensor, as a model input
    if days != "none":
        kw["profile"] = torch.as_tensor(training_profile(ds, {"all_days": "all", "other_weekdays": "other"}[days]),
                                        dtype=torch.float32)
    if cfg.name == "stid":
        return STID(**dims, **kw)
    # the transformers: the road graph's hops become transition matrices; the trainer weighs the denoising loss
    hops = kw.pop("graph_hops")
    kw.pop("denoise_weight")
    kw["transitions"] = transitions(ds.edges, ds.num_sensors, hops) if hops else None
    model = EncoderDecoder if cfg.name == "encdec" else AlternatingEncoderDecoder
    return model(**dims, null_z=float(ds.normalize(0.0)), **kw)


def transitions(edges, n: int, hops: int):
    """(2 * hops, N, N) random-walk transition matrices of the road graph, downstream then upstream, powers
    1..hops: row i of a power-k matrix averages the sensors k steps from i along (or against) the edges."""
    a = torch.zeros(n, n)
    if len(edges):
        a[torch.tensor(edges["from"].to_numpy(dtype="int64")), torch.tensor(edges["to"].to_numpy(dtype="int64"))] = 1.0
    out = []
    for m in (a, a.T):
        step = m / m.sum(1, keepdim=True).clamp_min(1.0)  # rows of sensors without an edge stay zero
        power = torch.eye(n)
        for _ in range(hops):
            power = power @ step
            out.append(power)
    return torch.stack(out)  # (2 * hops, N, N)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["build_model", "count_parameters", "LastValue", "HistoricalAverage", "STID", "EncoderDecoder",
           "AlternatingEncoderDecoder"]
