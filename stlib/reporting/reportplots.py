"""The report's figures (route, cost per stage, accuracy against training time) and the scale benchmark's."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FixedLocator, NullLocator

from .figstyle import device_label, joined, legend_outside, stamp, unit_of
from .reference import STAEFORMER_CPU
from .report import route_title, short_number, time_to_accuracy, wall_clock
from .results import fit_growth


def plot_route(table: pd.DataFrame, ax=None, peer_mae: float | None = None, *, dataset=None, device=None, unit=None):
    """MAE per stage (mean +- sd over seeds) against the roadmap's scaled ranges, titled by route_title, each tick
    with its stage's epochs; the footer names dataset, device (else the table's) and unit (else the dataset's)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.8))
    t = table.reset_index(drop=True)
    ax.figure.set_figwidth(max(ax.figure.get_figwidth(), 1.35 * len(t) + 3))  # room for each stage's wrapped name
    measured = {"color": "tab:blue", "label": "measured (mean ± 1 sd over seeds)"}
    ax.errorbar(t.index, t["MAE"], yerr=t["MAE sd"].fillna(0), fmt="o", capsize=4, **measured)
    ranged = t.index[t["roadmap low"].notna()] if "roadmap low" in t else []
    for i in ranged:
        low, high = t.loc[i, "roadmap low"], max(t.loc[i, "roadmap high"], t.loc[i, "roadmap low"] + 0.05)
        label = "roadmap's range (scaled)" if i == ranged[0] else None
        ax.fill_between([i - 0.3, i + 0.3], low, high, color="tab:orange", alpha=0.3, label=label)
    if peer_mae is not None:
        ax.axhline(peer_mae, color="tab:red", ls=":", label=f"peer STID (BasicTS): {peer_mae}")
    unit = unit or (unit_of(dataset) if dataset else None) or "original units"
    ticks = [textwrap.fill(s, 16, break_on_hyphens=False) for s in t["stage"]]
    if "epochs" in t:  # each stage's budget under its name
        ticks = [k if pd.isna(e) or e <= 0 else f"{k}\n{short_number(e)} epochs" for k, e in zip(ticks, t["epochs"])]
    ax.set_xticks(t.index, ticks, fontsize=8)
    ax.set(ylabel=f"test MAE ({unit})", title=route_title(t))
    legend_outside(ax)
    if device is None and "device" in t:  # each stage's devices are already joined ("a, b")
        device = joined(d for v in t["device"].dropna() for d in str(v).split(", "))
    stamp(ax.figure, dataset, device, unit)
    return ax


def plot_stage_cost(table: pd.DataFrame, ax=None, *, dataset=None, device=None):
    """Bars from zero: training seconds per epoch of each stage's chosen configuration (the route's table)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3))
    t, names = table.reset_index(drop=True), table["stage"].reset_index(drop=True)
    if "device" in t and t["device"].nunique() > 1:  # seconds on different devices: say which bar ran where
        names = names + "\n(" + t["device"].fillna("device not recorded") + ")"
    ax.barh(names[::-1], t["s/epoch"][::-1], color="tab:green")
    for y, v in enumerate(t["s/epoch"][::-1]):
        if pd.notna(v):
            ax.text(v, y, f" {v:.1f} s", va="center", fontsize=8)
    top = t["s/epoch"].max()
    ax.set_xlim(0, 1.15 * top if pd.notna(top) and top > 0 else 1.0)  # bars start at zero; room for the labels
    ax.set(xlabel="training seconds per epoch", title="Training cost per stage (its chosen configuration)")
    if device is None and "device" in t:
        device = joined(t["device"])
    stamp(ax.figure, dataset, device, "seconds per epoch")
    return ax


def plot_time_to_accuracy(runs, hist, ax=None, peer_mae=None, peer_minutes=None, device: str = "this CPU"):
    """Validation MAE (a line a run) and test MAE (mean +- sd at the mean training time, a legend entry a
    configuration) against training minutes, with the peer STID and STAEformer's CPU point."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8.5, 4.6))
    h = wall_clock(hist).dropna(subset=["val_mae"])
    table = time_to_accuracy(runs, hist)
    shared = set(table.loc[table["name"].duplicated(), "name"])
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, row in table.iterrows():
        c = colors[i % len(colors)]
        sel = h[(h["file"] == row["file"]) & (h["name"] == row["name"])]
        for _, run in sel.groupby("run_dir"):
            ax.plot(run["minutes"], run["val_mae"], color=c, lw=0.8, alpha=0.5)
        name = f"{row['name']} [{Path(row['file']).stem}]" if row["name"] in shared else row["name"]
        sd, label = row["test MAE sd"], f"{name}: test {row['test MAE']:.2f} ({row['seeds']} seeds)"
        point = {"fmt": "o", "color": c, "ms": 7, "capsize": 4, "mec": "black", "label": label}
        ax.errorbar(row["train minutes"], row["test MAE"], yerr=0 if pd.isna(sd) else sd, **point)
    ax.plot([], [], color="grey", lw=0.8, label="validation MAE, one line a run (its configuration's colour)")
    if peer_mae is not None:
        ax.plot(
            [peer_minutes or 7], [peer_mae], "s", color="black", ms=8, label=f"peer STID (BasicTS): test {peer_mae}"
        )
    ref = STAEFORMER_CPU
    ax.plot(
        [ref["minutes"]], [ref["mae"]], "X", color="tab:red", ms=10, label=f"STAEformer's own code: test {ref['mae']}"
    )
    ax.set_xscale("log")
    ax.set_ylim(min(table["test MAE"].min(), peer_mae or 99) - 1, max(ref["mae"], table["test MAE"].max()) + 3)
    dataset = joined(runs["dataset"]) if "dataset" in runs else None
    unit = (unit_of(dataset) if dataset else None) or "vehicles/5 min"  # the committed runs are PEMS08 flow
    title = f"Accuracy against training time on {dataset or 'pems08-tail'}"
    ax.set(xlabel=f"training wall clock, minutes (log scale; {device})", ylabel=f"MAE ({unit})", title=title)
    legend_outside(ax, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    used = joined(device_label(d) for d in runs["device"]) if "device" in runs else None
    stamp(ax.figure, dataset or "pems08-tail", f"{device}" + (f" (runs: {used})" if used else ""), unit)
    return ax


def _ticks_at(axis, values, fmt, min_share: float) -> None:
    """Log-axis ticks at the measured values only (fmt), skipping any closer to the last one kept than min_share of
    the axis' span (no overlapping labels); minor ticks off."""
    lo, hi = axis.get_view_interval()
    min_gap = min_share * (np.log10(hi) - np.log10(lo)) if lo > 0 and hi > lo else 0.0
    kept = []
    for v in sorted({float(v) for v in values if v > 0}):
        if not kept or np.log10(v) - np.log10(kept[-1]) >= min_gap:
            kept.append(v)
    axis.set_major_locator(FixedLocator(kept))
    axis.set_ticklabels([fmt(v) for v in kept])
    axis.set_minor_locator(NullLocator())


def plot_scale(table: pd.DataFrame, axes=None, *, device=None):
    """Step time and peak memory against N (log-log, ticks at the measured N) with the fitted exponents."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    ok = table.dropna(subset=["step_s"]) if "step_s" in table else table.iloc[:0]
    handles = []
    panels = (
        (axes[0], "step_s", "step time", "seconds per training step", lambda v: f"{v:.3g}"),
        (axes[1], "peak_mb", "peak memory", "peak memory (MiB)", lambda v: f"{v:,.0f}" if v >= 10 else f"{v:.2g}"),
    )
    for i, (ax, col, what, ylabel, fmt) in enumerate(panels):
        k = fit_growth(ok, col)
        (line,) = ax.loglog(ok["N"], ok[col], "o-", color=f"C{i}", label=f"{what}, measured (N^{k:.2f})")
        handles.append(line)
        if len(ok):
            n0, v0 = float(ok["N"].iloc[0]), float(ok[col].iloc[0])
            grid = np.array([ok["N"].min(), ok["N"].max()], dtype=float)
            ref = [
                ax.loglog(grid, v0 * grid / n0, "k:", lw=1, label="linear in N")[0],
                ax.loglog(grid, v0 * (grid / n0) ** 2, "r:", lw=1, label="quadratic in N")[0],
            ]
            _ticks_at(ax.xaxis, ok["N"], lambda v: f"{v:,.0f}", 0.12)
            _ticks_at(ax.yaxis, ok[col], fmt, 0.07)
        title = f"{what.capitalize()} grows as N^{k:.2f}"
        ax.set(xlabel="sensors N (ticks at the measured N)", ylabel=ylabel, title=title)
    if len(ok):
        handles += ref
    legend_outside(axes[-1], handles)
    if device is None and "device" in ok and len(ok):
        dtype = f", {joined(ok['dtype'])}" if "dtype" in ok else ""
        device = f"{joined(device_label(d) for d in ok['device'])}{dtype}"
    batch = f"batch {joined(ok['batch'])}, " if "batch" in ok and len(ok) else ""
    what = f"random inputs ({batch}12 steps x N sensors)"
    stamp(axes[0].figure, what, device, "seconds per training step; MiB of peak memory")
    return axes
