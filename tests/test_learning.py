"""The learning curve's tables: spans per model over seeds, the gap with its verdict, the log-days trend."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stlib.reporting import learning


def _export(mae):
    """A run export: {(name, days or None): [test MAE per seed]}."""
    rows = [
        {"name": name, "seed": s, "test_mae": v, "train_days": days}
        for (name, days), vals in mae.items()
        for s, v in enumerate(vals)
    ]
    return pd.DataFrame(rows)


MODELS = {"stid_converged": "STID", "stage2_converged": "stage 2"}


def test_curve_groups_seeds_by_model_and_span_with_the_full_span_named():
    export = _export(
        {
            ("stid_converged_d3", 3.0): [17.0, 17.2, 17.4],
            ("stid_converged", None): [14.1, 14.2, 14.3],
            ("stage2_converged_d3", 3.0): [16.0, 16.5, 17.0],
        }
    )
    t = learning.curve(export, 9.92, MODELS).set_index(["model", "days"])
    assert t.loc[("STID", 3.0), "MAE"] == pytest.approx(17.2) and t.loc[("STID", 3.0), "MAE sd"] == pytest.approx(0.2)
    assert t.loc[("STID", 9.92), "seeds"] == 3 and ("stage 2", 3.0) in t.index
    with pytest.raises(ValueError, match="runs of no model.*'other'"):
        learning.curve(_export({("other", 3.0): [1.0]}), 9.92, MODELS)


def test_gap_is_a_minus_b_with_the_verdict_rule():
    export = _export(
        {
            ("stid_converged_d3", 3.0): [17.0, 17.2, 17.4],  # sd 0.2
            ("stage2_converged_d3", 3.0): [16.0, 16.1, 16.2],  # sd 0.1: 1.1 below, beyond 0.3
            ("stid_converged_d6", 6.0): [15.0, 15.2, 15.4],
            ("stage2_converged_d6", 6.0): [15.0, 15.1, 15.2],  # 0.1 below, within 0.3
        }
    )
    g = learning.gap(learning.curve(export, 9.92, MODELS), "stage 2", "STID").set_index("days")
    assert g.loc[3.0, "gap"] == pytest.approx(-1.1) and g.loc[3.0, "spread"] == pytest.approx(0.3)
    assert g.loc[3.0, "verdict"] == "beats" and g.loc[6.0, "verdict"] == "is within the seed spread of"


def test_trend_recovers_a_log_linear_curve_and_extrapolates():
    days = np.array([3.0, 6.0, 9.0, 9.92])
    table = pd.DataFrame({"model": "STID", "days": days, "MAE": 20.0 - 2.0 * np.log(days), "MAE sd": 0.1, "seeds": 3})
    f = learning.trend(table).iloc[0]
    assert f["c1"] == pytest.approx(-2.0) and f["per doubling"] == pytest.approx(-2.0 * np.log(2))
    assert f["at 37.2 days"] == pytest.approx(20.0 - 2.0 * np.log(37.2)) and f["largest residual"] < 1e-9
    ax = learning.plot_curve(table, learning.trend(table))
    labels = ax.get_legend_handles_labels()[1]
    assert any("extrapolated" in s for s in labels) and any("14.21" in s for s in labels)
