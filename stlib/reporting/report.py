"""The roadmap's route as measured (MAE per stage, its ranges, the gates, speed) and REPORT.md; trains nothing.
The roadmap's MAE figures belong to its author's data (baseline 14.57): they are scaled by our baseline's MAE."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .records import atomic_write_text, device_label
from .reference import ROADMAP, STAEFORMER_CPU, STID_PEER_MAE
from .results import UNKNOWN, beats, from_export, seed_summary, versus

STAGE1_START, STAGE1_TUNED, STAGE2 = "03 stage 1 (start)", "03 stage 1 (tuned)", "04 stage 2 (alternating)"
BASELINE, WHERE_WE_STAND = "baseline: STID-style", "01 where we stand"
# the roadmap's MAE on its author's data, per stage: (low, high)
ROADMAP_RANGES = {WHERE_WE_STAND: (ROADMAP["current_mae"],) * 2, STAGE1_TUNED: (15.0, 16.0)}
ROADMAP_RANGES[STAGE2] = ROADMAP["stage2_target"]


def scaled_range(stage: str, baseline_mae: float) -> tuple[float, float]:
    """The roadmap's range for a stage, as the same ratio to our baseline."""
    (lo, hi), f = ROADMAP_RANGES[stage], baseline_mae / ROADMAP["baseline_mae"]
    return lo * f, hi * f


def _stage1_pick(s: pd.DataFrame) -> str:
    """Notebook 03's chosen configuration (its `chosen` column), else the lowest mean MAE of those that act."""
    if "chosen" in s and s["chosen"].astype(bool).any():
        return s.index[s["chosen"].astype(bool)][0]
    acting = s[s["acts"].astype(bool)] if "acts" in s else s
    return (acting if len(acting) else s)["MAE"].idxmin()


def _stage2_pick(s: pd.DataFrame) -> str:
    """The best stage-2 configuration with spatial attention (any but the temporal-only start), else the best."""
    with_space = s[s["kind"] != "start"] if "kind" in s else s
    return (with_space if len(with_space) else s)["MAE"].idxmin()


def _stage_row(stage: str, cfg: str, r: pd.Series, device, **extra) -> dict:
    """One row of the route's table from a configuration's seed summary row."""
    g = {k: float(r.get(k, float("nan"))) for k in ("MAE sd", "epochs", "s/epoch")}
    row = {"stage": stage, "configuration": cfg, "MAE": float(r["MAE"]), "MAE sd": g["MAE sd"]}
    row |= {"seeds": int(r.get("seeds", 1)), "epochs": g["epochs"], "s/epoch": g["s/epoch"]}
    return row | extra | {"device": device}


def _with_ranges(rows: list[dict], baseline: float | None, stages) -> pd.DataFrame:
    """The route's table, with the roadmap's scaled range of each of `stages` and every MAE against the baseline."""
    table = pd.DataFrame(rows)
    if baseline is not None and len(table):
        ranges = [scaled_range(s, baseline) if s in stages else (float("nan"),) * 2 for s in table["stage"]]
        table["roadmap low"], table["roadmap high"] = zip(*ranges)
        table["vs baseline"] = table["MAE"] / baseline
    return table


def route(out: Path) -> tuple[pd.DataFrame, float | None]:
    """(one row per stage reached, baseline MAE) from the stage summaries in `out`: the baseline, stage 1's start and
    notebook 03's choice, stage 2's best with spatial attention; each with its epochs and device in words."""
    rows, baseline = [], None
    s01, s03, s04 = (_read(out, f) for f in ("01_summary.csv", "03_ablation_summary.csv", "04_summary.csv"))
    if s01 is not None:
        if "stid" in s01.index:
            baseline = float(s01.loc["stid", "MAE"])
            rows.append((BASELINE, "stid", s01.loc["stid"]))
        if "encdec_start" in s01.index:
            rows.append((WHERE_WE_STAND, "encdec_start", s01.loc["encdec_start"]))
    if s03 is not None and len(s03):
        if "start" in s03.index:
            rows.append((STAGE1_START, "start", s03.loc["start"]))
        rows.append((STAGE1_TUNED, _stage1_pick(s03), s03.loc[_stage1_pick(s03)]))
    if s04 is not None and len(s04):
        rows.append((STAGE2, _stage2_pick(s04), s04.loc[_stage2_pick(s04)]))
    rows = [_stage_row(st, cfg, r, device_label(r.get("device"), missing=None)) for st, cfg, r in rows]
    return _with_ranges(rows, baseline, ROADMAP_RANGES), baseline


def _read(out, name: str) -> pd.DataFrame | None:
    return pd.read_csv(Path(out) / name, index_col=0) if (Path(out) / name).exists() else None


def stage1_why(out: Path) -> str | None:
    """Why notebook 03 chose its stage-1 configuration (the `why chosen` it wrote), if it did."""
    s = _read(out, "03_ablation_summary.csv")
    why = s["why chosen"].dropna().astype(str) if s is not None and "why chosen" in s else pd.Series(dtype=str)
    return next((w for w in why if w != ""), None)


def short_number(v) -> str:
    """An epoch count for labels: 10 as "10", 10.5 as "10.5"."""
    return f"{v:g}" if v == int(v) else f"{v:.1f}"


def budget(table: pd.DataFrame) -> str:
    """The training budget of the route's stages in words: '10 epochs each' or 'epochs differ (stage N; ...)'."""
    e = table.set_index("stage")["epochs"].dropna() if "epochs" in table and len(table) else pd.Series(dtype=float)
    e = e[e > 0]
    if e.empty:
        return "training budget not recorded"
    if e.nunique() == 1:
        return f"{short_number(e.iloc[0])} epochs each"
    return "epochs differ (" + "; ".join(f"{stage} {short_number(v)}" for stage, v in e.items()) + ")"


def _beats(table: pd.DataFrame, a: str, b: str) -> bool:
    """Stage a beats stage b beyond the seed spread (never with an unknown spread)."""
    r = table.set_index("stage")
    return bool(beats(r.loc[a, "MAE"], r.loc[a, "MAE sd"], r.loc[b, "MAE"], r.loc[b, "MAE sd"]))


def ordering(table: pd.DataFrame) -> tuple[bool | None, str]:
    """(holds, one plain sentence): does the route keep the roadmap's order (tuned stage 1 beats its start, stage 2
    beats stage 1 and the baseline, each beyond the seed spread)? holds is None with too few stages to tell."""
    stages = set(table["stage"]) if len(table) else set()
    start = STAGE1_START if STAGE1_START in stages else WHERE_WE_STAND if WHERE_WE_STAND in stages else None
    r = table.set_index("stage") if len(table) else None

    def show(stage):
        sd = r.loc[stage, "MAE sd"]
        return f"{r.loc[stage, 'MAE']:.2f}" + ("" if pd.isna(sd) else f" ± {sd:.2f}")

    def check(a, b, what_a, what_b):
        ok = _beats(table, a, b)
        return ok, f"{what_a} {'beats' if ok else 'does not beat'} {what_b}"

    checks = []
    if STAGE1_TUNED in stages and start is not None:
        if STAGE1_START in stages and r.loc[STAGE1_TUNED, "configuration"] == r.loc[STAGE1_START, "configuration"]:
            checks.append((False, "stage 1 keeps its start (no item beat the seed spread)"))
        else:
            tuned = f"the tuned stage 1 ({show(STAGE1_TUNED)})"
            checks.append(check(STAGE1_TUNED, start, tuned, f"its start ({show(start)})"))
    if STAGE2 in stages and STAGE1_TUNED in stages:
        s2 = f"stage 2 ({r.loc[STAGE2, 'configuration']}, {show(STAGE2)})"
        checks.append(check(STAGE2, STAGE1_TUNED, s2, f"stage 1 ({show(STAGE1_TUNED)})"))
    if STAGE2 in stages and BASELINE in stages:
        checks.append(check(STAGE2, BASELINE, "stage 2", f"the STID-style baseline ({show(BASELINE)})"))
    if len(checks) < 2:
        return None, "The route has too few stages to judge the roadmap's ordering."
    at = "At this budget (" + budget(table) + ")" if budget(table).endswith("each") else "At these budgets"
    said = "; ".join(t for _, t in checks)
    if all(ok for ok, _ in checks):
        return True, f"{at} the roadmap's ordering holds: {said}, each by more than the seed spread."
    return False, (
        f"{at} the roadmap's ordering does not hold: {said} (a difference counts only beyond the seed spread). "
        "This is what the budget measured, not the roadmap's route."
    )


def story(table: pd.DataFrame, why_stage1: str | None = None) -> str:
    """The report's opening paragraph: the budget, the stage-1 choice and whether the roadmap's ordering holds."""
    if not len(table):
        return "Nothing recorded yet."
    chose = [f"Stage 1 chose {why_stage1}"] if why_stage1 else []
    return " ".join([f"Training budget: {budget(table)}.", *chose, ordering(table)[1]])


def _export_rows(export: pd.DataFrame, keep=()) -> pd.DataFrame:
    """from_export's per-run rows with each device in words (older exports hold the architecture only, "x86_64")."""
    rows = from_export(export, keep)
    if "device" in rows:
        rows["device"] = rows["device"].map(device_label)
    return rows


def committed_route(bench_dir: Path, files: dict) -> tuple[pd.DataFrame, float | None]:
    """route()'s table from committed long runs, {stage: "file.csv" or "file.csv:configuration"} (else the file's
    lowest mean MAE); a "baseline..." stage's MAE scales the roadmap's ranges."""
    rows, baseline = [], None
    for stage, spec in files.items():
        fname, _, config = str(spec).partition(":")
        path = Path(bench_dir) / fname
        if not path.exists():
            raise FileNotFoundError(f"{path}: committed runs for {stage!r} not found")
        summary = seed_summary(_export_rows(pd.read_csv(path)))
        pick = config or summary["MAE"].idxmin()
        if pick not in summary.index:
            raise ValueError(f"{path}: no configuration {pick!r} (has {list(summary.index)})")
        r = summary.loc[pick]
        rows.append(_stage_row(stage, pick, r, r.get("device"), **{"train minutes": r["seconds"] / 60, "file": fname}))
        if stage.startswith("baseline"):
            baseline = rows[-1]["MAE"]
    return _with_ranges(rows, baseline, (STAGE1_TUNED, STAGE2)), baseline


def gates(table: pd.DataFrame, baseline: float | None, peer_mae=None, committed: pd.DataFrame | None = None):
    """Each decision gate of the roadmap (and the issue's peer target), from the route; with peer_mae, the committed
    stage-2 runs' best result too (budgeted_runs) and each CPU batch against STAEformer's 55 CPU minutes."""
    by = table.set_index("stage")["MAE"] if len(table) else pd.Series(dtype=float)
    rows = []
    if baseline is not None:
        ratio = ROADMAP["stage1_gate_mae"] / ROADMAP["baseline_mae"]
        if STAGE1_TUNED in by:
            gate = f"stage 1 -> stage 2: MAE <= 16 on the roadmap's data (x{ratio:.3f} baseline)"
            rows.append((gate, by[STAGE1_TUNED], ratio * baseline))
        if STAGE2 in by:
            rows.append(("stage 2 reaches the roadmap's 13-14 (scaled)", by[STAGE2], scaled_range(STAGE2, baseline)[1]))
            rows.append(("stage 2 beats the baseline", by[STAGE2], baseline))
    if peer_mae is not None and STAGE2 in by:
        rows.append(("stage 2 at least 5 % below the peer STID", by[STAGE2], 0.95 * peer_mae))
    if peer_mae is not None and committed is not None and len(committed):
        best = committed.loc[committed["MAE"].idxmin()]
        where = f"committed runs, best ({best['name']}, {best['device']})"
        rows.append((f"{where}: at least 5 % below the peer STID", best["MAE"], 0.95 * peer_mae))
        if baseline is not None:
            rows.append((f"{where}: beats the baseline", best["MAE"], baseline))
        ref = STAEFORMER_CPU
        for _, r in cpu_batches(committed).iterrows():
            gate = f"CPU stage 2 ({r['name']}, {_minutes(r):.0f} min a seed) beats STAEformer's own code"
            rows.append((f"{gate} within {ref['minutes']} min on this CPU", r["MAE"], ref["mae"]))
    out = pd.DataFrame(rows, columns=["gate", "MAE", "threshold"])
    out["passed"] = out["MAE"] <= out["threshold"]
    return out


def _minutes(r: pd.Series) -> float:
    """A committed batch's training minutes a seed: its budget, else the slowest seed's training time."""
    return (r["budget s"] or r["longest run s"]) / 60


def speed(bench_dir: Path) -> pd.DataFrame:
    """One row per committed speed_<device>.json: naive and fastest rung seconds per epoch."""
    rows = []
    for f in sorted(Path(bench_dir).glob("speed_*.json")):
        r = json.loads(f.read_text())
        t = pd.DataFrame(r["table"])
        s = t["s_per_epoch"]
        row = {
            "file": f.name,
            "device": r.get("device"),
            "dataset": r.get("dataset"),
            "naive s/epoch": float(s.iloc[0]),
        }
        row |= {"fastest s/epoch": float(s.min()), "fastest rung": t.loc[s.idxmin(), "rung"]}
        rows.append(row | {"speed-up": float(s.iloc[0] / s.min()), "throughput x": float(t["throughput_x"].max())})
    return pd.DataFrame(rows)


def budgeted_runs(bench_dir: Path, study: str = "stage2") -> pd.DataFrame:
    """Committed time-budgeted runs of a study (<study>_<device>.csv exports): one row per batch and config with MAE
    mean and sd over seeds, the epochs reached, the budget and the slowest seed's training time."""
    files = [f for f in sorted(Path(bench_dir).glob(f"{study}_*.csv")) if not f.stem.endswith("_history")]
    if not files:
        return pd.DataFrame()
    runs = pd.concat([pd.read_csv(f).assign(file=f.name) for f in files], ignore_index=True)
    runs = _export_rows(runs, keep=("file", "batch", "time_budget_s"))
    by = ["file", "batch", "config"]
    out = seed_summary(runs, by)[["seeds", "MAE", "MAE sd", "MAE h12", "RMSE", "epochs", "device"]]
    g = runs.groupby(by, sort=False)
    out.insert(6, "budget s", g["time_budget_s"].first())
    out.insert(7, "longest run s", g["seconds"].max())  # training wall clock of the slowest seed
    return out.reset_index().rename(columns={"config": "name"})


def committed(bench_dir: Path, files) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, stacked histories) of committed run exports (names or globs under bench_dir), each row with its `file`;
    a missing F_history.csv is an error naming it."""
    paths = sorted({p for f in files for p in Path(bench_dir).glob(f) if not p.stem.endswith("_history")})
    if not paths:
        return pd.DataFrame(), pd.DataFrame()
    runs, hists = [], []
    for f in paths:
        h = f.with_name(f.stem + "_history.csv")
        if not h.exists():
            why = f"the histories of {f.name} are missing (python -m stlib.reporting.results --histories)"
            raise FileNotFoundError(f"{h}: {why}")
        runs.append(pd.read_csv(f).assign(file=f.name))
        hists.append(pd.read_csv(h).assign(file=f.name))
    return pd.concat(runs, ignore_index=True), pd.concat(hists, ignore_index=True)


def wall_clock(hist: pd.DataFrame) -> pd.DataFrame:
    """Each history row with `minutes`: training wall clock (training + validation, no test) cumulated per run."""
    h = hist.sort_values(["run_dir", "epoch"]).copy()
    h["minutes"] = h.groupby("run_dir")["seconds"].cumsum() / 60
    return h


def time_to_accuracy(runs: pd.DataFrame, hist: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration (file, name): seeds, size, speed, training minutes (`minutes to best`: when the
    tested checkpoint was written) and the MAE they bought."""
    h = wall_clock(hist)
    best = h.loc[h.dropna(subset=["val_mae"]).groupby("run_dir")["val_mae"].idxmin(), ["run_dir", "minutes"]]
    r = runs.merge(best.rename(columns={"minutes": "minutes to best"}), on="run_dir", how="left")
    rows = from_export(r, keep=("file", "val_mae", "minutes to best")).rename(columns={"val_mae": "val MAE"})
    rows["train minutes"] = rows["seconds"] / 60
    by = ["file", "config"]
    cols = ["s/epoch", "epochs", "train minutes", "minutes to best", "val MAE", "MAE", "MAE h12"]
    out = seed_summary(rows, by, cols)[["seeds", *cols[:-1], "MAE sd", "MAE h12"]]
    out = out.rename(columns={"MAE": "test MAE", "MAE sd": "test MAE sd"})
    g = rows.groupby(by, sort=False)
    out.insert(1, "params", g["params"].first())
    out.insert(5, "train minutes max", g["train minutes"].max())
    return out.reset_index().rename(columns={"config": "name"})


def cpu_batches(committed: pd.DataFrame) -> pd.DataFrame:
    """The rows of budgeted_runs from this CPU (stage2_cpu*.csv) rather than a lent GPU."""
    return committed[committed["file"].str.startswith("stage2_cpu")]


def verdict(summary: pd.DataFrame, a: str, b: str) -> str:
    """results.versus of a against b in a sentence with the numbers (summary: indexed by config, MAE, MAE sd)."""
    if a not in summary.index or b not in summary.index:
        return f"{a} vs {b}: not both measured"
    (ma, sa), (mb, sb) = summary.loc[a, ["MAE", "MAE sd"]], summary.loc[b, ["MAE", "MAE sd"]]
    word = versus(ma, sa, mb, sb)
    head = f"{a} vs {b}: {UNKNOWN} (one seed)" if word == UNKNOWN else f"{a} {word} {b}"
    return f"{head}: {ma:.3f} vs {mb:.3f} (difference {mb - ma:+.3f}, spread {sa + sb:.3f})"


def peer_target(mae: float) -> str:
    """Whether an MAE meets the issue's target on pems08-tail: 5 % below the peer STID."""
    target = 0.95 * STID_PEER_MAE
    met = "MET" if mae <= target else "NOT met"
    return f"target (5 % below the peer STID {STID_PEER_MAE}): <= {target:.2f} -> {met}"


def against_baseline(summary: pd.DataFrame, baseline: pd.Series, label: str, peer_mae=None) -> pd.DataFrame:
    """MAE, MAE sd, MAE h12 and seeds of each configuration of a seed summary and of the baseline's row (named
    label), each as a % above (+) or below (-) the baseline's MAE and, with peer_mae, the peer's."""
    cols = ["MAE", "MAE sd", "MAE h12", "seeds"]
    out = summary[cols].copy()
    out.loc[label] = baseline[cols].to_numpy()
    out["vs STID-style %"] = 100 * (out["MAE"] / baseline["MAE"] - 1)
    if peer_mae is not None:
        out["vs peer STID %"] = 100 * (out["MAE"] / peer_mae - 1)
    return out


def stage2_verdicts(committed: pd.DataFrame, pairs) -> str:
    """What the committed stage-2 runs say (budgeted_runs' table): each batch's verdict() on the pairs (a, b) it
    measured both of; each CPU batch against STAEformer's own code on this CPU; the best against the peer target."""
    lines, ref = [], STAEFORMER_CPU
    for (f, batch), g in committed.groupby(["file", "batch"], sort=False):
        s = g.set_index("name")
        lines += [f"{f} [{batch}]"] + [f"   {verdict(s, a, b)}" for a, b in pairs if a in s.index and b in s.index]
    for _, r in cpu_batches(committed).iterrows():
        lines.append(
            f"CPU, {r['name']!r}: MAE {r['MAE']:.3f} +- {r['MAE sd']:.3f} after {_minutes(r):.0f} min of training "
            f"a seed; STAEformer's own code reached {ref['mae']:.2f} in {ref['minutes']} min on this CPU: "
            f"{ref['mae'] - r['MAE']:+.2f} for us"
        )
    best = committed.loc[committed["MAE"].idxmin()]
    lines.append(
        f"best committed stage-2 result: {best['name']!r} [{best['batch']}], MAE {best['MAE']:.3f} +- "
        f"{best['MAE sd']:.3f}; {peer_target(best['MAE'])}"
    )
    return "\n".join(lines)


def route_title(table: pd.DataFrame) -> str:
    """The route figure's title: the training budget, and whether the roadmap's ordering holds at it."""
    b, holds = budget(table), ordering(table)[0]
    head = f"Test MAE per stage, {b}" if b.endswith("each") else "Test MAE per stage"
    head += " (epochs differ: under each stage)" if b.startswith("epochs differ") else ""
    if holds is not None:
        head += f"\nthe roadmap's ordering {'holds' if holds else 'does not hold'} at this budget"
    return head


def table_markdown(df: pd.DataFrame, digits: int = 3) -> str:
    """A DataFrame as a GitHub Markdown table (floats rounded), without the tabulate dependency."""

    def cell(v):
        if v is pd.NA or isinstance(v, float) and pd.isna(v):
            return ""  # no figure (NaN, or pandas' NA of a whole-number column)
        return f"{v:.{digits}f}" if isinstance(v, float) else str(v).replace("|", "/")

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "---|" * len(df.columns)
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def markdown(
    profile,
    dataset,
    table,
    gate_table,
    speed_table,
    stage2_table=None,
    time_table=None,
    committed=False,
    summary=None,
    sections="",
) -> str:
    """REPORT.md text. summary: the opening paragraph (story(): budget, stage-1 choice, the ordering verdict);
    sections: more markdown at the end (learning.markdown: the learning curve and the context comparison)."""

    def md(df):
        return table_markdown(df) if df is not None and len(df) else "(nothing measured yet)"

    source = "the stage notebooks' records"
    if committed:
        source = "the committed long runs under outputs/benchmarks/ (the `file` column; trained outside the notebooks)"
    route_fig = "\n\n![route](figures/05_route.png)" if len(table) else ""
    time_fig = "\n\n![time to accuracy](figures/05_time_to_accuracy.png)" if time_table is not None else ""
    parts = [
        f"# Report: profile `{profile}`, dataset `{dataset}`",
        f"Written by notebooks/05_summary.ipynb from {source}. MAE is test MAE (masked, original units) averaged over "
        f"the 12 horizons, mean over seeds; the roadmap's ranges are scaled by our baseline / {ROADMAP['baseline_mae']}.",
        *([f"## In short\n\n{summary}"] if summary else []),
        "## The route\n\n" + md(table) + route_fig,
        "## Accuracy against training time\n\n" + md(time_table) + time_fig,
        "## Gates\n\n" + md(gate_table),
        "## Speed (committed benchmark files)\n\n" + md(speed_table),
        "## Stage 2, committed time-budgeted runs (pems08-tail; lent GPUs and this CPU)\n\n" + md(stage2_table),
        *([sections] if sections else []),
    ]
    return "\n\n".join(parts) + "\n"


def write(path: Path, text: str) -> Path:
    atomic_write_text(Path(path), text)
    return Path(path)
