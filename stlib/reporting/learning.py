"""The learning curve: test MAE against training days per model (mean +- sd over seeds, seed-ensemble MAE), the gap
between two models per span with its verdict, trends in ln(days) and 1/days and what they imply, labelled extrapolations,
at the published models' training span."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .figstyle import legend_outside, stamp, unit_of
from .records import joined
from .report import committed
from .results import UNKNOWN, from_export, seed_summary, versus

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
    table = from_export(rows, keep=("model", "days", "batch"))
    out = _costs(seed_summary(table, by=["model", "days"]), table, ["model", "days"])
    return out.reset_index().sort_values(["model", "days"], ignore_index=True)


def handover(history: pd.DataFrame, stem_epochs: int, stem_patience: int) -> pd.DataFrame:
    """Per stage-2 run of a stacked history (run_dir, epoch, val_mae): the epoch its attention blocks joined, replayed
    by the model's own rule (alternating.stalled on the validations before each epoch), the best validation MAE of
    STID's path before it and of the whole model after it, and the margin after minus before (> 0: validation never
    took the blocks, and the checkpoint tested is STID's path). A run that ended in the stem has no blocks figures."""
    from ..models.alternating import stalled

    rows = []
    for run, h in history.groupby("run_dir", sort=False):
        h = h.sort_values("epoch")
        epochs, val = h["epoch"].to_list(), h["val_mae"].to_list()
        seen = [[v for v in val[:i] if pd.notna(v)] for i in range(len(val))]  # the validations before each epoch
        i = next((i for i, e in enumerate(epochs) if e > stem_epochs or stalled(seen[i], stem_patience)), len(val))
        stem, blocks = np.nanmin(val[:i]) if i else np.nan, np.nanmin(val[i:]) if i < len(val) else np.nan
        rows.append({"run_dir": run, "blocks joined": epochs[i] if i < len(val) else pd.NA, "stem val": stem})
        rows[-1] |= {"blocks val": blocks, "margin": blocks - stem, "blocks epochs": len(val) - i}
    return pd.DataFrame(rows, columns=["run_dir", "blocks joined", "stem val", "blocks val", "margin", "blocks epochs"])


def stem_rule(profile, presets) -> tuple[int, int] | None:
    """(stem_epochs, stem_patience) of the first of `presets` (a profile's preset names) whose model has a stem."""
    for name in presets:
        if name in profile.presets and getattr(m := profile.run_config(preset=name).model, "stem_epochs", 0):
            return m.stem_epochs, m.stem_patience
    return None


def _handovers(runs: pd.DataFrame, history: pd.DataFrame, stem, by) -> pd.DataFrame:
    """handover() of the stage-2 runs (model 'alternating') of an export, summarised per `by`: runs, the mean epoch
    the blocks joined, the mean stem and blocks validation MAE, the margin's mean and sd, and how many runs' best
    validation came after the blocks joined (`blocks taken`)."""
    alt = runs[runs["model"] == "alternating"]
    h = handover(history[history["run_dir"].isin(alt["run_dir"])], *stem).merge(alt, on="run_dir")
    h["blocks taken"] = h["margin"] < 0
    g = h.groupby(by, sort=False)
    out = g[["blocks joined", "stem val", "blocks val", "margin"]].mean()
    out.insert(0, "runs", g.size())
    out.insert(out.columns.get_loc("margin") + 1, "margin sd", g["margin"].std(ddof=1))
    return out.assign(**{"blocks taken": g["blocks taken"].sum()}).reset_index()


def _costs(out: pd.DataFrame, table: pd.DataFrame, by) -> pd.DataFrame:
    """seed_summary()'s rows with what each configuration cost: its params, the slowest seed's training minutes and
    how the runs shared the machine (their export's batch labels)."""
    g = table.groupby(by, sort=False)
    out["params"] = g["params"].first() if "params" in table else np.nan
    out["slowest min"] = g["seconds"].max() / 60 if "seconds" in table else np.nan
    out["machine"] = g["batch"].agg(joined) if "batch" in table else ""
    return out


def gap(table: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Per span: MAE of a minus b, the seed spread (the two sds added, the verdict rule's) and a's verdict."""
    t = table.set_index(["days", "model"])["MAE"].unstack(), table.set_index(["days", "model"])["MAE sd"].unstack()
    mae, sd = t
    out = pd.DataFrame({f"{a} MAE": mae[a], f"{b} MAE": mae[b], "gap": mae[a] - mae[b], "spread": sd[a] + sd[b]})
    out["verdict"] = [versus(mae.at[d, a], sd.at[d, a], mae.at[d, b], sd.at[d, b]) for d in out.index]
    return out.reset_index()


# the trend forms: column = c0 + c1 * g(days); ln has no floor, 1/days levels off at c0 as the span grows
TRENDS = {"ln(days)": np.log, "1/days": np.reciprocal}


def trend(table: pd.DataFrame, column: str = "MAE", at: float = PUBLISHED_DAYS) -> pd.DataFrame:
    """Per model and trend form (TRENDS): the least-squares fit column = c0 + c1 * g(days) over its spans, what it
    gives for doubling the largest span, its value at `at` days (an extrapolation beyond the spans measured) and
    the largest residual of the fit (which form the spans support)."""
    rows = []
    for model, g in table.groupby("model", sort=False):
        days, y = g["days"].to_numpy(float), g[column].to_numpy(float)
        for form, fn in TRENDS.items():
            c1, c0 = np.polyfit(fn(days), y, 1)
            resid = np.abs(y - (c0 + c1 * fn(days))).max()
            nxt = c1 * (fn(2 * days.max()) - fn(days.max()))
            rows.append({"model": model, "form": form, "next doubling": nxt, f"at {at:g} days": c0 + c1 * fn(at)})
            rows[-1] |= {"c0": c0, "c1": c1, "largest residual": resid, "spans": len(g)}
    cols = ["model", "form", "next doubling", f"at {at:g} days", "c0", "c1", "largest residual", "spans"]
    return pd.DataFrame(rows, columns=cols)  # no rows (and no lines drawn) for a table without models


def comparison(export: pd.DataFrame, configs: dict[str, str], target: float | None = None) -> pd.DataFrame:
    """One row per configuration ({run name: label}, in that order; several names may share a label): seeds, MAE,
    MAE sd, ensemble MAE, ... over the runs named so (other runs left out; a label without runs has 0 seeds and
    no figures, as a misspelt name would); `meets target`: mean MAE <= target."""
    rows = export[export["name"].isin(configs)].assign(label=lambda d: d["name"].map(configs))
    table = from_export(rows.drop(columns="name").rename(columns={"label": "name"}), keep=("batch",))
    out = _costs(seed_summary(table), table, "config").reindex(list(dict.fromkeys(configs.values())))
    out["seeds"] = out["seeds"].fillna(0).astype(int)
    if target is not None:
        out["meets target"] = out["MAE"] <= target
    return out


def seed_figure(r, sep=", ") -> str:
    """A comparison row as 'MAE ± sd<sep>n seeds' ('no runs yet' without any; no ± with one seed)."""
    if not r["seeds"]:
        return "no runs yet"
    sd = f" ± {r['MAE sd']:.3f}" if pd.notna(r["MAE sd"]) else ""
    n = int(r["seeds"])
    return f"{r['MAE']:.3f}{sd}{sep}{n} seed{'s' * (n > 1)}"


def verdicts(table: pd.DataFrame, pairs) -> list[str]:
    """'a (MAE +- sd, n seeds) <verdict> b (...): difference d, spread s' for each (a, b) of pairs (rows of table)."""

    lines = []
    for a, b in pairs:
        ra, rb = table.loc[a], table.loc[b]
        word = versus(ra["MAE"], ra["MAE sd"], rb["MAE"], rb["MAE sd"])
        a_, b_ = f"{a} ({seed_figure(ra)})", f"{b} ({seed_figure(rb)})"
        line = f"{a_} vs {b_}: {UNKNOWN}" if word == UNKNOWN else f"{a_} {word} {b_}"
        if ra["seeds"] and rb["seeds"]:
            line += f"{', d' if word == UNKNOWN else ': d'}ifference {ra['MAE'] - rb['MAE']:+.3f}"
            line += f", spread {ra['MAE sd'] + rb['MAE sd']:.3f}" if pd.notna(ra["MAE sd"] + rb["MAE sd"]) else ""
        lines.append(line)
    return lines


def _whole(df: pd.DataFrame) -> pd.DataFrame:
    """Counts as whole numbers for the report: seeds, epochs, params, and the best epoch's mean rounded."""
    out = df.copy()
    for c in ("seeds", "epochs", "params", "best epoch", "spans", "runs", "blocks joined", "blocks taken"):
        if c in out:
            out[c] = out[c].round().astype("Int64")
    return out


def context_windows(ds, contexts: dict[str, list[int]]) -> pd.DataFrame:
    """Per context ({label: data.lags}): the windows of each split and how many of them read rows before the first
    row (that part missing); inputs per window."""
    rows = []
    for label, lags in contexts.items():
        d = ds.with_lags(lags) if lags else ds
        row = {"context": label, "lags": " ".join(map(str, lags)) or "none", "input steps": d.input_steps}
        for split, starts in d.splits.items():
            row |= {f"{split} windows": len(starts), f"{split} partly missing": d.context_missing(split)}
        rows.append(row)
    return pd.DataFrame(rows).set_index("context")


# the context comparison's columns as notebook 04 and REPORT.md show them (those the table has)
COMPARISON_COLUMNS = ["seeds", "MAE", "MAE sd", "ensemble MAE", "MAE h3", "MAE h12", "best epoch", "epochs", "s/epoch"]
COMPARISON_COLUMNS += ["slowest min", "params", "machine", "meets target"]
CURVE_COLUMNS = ["model", "days", "seeds", "MAE", "MAE sd", "ensemble MAE", "MAE h3", "MAE h12", "best epoch", "epochs"]
CURVE_COLUMNS += ["s/epoch", "slowest min", "params", "machine"]


def study(p: dict, ds, bench_dir, stem: tuple[int, int] | None = None) -> dict:
    """Notebook 04's parameters p (learning_curve, learning_models, learning_gap, contexts, context, context_configs,
    context_pairs, context_target) read against the committed exports under bench_dir and the dataset ds: the
    tables by name (curve, trend, gap, windows, comparison, verdicts), those the parameters ask for; with `stem`
    (stem_rule()), also when the stage-2 runs' blocks joined and whether validation took them (handover per span,
    context handover per configuration), read from each export's _history.csv."""
    out, full_days = {}, (ds.train_rows.stop - ds.train_rows.start) / ds.steps_per_day  # the span without train_days
    if p.get("learning_curve"):
        out["curve runs"] = pd.read_csv(Path(bench_dir) / p["learning_curve"])
        lc = out["curve"] = curve(out["curve runs"], full_days, p["learning_models"])
        spans = lc.groupby("model")["days"].nunique()
        out["trend"] = trend(lc[lc["model"].isin(spans.index[spans >= 3])])  # a line needs 3 spans to be tested
        if p.get("learning_gap"):
            out["gap"] = gap(lc, *p["learning_gap"])
        if stem:
            runs = out["curve runs"].assign(days=out["curve runs"]["train_days"].fillna(full_days))
            hist = committed(bench_dir, [p["learning_curve"]])[1]
            out["handover"] = _handovers(runs, hist, stem, "days").sort_values("days", ignore_index=True)
    if p.get("contexts"):
        out["windows"] = context_windows(ds, p["contexts"])
    if p.get("context"):
        out["context runs"] = pd.concat([pd.read_csv(Path(bench_dir) / f) for f in p["context"]], ignore_index=True)
        out["comparison"] = comparison(out["context runs"], p["context_configs"], p.get("context_target"))
        out["verdicts"] = verdicts(out["comparison"], p.get("context_pairs") or [])
        if stem:
            runs = out["context runs"][out["context runs"]["name"].isin(p["context_configs"])]
            runs = runs.assign(config=runs["name"].map(p["context_configs"])).drop_duplicates("run_dir")
            hist = committed(bench_dir, p["context"])[1]
            out["context handover"] = _handovers(runs, hist, stem, "config")
    return out


HANDOVER_TEXT = (
    "Did validation take the attention blocks? Per stage-2 run, the epoch they joined, the best validation MAE of "
    "STID's path before and of the whole model after, and the margin (after minus before; > 0: the checkpoint "
    "tested is STID's path):"
)


def markdown(s: dict, table_markdown) -> str:
    """study()'s tables as REPORT.md sections (table_markdown: DataFrame -> markdown); '' when there are none."""
    parts = []
    if "curve" in s:
        parts.append(
            "## When attention pays: the learning curve\n\n"
            + table_markdown(_whole(s["curve"][[c for c in CURVE_COLUMNS if c in s["curve"]]].round(3)))
        )
        if len(s["trend"]):
            parts.append(
                "Trends, linear in ln(days) (no floor) and in 1/days (levelling off at c0); the value at 37.2 days "
                "is an extrapolation, the residual says which form the spans support:\n\n"
                + table_markdown(_whole(s["trend"].round(3)))
            )
        if "gap" in s:
            parts.append("The gap per span, with the seed-spread verdict:\n\n" + table_markdown(s["gap"].round(3)))
        if "handover" in s:
            parts.append(HANDOVER_TEXT + "\n\n" + table_markdown(_whole(s["handover"].round(3))))
        parts.append("![learning curve](figures/05_learning_curve.png)")
    if "windows" in s or "comparison" in s:
        parts.append("## Context STID cannot read: a day and a week back")
    if "windows" in s:
        parts.append("The training windows each context leaves:\n\n" + table_markdown(s["windows"].reset_index()))
    if "comparison" in s:
        table = s["comparison"][[c for c in COMPARISON_COLUMNS if c in s["comparison"]]]
        table = _whole(table.round(3)).reset_index()
        parts.append(table_markdown(table) + "\n\n" + "\n".join(f"- {v}" for v in s["verdicts"]))
        if "context handover" in s:
            parts.append(HANDOVER_TEXT + "\n\n" + table_markdown(_whole(s["context handover"].round(3))))
        parts.append("![context](figures/05_context.png)")
    return "\n\n".join(parts)


def plot_comparison(table: pd.DataFrame, target: float | None = None, ax=None, *, dataset=None, device=None):
    """comparison()'s rows as points: mean test MAE +- 1 sd over seeds, the seed ensemble as a ring, the target
    dotted; the axis spans the figures (bars from zero would hide differences of a tenth)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 0.5 * len(table) + 1.4))
    y = np.arange(len(table))[::-1]
    ax.errorbar(table["MAE"], y, xerr=table["MAE sd"].fillna(0), fmt="o", capsize=4, label="mean ± 1 sd over seeds")
    if "ensemble MAE" in table:
        ax.plot(table["ensemble MAE"], y, "o", mfc="none", ms=10, color="C2", label="seed ensemble")
    if target is not None:
        ax.axvline(target, ls=":", color="C3", label=f"target {target:g}")
    for yi, (_, r) in zip(y, table.iterrows()):
        text = seed_figure(r, " (") + ")" if r["seeds"] else "no runs yet"
        x = r["MAE"] if r["seeds"] else np.nanmin(table["MAE"])
        ax.annotate(text, (x, yi), xytext=(0, 9), textcoords="offset points", fontsize=8)
    ax.set_yticks(y, table.index)
    ax.set(xlabel="test MAE (masked)", title="Test MAE per configuration", ylim=(-0.6, len(table) - 0.2))
    ax.margins(x=0.25)
    legend_outside(ax)
    stamp(ax.figure, dataset, device, unit_of(dataset) if dataset else None)
    return ax


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
        for (_, f), ls in zip(fits[fits["model"] == model].iterrows() if fits is not None else [], ("--", ":")):
            x = np.geomspace(g["days"].max(), PUBLISHED_DAYS, 20)
            ax.plot(
                x,
                f["c0"] + f["c1"] * TRENDS[f["form"]](x),
                ls=ls,
                color=colors[model],
                alpha=0.7,
                label=f"{model}: linear in {f['form']}, extrapolated",
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
    stamp(ax.figure, dataset, device, unit_of(dataset) if dataset else None)
    return ax
