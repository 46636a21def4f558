"""Scale benchmark: step/memory measurement per N, growth fit, no N x N score matrix on the fused path."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from stlib.studies import scale
from stlib.models.layers import AxisAttention

SMALL = dict(batch=1, d_model=8, n_heads=2, encoder_depth=2, decoder_depth=1, steps=1, amp="off", device="cpu")


def test_measure_step_reports_time_and_memory():
    r = scale.measure_step(60, **SMALL)
    assert r["N"] == 60 and r["step_s"] > 0 and r["warmup_s"] > 0 and r["params"] > 0
    assert r["dtype"] == "float32" and r["pattern"] == "alternating"


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


def test_fit_growth_exponent():
    n = pd.Series([100, 1000, 4000])
    assert scale.fit_growth(pd.DataFrame({"N": n, "m": 3.0 * n}), "m") == pytest.approx(1.0)
    assert scale.fit_growth(pd.DataFrame({"N": n, "m": 0.5 * n**2}), "m") == pytest.approx(2.0)
    assert scale.fit_growth(pd.DataFrame({"N": [100], "m": [1.0]}), "m") != scale.fit_growth(
        pd.DataFrame({"N": [100], "m": [1.0]}), "m")  # NaN with one point


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


def test_plot_draws_both_panels():
    import matplotlib
    matplotlib.use("Agg")
    t = pd.DataFrame({"N": [100, 1000], "step_s": [0.1, 1.0], "peak_mb": [10.0, 100.0]})
    axes = scale.plot(t)
    assert len(axes) == 2 and "N^1.00" in axes[0].get_legend_handles_labels()[1][0]
