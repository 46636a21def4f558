"""Scale benchmark: step/memory measurement per N through the trainer, no N x N score matrix on the fused path."""

from __future__ import annotations

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from stlib.models.layers import AxisAttention
from stlib.studies import scale

SMALL = dict(batch=1, d_model=8, n_heads=2, encoder_depth=2, decoder_depth=1, steps=1, amp="off", device="cpu")


def test_measure_step_reports_time_and_memory():
    r = scale.measure_step(60, **SMALL)
    assert r["N"] == 60 and r["step_s"] > 0 and r["warmup_s"] > 0 and r["params"] > 0
    assert r["dtype"] == "float32" and r["pattern"] == "alternating"


def test_measure_step_builds_through_the_registry_and_steps_through_the_trainer(monkeypatch):
    from stlib.models import AlternatingEncoderDecoder, build_model
    from stlib.training import loop

    built, steps = [], []
    monkeypatch.setattr(loop, "build_model", lambda cfg, ds: built.append(build_model(cfg, ds)) or built[-1])
    train_step = loop.train_step
    monkeypatch.setattr(loop, "train_step", lambda *args: steps.append(args) or train_step(*args))
    r = scale.measure_step(60, **SMALL)
    assert len(built) == 1 and isinstance(built[0], AlternatingEncoderDecoder)
    assert r["params"] == sum(p.numel() for p in built[0].parameters())
    assert len(steps) == SMALL["steps"] + 1  # the warm-up step and the timed ones


def test_scale_config_is_the_registry_model_on_random_readings():
    from stlib.models import build_model

    cfg = scale.scale_config(batch=3, d_model=8, n_heads=2, encoder_depth=3, decoder_depth=1, pattern="stacked")
    ds = scale.random_dataset(50, 3)
    assert (ds.num_sensors, len(ds.splits["train"]), ds.in_steps, ds.out_steps) == (50, 3, 12, 12)
    assert (ds.target > 0).all()  # no reading counts as missing
    model = build_model(cfg.model, ds)
    assert model.pattern == "stacked" and model.null_z == pytest.approx(float(ds.normalize(0.0)))
    assert cfg.model.dropout == 0.0 and not cfg.model.use_denoising and cfg.train.grad_clip == 0.0


@pytest.mark.slow  # a python process per size
def test_measure_runs_each_size_in_its_own_process():
    t = scale.measure([30, 600], **SMALL)
    assert t["N"].tolist() == [30, 600] and t["step_s"].gt(0).all()
    # the peak is the step's own (the imports' peak is reset away): it grows with N
    assert 0 < t.loc[0, "peak_mb"] < t.loc[1, "peak_mb"]


@pytest.mark.slow  # a python process per size
def test_measure_reports_a_failing_size_instead_of_raising():
    t = scale.measure([30], **{**SMALL, "pattern": "diagonal"})
    assert "pattern" in t.loc[0, "error"]


def _largest_allocation(n: int, heads: int) -> int:
    attn = AxisAttention(16, heads).eval()
    x = torch.randn(1, 1, n, 16)  # (B, T, N, D): one step over N sensors
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        attn(x, axis=2)
    return max(e.cpu_memory_usage for e in prof.events())


def test_spatial_attention_never_holds_an_n_by_n_score_matrix():
    n, heads = 2048, 4
    scores = n * n * heads * 4  # bytes of one fp32 score matrix per head, 64 MiB
    assert _largest_allocation(n, heads) < scores / 16
