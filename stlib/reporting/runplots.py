"""Plots of training runs: learning curves, error by horizon, forecasts, speed and ablation bars (spreads +- 1 sd)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from .figstyle import joined, legend_outside, run_device, stamp, unit_of

KIND_COLOURS = dict(start="0.55", alone="tab:blue", cumulative="tab:green", extra="tab:orange", component="tab:purple")
KIND_COLOURS |= {"baseline": "tab:gray"}
KIND_WORDS = dict(start="starting point", alone="one item alone", cumulative="items cumulated", extra="extra check")
KIND_WORDS |= {"component": "one component added", "baseline": "baseline"}
NO_EFFECT = "did not act at this budget"
CANNOT_ACT = "cannot act at this budget"
LINE_STYLES = ("-", "--", "-.", ":")


def _dataset(runs: dict):
    """The dataset of the first run that carries one (all runs of a figure share it), else None."""
    return next((run.dataset for run in runs.values() if getattr(run, "dataset", None) is not None), None)


def run_devices(runs: dict, device=None) -> str | None:
    """The device named by the caller, else the devices the runs trained on, in words (their records), else None."""
    return device if device is not None else joined(run_device(run) for run in runs.values())


def _unit(dataset, unit: str | None = None) -> str:
    """The unit asked for, else a Dataset's own (or that of a dataset known by name), else 'original units'."""
    own = unit_of(dataset) if isinstance(dataset, str) else dataset.unit if dataset is not None else None
    return unit or own or "original units"


def _colours(names) -> dict:
    return {name: f"C{i}" for i, name in enumerate(dict.fromkeys(names))}


def _seed_rows(runs: dict, column) -> pd.DataFrame:
    """One row per (model, seed, x) of a per-run series: model, seed, x, y; column(run) -> (x, y) arrays."""
    frames = []
    for (name, seed), run in runs.items():
        x, y = column(run)
        frames.append(pd.DataFrame({"model": name, "seed": seed, "x": np.asarray(x), "y": np.asarray(y, dtype=float)}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["model", "seed", "x", "y"])


def _seed_lines(rows: pd.DataFrame, ax, colours: dict, labels: bool = True, **kw) -> None:
    """Mean over seeds per model with a +-1 sd band (or bars: err_style="bars"), one colour per model."""
    import seaborn as sns

    for i, (name, g) in enumerate(rows.groupby("model", sort=False)):
        n = g["seed"].nunique()
        label = {"label": f"{name} ({n} seed{'s' if n > 1 else ''})"} if labels else {}
        # a line style per model as well as a colour: curves that coincide stay distinguishable
        style = {"color": colours[name], "linestyle": LINE_STYLES[i % 4], **label, **kw}
        sns.lineplot(data=g, x="x", y="y", errorbar="sd", ax=ax, legend=False, **style)


def _validations(run):
    h = run.history.dropna(subset=["val_mae"])
    return h["epoch"], h["val_mae"]


def learning_curves(runs: dict, ax=None, *, device=None):
    """Training loss (z units) and validation MAE per epoch, mean +- 1 sd over seeds per model."""
    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(11, 3.6))
    trained = {k: r for k, r in runs.items() if not r.history.empty}
    colours = _colours(name for name, _ in trained)
    loss = _seed_rows(trained, lambda r: (r.history["epoch"], r.history["train_loss"]))
    _seed_lines(loss, ax[0], colours, labels=False, marker=".")
    _seed_lines(_seed_rows(trained, _validations), ax[1], colours, marker=".")
    ds = _dataset(runs)
    ax[0].set(title="training loss (masked MAE, z units)", xlabel="epoch", ylabel="masked MAE (z units)")
    ax[1].set(title=f"validation MAE ({_unit(ds)})", xlabel="epoch", ylabel=f"MAE ({_unit(ds)})")
    for a in ax[:2]:
        a.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    legend_outside(ax[1], title="mean ± 1 sd over seeds", title_fontsize=8)
    stamp(ax[0].figure, ds, run_devices(runs, device), _unit(ds))
    return ax


def error_by_horizon(runs: dict, ax=None, references: dict | None = None, *, device=None):
    """Test MAE at every horizon step, mean +- 1 sd over seeds per model (error bars); optional reference points."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3.8))
    steps = lambda r: (np.arange(1, len(r.metrics["test"]["mae_per_step"]) + 1), r.metrics["test"]["mae_per_step"])
    rows = _seed_rows(runs, steps)
    _seed_lines(rows, ax, _colours(rows["model"]), marker="o", err_style="bars", err_kws={"capsize": 3})
    for label, points in (references or {}).items():
        hs = [h for h in (3, 6, 12) if f"mae_h{h}" in points]
        if hs:
            ax.plot(hs, [points[f"mae_h{h}"] for h in hs], "k--", marker="x", alpha=0.6, label=f"peer: {label}")
    ds = _dataset(runs)
    step = f"{ds.interval_minutes}-minute steps" if ds is not None else "steps"
    if len(rows):
        ax.set_xticks(np.arange(1, int(rows["x"].max()) + 1))
    title = "Test error by forecast horizon (mean ± 1 sd over seeds)"
    ax.set(xlabel=f"horizon ({step} ahead)", ylabel=f"test MAE ({_unit(ds)})", title=title)
    legend_outside(ax)
    stamp(ax.figure, ds, run_devices(runs, device), _unit(ds))
    return ax


def forecast_vs_truth(runs: dict, dataset, sensors=(0, 1, 2), horizon: int = 12, *, device=None):
    """The true value and each model's `horizon`-step-ahead forecast over the test split's first day, per sensor."""
    n = dataset.steps_per_day
    fig, axes = plt.subplots(len(sensors), 1, figsize=(11, 2.4 * len(sensors)), sharex=True, squeeze=False)
    first = {}
    for (name, seed), run in runs.items():
        if name not in first:  # first seed of each model
            first[name] = (seed, run.predict("test")[0][:n, horizon - 1])  # (n, N): made `horizon` steps earlier
    at = dataset.splits["test"][:n] + dataset.in_steps + horizon - 1
    times, truth = dataset.timestamps[at], dataset.target[at]  # (n, N)
    for ax, s in zip(axes[:, 0], sensors):
        ax.plot(times, np.where(truth[:, s] == 0, np.nan, truth[:, s]), "k", lw=1.8, label="true")
        for name, (seed, p) in first.items():
            ax.plot(times, p[:, s], lw=1, label=f"{name} (seed {seed})")
        ax.set_ylabel(f"sensor {dataset.sensors[s]}" + (f"\n{dataset.unit}" if dataset.unit else ""))
    minutes = dataset.interval_minutes * horizon
    axes[0, 0].set_title(f"{horizon}-step-ahead forecast ({minutes} min) vs true {dataset.value_name}, test split")
    legend_outside(axes[0, 0])
    fig.autofmt_xdate()
    stamp(fig, dataset, run_devices(runs, device), _unit(dataset))
    return fig


# epoch_seconds' columns: the history's column of each
EPOCH_PHASES = {"s/epoch (train)": "train_seconds", "validation s": "validation_s", "data s": "data_s"}
EPOCH_PHASES |= {"forward s": "forward_s", "backward s": "backward_s", "optimizer s": "optimizer_s"}
EPOCH_PHASES |= {"samples/s": "samples_per_s"}


def epoch_seconds(runs: dict) -> pd.DataFrame:
    """Median seconds per epoch and its phase split per model (trained runs only)."""
    medians = lambda h: {k: h[c].median() for k, c in EPOCH_PHASES.items()}
    rows = [{"model": m, "seed": s, **medians(r.history)} for (m, s), r in runs.items() if not r.history.empty]
    return pd.DataFrame(rows).round(3)


def phase_bars(table: pd.DataFrame, ax=None, *, dataset=None, device=None):
    """Stacked bars from zero: seconds per epoch of each speed-ladder rung by phase, speed-up on top; the footer
    names dataset and device (else the table's `device` column)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 4))
    bottom = np.zeros(len(table))
    for p in ["data_s", "forward_s", "backward_s", "optimizer_s", "validation_s"]:
        ax.bar(table["rung"], table[p], bottom=bottom, label=p.replace("_s", ""))
        bottom += table[p].to_numpy()
    for i, (total, sp) in enumerate(zip(table["s_per_epoch"], table["speedup"])):
        ax.text(i, total, f"{sp:.2f}x", ha="center", va="bottom", fontsize=9)
    top = float(np.nanmax(np.r_[bottom, table["s_per_epoch"].to_numpy(dtype=float)]))
    ax.set_ylim(0, 1.12 * top if top > 0 else 1)  # bars start at zero; room for the speed-up labels
    title = "Speed ladder: where an epoch's time goes (label: speed-up over the first rung)"
    ax.set(ylabel="seconds per epoch", title=title)
    plt.setp(ax.get_xticklabels(), rotation=25, ha="right", rotation_mode="anchor")
    legend_outside(ax, title="phase", title_fontsize=8)
    if device is None and "device" in table:
        device = joined(table["device"])
    stamp(ax.figure, dataset, device, "seconds per epoch")
    return ax


def no_effect(summary: pd.DataFrame, reference: str | None) -> pd.Series:
    """True for each configuration whose mean and sd equal the reference's to the last digit: a change that did
    nothing at this budget (same seeds, same numbers), not a result."""
    if reference is None or reference not in summary.index:
        return pd.Series(False, index=summary.index)

    def same(col):
        a, b = col.to_numpy(dtype=float), float(col.loc[reference])
        return (np.isnan(a) & np.isnan(b)) | np.isclose(a, b, rtol=1e-12, atol=0.0)

    sd = summary["MAE sd"] if "MAE sd" in summary else pd.Series(np.nan, index=summary.index)
    return pd.Series(same(summary["MAE"]) & same(sd), index=summary.index) & (summary.index != reference)


def config_bars(
    summary: pd.DataFrame,
    ax=None,
    reference: str | None = "start",
    lines: dict | None = None,
    title: str = "Test MAE per configuration (mean ± 1 sd over seeds)",
    *,
    seeds: pd.DataFrame | None = None,
    dataset=None,
    device=None,
    unit: str | None = None,
):
    """Horizontal bars from zero of mean test MAE per configuration (summary: MAE, MAE sd, optional kind / acts /
    note), seed sd error bars and each seed as a dot (seeds: config, MAE); labelled with the difference to `reference`.

    A configuration equal to the reference to the last digit is hatched (did not act); one that cannot act at this
    budget gets no bar, only its reason. lines: {label: MAE} dotted lines; dataset, device, unit: the footer."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 0.42 * len(summary) + 1.2))
    n, idx = len(summary), summary.index
    kinds = summary["kind"] if "kind" in summary else pd.Series("alone", index=idx)
    mae = summary["MAE"].to_numpy(dtype=float)
    sd = summary["MAE sd"].fillna(0).to_numpy(dtype=float) if "MAE sd" in summary else np.zeros(n)
    notes = summary["note"].fillna("").astype(str) if "note" in summary else pd.Series("", index=idx)
    # not results: a change that cannot act at this budget (summarize's `acts`), or one that changed nothing
    idle = ~summary["acts"].astype(bool).to_numpy() if "acts" in summary else np.zeros(n, dtype=bool)
    cannot = idle & notes.str.startswith(CANNOT_ACT).to_numpy()
    noop = (no_effect(summary, reference).to_numpy() | idle) & ~cannot
    # a configuration that cannot act gets no bar, no error bar and no seed dots: only its reason
    bar_style = {"color": [KIND_COLOURS.get(k, "tab:blue") for k in kinds], "alpha": 0.85, "error_kw": {"lw": 1}}
    bars = ax.barh(np.arange(n), np.where(cannot, 0.0, mae), xerr=np.where(cannot, 0.0, sd), capsize=3, **bar_style)
    for bar, flat, skip in zip(bars, noop, cannot):
        if flat:
            bar.set(facecolor="white", edgecolor="0.45", hatch="///", alpha=1.0)
        bar.set_visible(not skip)
    ref = summary.loc[reference, "MAE"] if reference is not None and reference in idx else None
    if seeds is not None and len(seeds):
        import seaborn as sns

        dots = seeds[seeds["config"].isin(idx)]
        dots = dots.assign(MAE=dots["MAE"].where(~dots["config"].isin(idx[cannot])))  # NaN: not drawn
        style = {"orient": "h", "color": "black", "size": 3, "jitter": 0.15, "alpha": 0.7, "legend": False}
        sns.stripplot(data=dots, x="MAE", y="config", order=list(idx), ax=ax, **style)
    hi = float(np.nanmax(mae + sd)) if n else 1.0
    words = {k: KIND_WORDS.get(k, k) for k in kinds}
    handles = [Patch(color=KIND_COLOURS.get(k, "tab:blue"), alpha=0.85, label=w) for k, w in words.items()]
    if ref is not None:
        handles.append(ax.axvline(ref, color="0.3", ls="--", lw=1, label=f"reference: {reference}"))
    for i, (label, value) in enumerate((lines or {}).items()):
        handles.append(ax.axvline(value, color=f"C{i + 3}", ls=":", lw=1.5, label=label))
        hi = max(hi, value)
    if noop.any():
        handles.append(Patch(facecolor="white", edgecolor="0.45", hatch="///", label=f"{NO_EFFECT} (= {reference})"))
    if seeds is not None and len(seeds):
        handles.append(Line2D([], [], ls="", marker="o", ms=3, color="black", label="one seed"))
    box = {"facecolor": "white", "alpha": 0.75, "lw": 0, "pad": 1}
    for i, name in enumerate(idx):
        if cannot[i]:
            reason = notes.iloc[i][len(CANNOT_ACT) :].lstrip(": ")
            text = f"{CANNOT_ACT}: " + (reason if len(reason) <= 80 else reason[:77] + "...")
        elif noop[i]:
            text = f"{NO_EFFECT}: {mae[i]:.3f}, the same as {reference}"
        else:
            text = f"{mae[i]:.3f} ± {sd[i]:.3f}"
            if ref is not None and name != reference:
                text += f"   ({mae[i] - ref:+.3f} vs {reference})"
        look = {"style": "italic", "color": "0.3"} if cannot[i] else {"style": "normal", "color": "black"}
        ax.text(0.01 * hi, i, text, va="center", ha="left", fontsize=7.5, bbox=box, **look)
    ax.set_yticks(np.arange(n), idx)
    ax.set_ylim(n - 0.5, -0.5)  # first configuration on top
    ax.set_xlim(0, 1.06 * hi)  # bars start at zero: no truncated axis makes a small difference look large
    ax.set(xlabel=f"test MAE ({_unit(dataset, unit)}), masked", ylabel="", title=title)
    legend_outside(ax, handles)
    stamp(ax.figure, dataset, device, _unit(dataset, unit))
    return ax


def budget_curves(history: pd.DataFrame, ax=None, by: str = "name", *, dataset=None, device=None, unit=None):
    """Validation MAE against epoch of stacked run histories (`by`, seed, epoch, val_mae), mean over seeds with a
    +-1 sd band; dataset, device: the footer (else the history's columns), unit: the MAE's."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.6))
    h = history.dropna(subset=["val_mae"])
    rows = h.rename(columns={by: "model", "epoch": "x", "val_mae": "y"})[["model", "seed", "x", "y"]]
    _seed_lines(rows, ax, _colours(rows["model"]))
    title = "Validation MAE per epoch (band: ± 1 sd over seeds)"
    ax.set(xlabel="epoch", ylabel=f"validation MAE ({_unit(dataset, unit)})", title=title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    legend_outside(ax)
    dataset = joined(history["dataset"]) if dataset is None and "dataset" in history else dataset
    device = joined(history["device"]) if device is None and "device" in history else device
    stamp(ax.figure, dataset, device, _unit(dataset, unit))
    return ax
