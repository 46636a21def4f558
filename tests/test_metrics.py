"""Tests for stlib.metrics against hand-computed values (zero targets are missing and ignored)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stlib.metrics import MetricSums, forecast_metrics, masked_mae, masked_mape, masked_rmse

# (B=1, H=2, N=3, C=1); the target's zeros are missing values
TARGET = torch.tensor([[[[2.0], [0.0], [4.0]], [[0.0], [0.0], [5.0]]]])
PRED = torch.tensor([[[[3.0], [9.0], [2.0]], [[7.0], [1.0], [4.0]]]])
# counted cells: h0: (2 vs 3), (4 vs 2); h1: (5 vs 4)
# abs errors 1, 2 | 1 ; squared 1, 4 | 1 ; ape 1/2, 2/4 | 1/5
DIMS = (0, 2, 3)  # reduce all but the horizon axis


def close(a, b, tol=1e-6):
    return torch.allclose(
        torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64), atol=tol, rtol=0
    )


def test_masked_mae_hand_computed():
    assert close(masked_mae(PRED, TARGET), (1 + 2 + 1) / 3)
    assert close(masked_mae(PRED, TARGET, dim=DIMS), [(1 + 2) / 2, 1.0])


def test_masked_rmse_hand_computed():
    assert close(masked_rmse(PRED, TARGET), math.sqrt((1 + 4 + 1) / 3))
    assert close(masked_rmse(PRED, TARGET, dim=DIMS), [math.sqrt(2.5), 1.0])


def test_masked_mape_is_a_fraction():
    assert close(masked_mape(PRED, TARGET), (0.5 + 0.5 + 0.2) / 3)
    assert close(masked_mape(PRED, TARGET, dim=DIMS), [0.5, 0.2])


def test_masked_metrics_ignore_huge_errors_at_missing_targets():
    pred = PRED.clone()
    pred[TARGET == 0] = 1e9
    assert close(masked_mae(pred, TARGET), 4 / 3)
    assert close(masked_mape(pred, TARGET), 1.2 / 3)


def test_custom_null_val_and_nan_null_val():
    target = torch.tensor([[-1.0, 2.0], [0.0, 4.0]])
    pred = torch.tensor([[5.0, 3.0], [1.0, 1.0]])
    # null_val=-1: zero is an ordinary target now
    assert close(masked_mae(pred, target, null_val=-1.0), (1 + 1 + 3) / 3)
    nan_target = torch.tensor([[float("nan"), 2.0], [0.0, 4.0]])
    assert close(masked_mae(pred, nan_target, null_val=float("nan")), (1 + 1 + 3) / 3)
    assert not torch.isnan(masked_rmse(pred, nan_target, null_val=float("nan")))


def test_explicit_mask():
    mask = torch.zeros_like(TARGET)
    mask[0, 0, 0, 0] = 1
    assert close(masked_mae(PRED, TARGET, mask=mask), 1.0)


def test_all_masked_returns_zero_not_nan():
    target = torch.zeros(2, 3, 4, 1)
    pred = torch.randn(2, 3, 4, 1)
    for fn in (masked_mae, masked_rmse, masked_mape):
        out = fn(pred, target)
        assert not torch.isnan(out) and out.item() == 0.0, fn.__name__
    for fn in (masked_mae, masked_rmse, masked_mape):
        out = fn(pred, target, dim=DIMS)
        assert out.shape == (3,) and not torch.isnan(out).any() and (out == 0).all(), fn.__name__


def test_one_horizon_all_masked():
    # h1 has no counted target: 0 there, the right value in h0
    target = TARGET.clone()
    target[:, 1] = 0
    assert close(masked_mae(PRED, target, dim=DIMS), [1.5, 0.0])
    res = forecast_metrics(PRED, target, report=(1, 2))
    assert res["by_horizon"]["2"] == {"mae": 0.0, "rmse": 0.0, "mape": 0.0}
    assert res["mae"] == pytest.approx(1.5)


def test_masked_losses_have_finite_gradients_with_missing_targets():
    pred = PRED.clone().requires_grad_(True)
    (masked_mae(pred, TARGET) + masked_mape(pred, TARGET)).backward()
    assert torch.isfinite(pred.grad).all()
    assert (pred.grad[TARGET == 0] == 0).all()


# ---------------------------------------------------------------------------------------------
# forecast_metrics / MetricSums


def test_forecast_metrics_hand_computed_percent_mape():
    res = forecast_metrics(PRED, TARGET, report=(1, 2))
    assert res["mae"] == pytest.approx(4 / 3)
    assert res["rmse"] == pytest.approx(math.sqrt(2.0))
    assert res["mape"] == pytest.approx(100 * 1.2 / 3)  # percent
    assert res["by_horizon"]["1"] == pytest.approx({"mae": 1.5, "rmse": math.sqrt(2.5), "mape": 50.0})
    assert res["by_horizon"]["2"] == pytest.approx({"mae": 1.0, "rmse": 1.0, "mape": 20.0})
    assert res["mae_per_step"] == pytest.approx([1.5, 1.0])


def test_forecast_metrics_matches_masked_functions():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(5, 12, 7, 1, generator=g) * 100
    target[target < 20] = 0  # ~20 % missing
    pred = target + torch.randn(5, 12, 7, 1, generator=g) * 5
    res = forecast_metrics(pred, target)
    assert set(res["by_horizon"]) == {"3", "6", "12"}
    assert res["mae"] == pytest.approx(masked_mae(pred, target).item(), rel=1e-5)
    assert res["rmse"] == pytest.approx(masked_rmse(pred, target).item(), rel=1e-5)
    assert res["mape"] == pytest.approx(100 * masked_mape(pred, target).item(), rel=1e-5)
    per_h = masked_mae(pred, target, dim=DIMS)
    for h in (3, 6, 12):
        assert res["by_horizon"][str(h)]["mae"] == pytest.approx(per_h[h - 1].item(), rel=1e-5)
        assert res["by_horizon"][str(h)]["rmse"] == pytest.approx(
            masked_rmse(pred, target, dim=DIMS)[h - 1].item(), rel=1e-5
        )
        assert res["by_horizon"][str(h)]["mape"] == pytest.approx(
            100 * masked_mape(pred, target, dim=DIMS)[h - 1].item(), rel=1e-5
        )
    assert res["mae_per_step"] == pytest.approx(per_h.tolist(), rel=1e-5)


def test_forecast_metrics_short_horizon_reports_only_existing():
    res = forecast_metrics(torch.ones(2, 6, 3, 1), torch.full((2, 6, 3, 1), 2.0))
    assert set(res["by_horizon"]) == {"3", "6"}
    assert res["mae"] == 1.0 and res["mape"] == pytest.approx(50.0)


def test_forecast_metrics_accepts_numpy():
    res = forecast_metrics(PRED.numpy(), TARGET.numpy(), report=(1,))
    assert res["mae"] == pytest.approx(4 / 3)


def test_forecast_metrics_all_zero_target_is_zero_not_nan():
    res = forecast_metrics(torch.randn(3, 12, 4, 1), torch.zeros(3, 12, 4, 1))
    values = [res["mae"], res["rmse"], res["mape"], *res["mae_per_step"]]
    values += [v for h in res["by_horizon"].values() for v in h.values()]
    assert all(v == 0.0 and not math.isnan(v) for v in values)
    assert set(res["by_horizon"]) == {"3", "6", "12"}


def test_metric_sums_empty_and_all_masked_result():
    sums = MetricSums(12)
    res = sums.result()
    assert res["mae"] == res["rmse"] == res["mape"] == 0.0
    sums.update(torch.randn(2, 12, 3, 1), torch.zeros(2, 12, 3, 1))
    res = sums.result()
    assert res["mae"] == res["rmse"] == res["mape"] == 0.0
    assert all(not math.isnan(v) for h in res["by_horizon"].values() for v in h.values())


def test_metric_sums_over_batches_equals_forecast_metrics_on_concatenation():
    g = torch.Generator().manual_seed(1)
    preds, targets = [], []
    sums = MetricSums(12)
    for b in (3, 1, 5):  # uneven batches, different numbers of missing values
        t = torch.rand(b, 12, 4, 1, generator=g) * 50
        t[t < 10] = 0
        p = t + torch.randn(b, 12, 4, 1, generator=g) * 3
        sums.update(p, t)
        preds.append(p)
        targets.append(t)
    batched = sums.result()
    whole = forecast_metrics(torch.cat(preds), torch.cat(targets))
    assert batched.keys() == whole.keys()
    for k in ("mae", "rmse", "mape"):
        assert batched[k] == pytest.approx(whole[k], rel=1e-12)
    for h in ("3", "6", "12"):
        assert batched["by_horizon"][h] == pytest.approx(whole["by_horizon"][h], rel=1e-12)
    np.testing.assert_allclose(batched["mae_per_step"], whole["mae_per_step"], rtol=1e-12)
    # ... and neither is the mean of per-batch means (the batches weigh by their counted elements)
    mean_of_means = np.mean([forecast_metrics(p, t)["mae"] for p, t in zip(preds, targets)])
    assert batched["mae"] != pytest.approx(mean_of_means, rel=1e-6)


def test_metric_sums_low_precision_input():
    p, t = PRED.to(torch.bfloat16), TARGET.to(torch.bfloat16)
    sums = MetricSums(2)
    sums.update(p, t)
    assert sums.result(report=(1, 2))["mae"] == pytest.approx(4 / 3)
