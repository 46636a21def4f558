"""The learning curve: test MAE against training days per model (mean +- sd over seeds, seed-ensemble MAE), the gap
between two models per span with its verdict, a trend in log(days) and what it implies, labelled an extrapolation,
at the published models' training span."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .figstyle import legend_outside, stamp
from .results import from_export, seed_summary, versus

# published PEMS08 test MAE on the same test windows with the standard 60 % training part (37.2 days; BENCHMARK)
PUBLISHED = {"STID (published)": 14.21, "STAEformer (published)": 13.46}
PUBLISHED_DAYS = 37.2


def curve(export: pd.DataFrame, full_days: float, models: dict[str, str]) -> pd.DataFrame:
    """One row per (model, training days): seeds, MAE, MAE sd, ensemble MAE, ... from a run export whose rows have
    `train_days` (NaN = the whole training part, full_days) and `name`s mapped to a model label by `models`
    ({run name prefix: label}: 'stid_converged' -> 'STID')."""
    rows = export.assign(days=export["train_days"].fillna(full_days).astype(float))
    rows["model"] = rows["name"].map(lambda n: next((v for k, v in models.items() if str(n).startswith(k)), None))
    if rows["model"].isna().any():
        raise ValueError(f"runs of no model in {list(models)}: {sorted(rows.loc[rows['model'].isna(), 'name'])}")
    table = from_export(rows, keep=("model", "days"))
    out = seed_summary(table, by=["model", "days"]).reset_index()
    return out.sort_values(["model", "days"], ignore_index=True)


def gap(table: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Per span: MAE of a minus b, the seed spread (the two sds added, the verdict rule's) and a's verdict."""
    t = table.set_index(["days", "model"])["MAE"].unstack(), table.set_index(["days", "model"])["MAE sd"].unstack()
    mae, sd = t
    out = pd.DataFrame({f"{a} MAE": mae[a], f"{b} MAE": mae[b], "gap": mae[a] - mae[b], "spread": sd[a] + sd[b]})
    out["verdict"] = [versus(mae.at[d, a], sd.at[d, a], mae.at[d, b], sd.at[d, b]) for d in out.index]
    return out.reset_index()


def trend(table: pd.DataFrame, column: str = "MAE", at: float = PUBLISHED_DAYS) -> pd.DataFrame:
    """Per model: the least-squares line column = c0 + c1 * ln(days) over its spans, its value at `at` days (an
    extrapolation beyond the spans measured) and the largest residual of the fit."""
    rows = []
    for model, g in table.groupby("model", sort=False):
        x, y = np.log(g["days"].to_numpy(float)), g[column].to_numpy(float)
        c1, c0 = np.polyfit(x, y, 1)
        resid = np.abs(y - (c0 + c1 * x)).max()
        rows.append({"model": model, "per doubling": c1 * np.log(2), f"at {at:g} days": c0 + c1 * np.log(at)})
        rows[-1] |= {"c0": c0, "c1": c1, "largest residual": resid, "spans": len(g)}
    return pd.DataFrame(rows)


def plot_curve(table: pd.DataFrame, fits: pd.DataFrame | None = None, ax=None, *, dataset=None, device=None):
    """Test MAE against training days (log axis), mean +- 1 sd over seeds per model, the trend lines dashed beyond
    the spans (extrapolation) and the published full-data figures at their training span."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 4))
    colors = dict(zip(table["model"].unique(), plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for model, g in table.groupby("model", sort=False):
        ax.errorbar(
            g["days"],
            g["MAE"],
            yerr=g["MAE sd"].fillna(0),
            fmt="o-",
            capsize=4,
            color=colors[model],
            label=f"{model} (mean ± 1 sd, {int(g['seeds'].min())}+ seeds)",
        )
        if fits is not None and model in set(fits["model"]):
            f = fits.set_index("model").loc[model]
            x = np.geomspace(g["days"].max(), PUBLISHED_DAYS, 20)
            ax.plot(
                x,
                f["c0"] + f["c1"] * np.log(x),
                ls="--",
                color=colors[model],
                alpha=0.7,
                label=f"{model}: trend in ln(days), extrapolated",
            )
    for (name, mae), marker in zip(PUBLISHED.items(), ("s", "D")):
        ax.plot([PUBLISHED_DAYS], [mae], marker=marker, color="black", ls="none", label=f"{name}: {mae}")
    ax.set_xscale("log")
    ticks = sorted({*table["days"].round(1), PUBLISHED_DAYS})
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set(
        xlabel="training days (log scale)", ylabel="test MAE", title="Learning curve: test MAE against training data"
    )
    legend_outside(ax)
    stamp(ax.figure, dataset, device, None)
    return ax
