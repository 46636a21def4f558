"""The one path from runs to mean +- sd over seeds: per-run rows (metrics_table, from_export) -> seed_summary."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from stlib.reporting import results


def _rows(maes: dict[str, list[float]], **extra) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"config": name, "seed": s, "MAE": m, "epochs": 10 + s, **extra}
            for name, values in maes.items()
            for s, m in enumerate(values)
        ]
    )


def test_seed_summary_mean_sample_sd_and_seed_count():
    s = results.seed_summary(_rows({"b": [20.0, 21.0, 23.0], "a": [15.0]}))
    assert s.index.tolist() == ["b", "a"]  # in order of appearance
    assert s["seeds"].tolist() == [3, 1]
    assert s.loc["b", "MAE"] == pytest.approx(21.3333333)
    assert s.loc["b", "MAE sd"] == pytest.approx(np.std([20.0, 21.0, 23.0], ddof=1))  # sample sd, not ddof 0
    assert np.isnan(s.loc["a", "MAE sd"])  # one seed: no spread
    assert s.loc["b", "epochs"] == pytest.approx(11.0)
    assert s.columns.tolist() == ["seeds", "MAE", "MAE sd", "epochs"]  # the sd beside its mean; seed ids not averaged


def test_seed_summary_carries_kind_and_devices_and_groups_by_several_columns():
    rows = pd.concat(
        [
            _rows({"a": [1.0, 2.0]}, kind="start", device="x86_64", batch="one"),
            _rows({"a": [3.0]}, kind="start", device="NVIDIA H100", batch="two"),
        ]
    ).reset_index(drop=True)
    s = results.seed_summary(rows)
    assert s.loc["a", "kind"] == "start" and s.loc["a", "device"] == "x86_64, NVIDIA H100"
    by_batch = results.seed_summary(rows, by=["batch", "config"], columns=("MAE",))
    assert by_batch["seeds"].tolist() == [2, 1] and by_batch.loc[("one", "a"), "MAE"] == pytest.approx(1.5)
    assert "epochs" not in by_batch


def _run(mae: float, seed: int, tmp_path: Path):
    horizon = {str(h): {"mae": mae + h, "rmse": 2 * mae, "mape": 10.0} for h in (3, 12)}
    metrics = {
        "test": {"mae": mae, "rmse": 2 * mae, "mape": 10.0, "by_horizon": horizon},
        "best_epoch": 4,
        "epochs_run": 5,
        "seconds_per_epoch": 1.5,
        "params": 100,
        "train_seconds": 7.5,
    }
    return SimpleNamespace(metrics=metrics, dir=tmp_path / f"run{seed}", run_id=f"run{seed}")


def test_metrics_table_rows_feed_the_seed_summary(tmp_path):
    runs = {("stid", 0): _run(14.0, 0, tmp_path), ("stid", 1): _run(15.0, 1, tmp_path)}
    table = results.metrics_table(runs, kinds={"stid": "baseline"})
    assert table[["config", "kind", "seed", "MAE", "MAE h12", "epochs", "seconds", "run"]].values.tolist() == [
        ["stid", "baseline", 0, 14.0, 26.0, 5, 7.5, "run0"],
        ["stid", "baseline", 1, 15.0, 27.0, 5, 7.5, "run1"],
    ]
    assert "kind" not in results.metrics_table(runs)
    s = results.seed_summary(table)
    assert s.loc["stid", "seeds"] == 2 and s.loc["stid", "MAE sd"] == pytest.approx(np.std([14.0, 15.0], ddof=1))


def test_from_export_has_metrics_tables_columns():
    export = pd.DataFrame(
        [
            {
                "name": "a",
                "seed": 0,
                "test_mae": 14.0,
                "mae_h3": 13.0,
                "mae_h6": 14.0,
                "mae_h12": 15.0,
                "test_rmse": 22.0,
                "test_mape": 9.0,
                "best_epoch": 3,
                "epochs_run": 4,
                "seconds_per_epoch": 2.0,
                "params": 10,
                "train_seconds": 8.0,
                "run_dir": "r0",
                "device": "x86_64",
                "batch": "one",
                "dataset": "pems08-tail",
            }
        ]
    )
    rows = results.from_export(export, keep=("batch",))
    assert rows.columns.tolist() == [
        "config",
        "seed",
        "MAE",
        "MAE h3",
        "MAE h6",
        "MAE h12",
        "RMSE",
        "MAPE %",
        "best epoch",
        "epochs",
        "s/epoch",
        "params",
        "seconds",
        "run",
        "device",
        "batch",
    ]
    assert results.from_export(export[["name", "seed", "test_mae"]]).columns.tolist() == ["config", "seed", "MAE"]
    with pytest.raises(ValueError, match=r"not a run export.*test_mae"):
        results.from_export(export.drop(columns=["test_mae"]))


def test_fit_growth_exponent():
    n = pd.Series([100, 1000, 4000])
    assert results.fit_growth(pd.DataFrame({"N": n, "m": 3.0 * n}), "m") == pytest.approx(1.0)
    assert results.fit_growth(pd.DataFrame({"N": n, "m": 0.5 * n**2}), "m") == pytest.approx(2.0)
    assert results.fit_growth(pd.DataFrame({"N": [100], "m": [1.0]}), "m") != results.fit_growth(
        pd.DataFrame({"N": [100], "m": [1.0]}), "m"
    )  # NaN with one point


def test_one_rule_for_beating_beyond_the_seed_spread():
    from stlib.reporting import report
    from stlib.studies import ablation

    v = results.versus
    assert v(14.0, 0.1, 15.0, 0.1) == results.BEATS and v(15.0, 0.1, 14.0, 0.1) == results.LOSES  # outside
    assert v(14.9, 0.1, 15.0, 0.1) == results.WITHIN and v(15.0, 0.1, 15.0, 0.1) == results.WITHIN  # inside, equal
    nan = float("nan")  # one seed: its sd is unknown, so is the spread, and nothing beats or loses
    assert v(10.0, nan, 15.0, 0.1) == v(15.0, 0.1, 10.0, nan) == v(15.0, nan, 15.0, nan) == results.UNKNOWN
    assert not results.beats(10.0, nan, 15.0, 0.1) and results.beats(14.0, 0.1, 15.0, 0.1)
    # every place that judges a comparison follows the same rule
    one_seed = pd.DataFrame({"MAE": [10.0, 15.0], "MAE sd": [nan, nan]}, index=["a", "b"])
    assert results.UNKNOWN in report.verdict(one_seed, "a", "b") and " beats " not in report.verdict(one_seed, "a", "b")
    route = pd.DataFrame(
        {"stage": ["baseline: STID-style", "04 stage 2 (alternating)"], "MAE": [15.0, 10.0], "MAE sd": [nan, nan]}
    )
    assert not report._beats(route, "04 stage 2 (alternating)", "baseline: STID-style")
    table = pd.DataFrame({"config": ["start", "+depth"], "seed": [0, 0], "MAE": [15.0, 10.0]})
    assert not ablation.summarize(table).loc["+depth", "clear"]
    assert ablation.choose(ablation.summarize(table)).name == "start"
