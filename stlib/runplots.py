"""Plots of training runs: learning curves, error by horizon, forecasts against the truth."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def _dataset(runs: dict):
    """The dataset of the first run that carries one (all runs of a figure share it), else None."""
    return next((run.dataset for run in runs.values() if getattr(run, "dataset", None) is not None), None)


def _units(ds) -> str:
    """'mph' for axis labels of errors, 'original units' when the dataset names no unit."""
    return ds.unit if ds is not None and ds.unit else "original units"


def learning_curves(runs: dict, ax=None):
    """Training loss (z units) and validation MAE per epoch for every trained run."""
    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(11, 3.6))
    for (name, seed), run in runs.items():
        h = run.history
        if h.empty:
            continue
        label = f"{name} s{seed}"
        ax[0].plot(h["epoch"], h["train_loss"], marker=".", label=label)
        v = h.dropna(subset=["val_mae"])
        ax[1].plot(v["epoch"], v["val_mae"], marker=".", label=label)
    ax[0].set(title="training loss (masked MAE, z units)", xlabel="epoch")
    ax[1].set(title=f"validation MAE ({_units(_dataset(runs))})", xlabel="epoch")
    ax[1].legend(fontsize=8)
    return ax


def error_by_horizon(runs: dict, ax=None, references: dict | None = None):
    """Test MAE at every horizon step, mean over seeds per model; optional reference lines."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3.8))
    per_model = {}
    for (name, _), run in runs.items():
        per_model.setdefault(name, []).append(run.metrics["test"]["mae_per_step"])
    for name, curves in per_model.items():
        c = np.array(curves)
        steps = np.arange(1, c.shape[1] + 1)
        ax.plot(steps, c.mean(0), marker="o", label=name)
        if len(c) > 1:
            ax.fill_between(steps, c.min(0), c.max(0), alpha=0.2)
    for label, points in (references or {}).items():
        hs = [h for h in (3, 6, 12) if f"mae_h{h}" in points]
        if hs:
            ax.plot(hs, [points[f"mae_h{h}"] for h in hs], "k--", marker="x", alpha=0.6, label=f"peer: {label}")
    ds = _dataset(runs)
    step = f"{ds.interval_minutes}-minute steps" if ds is not None else "steps"
    ax.set(xlabel=f"horizon ({step} ahead)", ylabel=f"test MAE ({_units(ds)})", title="error by horizon")
    ax.legend(fontsize=8)
    return ax


def forecast_vs_truth(runs: dict, dataset, sensors=(0, 1, 2), horizon: int = 12, day_windows: int | None = None,
                      split: str = "test"):
    """The true value and each model's `horizon`-step-ahead forecast over one day of the split, per sensor."""
    n = day_windows or dataset.steps_per_day
    fig, axes = plt.subplots(len(sensors), 1, figsize=(11, 2.4 * len(sensors)), sharex=True, squeeze=False)
    first = {}
    for (name, seed), run in runs.items():
        if name in first:
            continue  # first seed of each model
        pred, true = run.predict(split)
        first[name] = pred[:n, horizon - 1]  # (n, N): forecast made `horizon` steps earlier
    starts = dataset.splits[split][:n]
    times = dataset.timestamps[starts + dataset.in_steps + horizon - 1]
    truth = dataset.target[starts + dataset.in_steps + horizon - 1]  # (n, N)
    for ax, s in zip(axes[:, 0], sensors):
        ax.plot(times, np.where(truth[:, s] == 0, np.nan, truth[:, s]), "k", lw=1.8, label="true")
        for name, p in first.items():
            ax.plot(times, p[:, s], lw=1, label=name)
        ax.set_ylabel(f"sensor {dataset.sensors[s]}" + (f"\n{dataset.unit}" if dataset.unit else ""))
    axes[0, 0].set_title(f"{horizon}-step-ahead forecast ({dataset.interval_minutes * horizon} min) vs true "
                         f"{dataset.value_name}, {split} split")
    axes[0, 0].legend(fontsize=8, ncol=len(first) + 1)
    fig.autofmt_xdate()
    return fig


def epoch_seconds(runs: dict) -> pd.DataFrame:
    """Median seconds per epoch and its phase split per model (trained runs only)."""
    rows = []
    for (name, seed), run in runs.items():
        h = run.history
        if h.empty:
            continue
        rows.append({"model": name, "seed": seed, "s/epoch (train)": h["train_seconds"].median(),
                     "validation s": h["validation_s"].median(), "data s": h["data_s"].median(),
                     "forward s": h["forward_s"].median(), "backward s": h["backward_s"].median(),
                     "optimizer s": h["optimizer_s"].median(), "samples/s": h["samples_per_s"].median()})
    return pd.DataFrame(rows).round(3)


def phase_bars(table: pd.DataFrame, ax=None):
    """Stacked bars: seconds per epoch of each speed-ladder rung split into its phases."""
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 4))
    phases = ["data_s", "forward_s", "backward_s", "optimizer_s", "validation_s"]
    bottom = np.zeros(len(table))
    for p in phases:
        ax.bar(table["rung"], table[p], bottom=bottom, label=p.replace("_s", ""))
        bottom += table[p].to_numpy()
    for i, (total, sp) in enumerate(zip(table["s_per_epoch"], table["speedup"])):
        ax.text(i, total, f"{sp:.2f}x", ha="center", va="bottom", fontsize=9)
    ax.set(ylabel="seconds per epoch", title="speed ladder: where an epoch's time goes")
    ax.tick_params(axis="x", rotation=25)
    ax.legend(fontsize=8)
    return ax


def config_bars(summary: pd.DataFrame, ax=None, reference: str | None = "start", lines: dict | None = None,
                title: str = "test MAE per configuration (mean +- sd over seeds)"):
    """Horizontal bars of mean test MAE per configuration with seed-sd error bars.

    summary: index = configuration, columns "MAE", "MAE sd" (and optionally "kind" for colours);
    reference: a configuration drawn as a dashed line; lines: {label: MAE} drawn as dotted lines.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 0.42 * len(summary) + 1.2))
    palette = {"start": "0.55", "alone": "tab:blue", "cumulative": "tab:green", "extra": "tab:orange",
               "component": "tab:purple", "baseline": "tab:gray"}
    kinds = summary["kind"] if "kind" in summary else pd.Series("alone", index=summary.index)
    y = np.arange(len(summary))[::-1]
    ax.barh(y, summary["MAE"], xerr=summary["MAE sd"].fillna(0), color=[palette.get(k, "tab:blue") for k in kinds],
            capsize=3, alpha=0.85)
    ax.set_yticks(y, summary.index)
    lo = np.nanmin(summary["MAE"] - summary["MAE sd"].fillna(0))
    hi = np.nanmax(summary["MAE"] + summary["MAE sd"].fillna(0))
    if reference is not None and reference in summary.index:
        ax.axvline(summary.loc[reference, "MAE"], color="0.3", ls="--", lw=1, label=reference)
    for i, (label, value) in enumerate((lines or {}).items()):
        ax.axvline(value, color=f"C{i + 3}", ls=":", lw=1.5, label=label)
        lo, hi = min(lo, value), max(hi, value)
    pad = 0.15 * (hi - lo) + 1e-6
    ax.set_xlim(lo - pad, hi + pad)
    ax.set(xlabel="test MAE (masked, original units)", title=title)
    if reference is not None or lines:
        ax.legend(fontsize=8, loc="lower right")
    return ax


def budget_curves(history: pd.DataFrame, ax=None, by: str = "name"):
    """Validation MAE against epoch, mean over seeds with a min-max band, one line per configuration.

    history: stacked run histories with `by`, `seed`, `epoch` and `val_mae` columns (as stlib.results.export).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.6))
    h = history.dropna(subset=["val_mae"])
    for name, g in h.groupby(by, sort=False):
        s = g.groupby("epoch")["val_mae"].agg(["mean", "min", "max"])
        line, = ax.plot(s.index, s["mean"], label=f"{name} ({g['seed'].nunique()} seeds)")
        ax.fill_between(s.index, s["min"], s["max"], color=line.get_color(), alpha=0.2)
    ax.set(xlabel="epoch", ylabel="validation MAE", title="validation MAE per epoch (band: min-max over seeds)")
    ax.legend(fontsize=8)
    return ax
