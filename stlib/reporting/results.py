"""Run records read back into pandas: the ledger, runs, the one path to mean +- sd over seeds (metrics_table /
from_export -> seed_summary) and the one rule for "beats beyond the seed spread" (versus)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..paths import output_dir
from .records import atomic_write_text, device_label, joined, read_ledger, read_run, run_device


def ledger(root: Path | None = None) -> pd.DataFrame:
    """outputs/ledger.csv as a DataFrame (empty with the right columns when there is none); stage is text ("01")."""
    return read_ledger((root or output_dir()) / "ledger.csv")


def runs(stage: str | None = None, root: Path | None = None) -> pd.DataFrame:
    """Every finished run (optionally of one stage) as one row per run: config keys + test metrics."""
    base = (root or output_dir()) / "runs"
    pattern = f"{stage}/*/metrics.json" if stage else "*/*/metrics.json"
    rows = []
    for mfile in sorted(base.glob(pattern)):
        run = read_run(mfile.parent)
        cfg, m, t = run["config"], run["metrics"], run["metrics"]["test"]
        row = {"run_dir": str(mfile.parent), "stage": cfg.get("stage"), "name": cfg.get("name")}
        row |= {"model": cfg["model"]["name"], "seed": cfg["train"]["seed"], "dataset": m.get("dataset")}
        row |= {"train_days": cfg["data"].get("train_days"), "lags": " ".join(map(str, cfg["data"].get("lags") or []))}
        row |= {"test_mae": t["mae"], "test_rmse": t["rmse"], "test_mape": t["mape"]}
        row |= {f"mae_h{h}": v["mae"] for h, v in t["by_horizon"].items()} | {"val_mae": m["val"]["mae"]}
        row |= {k: m[k] for k in ("best_epoch", "epochs_run", "seconds_per_epoch", "train_seconds", "params")}
        row |= {"time_budget_s": cfg["train"].get("time_budget_s", 0.0), "stopped_by": m.get("stopped_by", "")}
        rows.append(row | {"device": device_label(run["env"], missing="")})
    return pd.DataFrame(rows)


# the per-run columns seed_summary averages (those a table has), in its order
METRICS = ("MAE", "ensemble MAE", "MAE h3", "MAE h6", "MAE h12", "RMSE", "MAPE %", "best epoch", "epochs", "seconds")
METRICS += ("s/epoch",)

# a run export's columns (runs(), export()) -> the per-run columns of metrics_table
EXPORT_COLUMNS = {"name": "config", "seed": "seed", "test_mae": "MAE", "mae_h3": "MAE h3", "mae_h6": "MAE h6"}
EXPORT_COLUMNS |= {"mae_h12": "MAE h12", "test_rmse": "RMSE", "test_mape": "MAPE %", "best_epoch": "best epoch"}
EXPORT_COLUMNS |= {"epochs_run": "epochs", "seconds_per_epoch": "s/epoch", "params": "params"}
EXPORT_COLUMNS |= {"train_seconds": "seconds", "run_dir": "run", "ensemble_test_mae": "ensemble MAE"}


def metrics_table(runs: dict, kinds: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per run of {(config, seed): Run}: test metrics over the horizon and per horizon, epochs, speed, size,
    device (in words, from its record; None when unrecorded), seconds and run id; kinds: {config: kind}."""
    rows = []
    for (name, seed), run in runs.items():
        t, m = run.metrics["test"], run.metrics
        row = {"config": name, **({"kind": kinds.get(name, "")} if kinds is not None else {}), "seed": seed}
        row |= {"MAE": t["mae"], "RMSE": t["rmse"], "MAPE %": t["mape"]}
        for h, v in t["by_horizon"].items():
            row.update({f"MAE h{h}": v["mae"], f"RMSE h{h}": v["rmse"], f"MAPE h{h}": v["mape"]})
        row.update({"best epoch": m["best_epoch"], "epochs": m.get("epochs_run"), "s/epoch": m["seconds_per_epoch"]})
        rows.append(row | {"params": m["params"], "device": run_device(run.dir), "seconds": m["train_seconds"]})
        rows[-1]["run"] = run.run_id
    return pd.DataFrame(rows)


def from_export(export: pd.DataFrame, keep=()) -> pd.DataFrame:
    """Committed runs (a results export: one row per run, with name, seed and test_mae at least) in metrics_table's
    columns (EXPORT_COLUMNS), with its `device` and the `keep` columns as they are."""
    missing = [c for c in ("name", "seed", "test_mae") if c not in export]
    if missing:
        raise ValueError(f"not a run export (python -m stlib.reporting.results): columns {missing} are missing")
    cols = [c for c in (*EXPORT_COLUMNS, "device", *keep) if c in export]
    return export[cols].rename(columns=EXPORT_COLUMNS)


def seed_summary(rows: pd.DataFrame, by="config", columns=METRICS) -> pd.DataFrame:
    """Per-run rows -> one row per configuration (`by`, in order of appearance): `seeds`, the mean of each of
    `columns`, `MAE sd` (ddof 1: NaN with one seed, see versus), and its `kind` and `device`s when the rows have them."""
    g = rows.groupby(by, sort=False)
    out = g[[c for c in columns if c in rows]].mean()
    if "MAE" in out:
        out.insert(out.columns.get_loc("MAE") + 1, "MAE sd", g["MAE"].std(ddof=1))
    out.insert(0, "seeds", g.size())
    if "kind" in rows:
        out.insert(0, "kind", g["kind"].first())
    if "device" in rows:
        out["device"] = g["device"].agg(joined)
    return out


BEATS, LOSES, WITHIN, UNKNOWN = "beats", "loses to", "is within the seed spread of", "spread unknown"


def versus(mae_a, sd_a, mae_b, sd_b) -> str:
    """How configuration a compares with b (mean MAE and seed sd of each): BEATS when a's MAE is below b's by more
    than the two sds added, LOSES when above by more, WITHIN otherwise. An unknown sd (NaN: one seed) makes the
    spread unknown: then nothing is claimed either way (UNKNOWN), however large the difference."""
    spread = sd_a + sd_b
    if pd.isna(spread):
        return UNKNOWN
    d = mae_b - mae_a
    return BEATS if d > spread else LOSES if -d > spread else WITHIN


def beats(mae_a, sd_a, mae_b, sd_b):
    """Whether a beats b beyond the seed spread (versus); False where a spread is unknown. Works elementwise."""
    return pd.notna(sd_a + sd_b) & (mae_b - mae_a > sd_a + sd_b)


def fit_growth(table: pd.DataFrame, column: str) -> float:
    """Exponent k of column = a * N^k (least squares on logs) over the rows that ran."""
    ok = table.dropna(subset=[column])
    ok = ok[ok[column] > 0]
    if len(ok) < 2:
        return float("nan")
    k, _ = np.polyfit(np.log(ok["N"].astype(float)), np.log(ok[column].astype(float)), 1)
    return float(k)


def histories(run_dirs) -> pd.DataFrame:
    """history.csv of several runs stacked, with a run_dir column."""
    frames = [pd.read_csv(Path(d) / "history.csv").assign(run_dir=str(d)) for d in run_dirs]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def export(
    roots: dict[str, Path], stage: str, rename: dict[str, str] | None = None, ensemble: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per run, every run's history) of the runs of `stage` under {label (`batch`): outputs root}; rename:
    {run name: the name to publish}, a name no root has being an error (a typo cannot pass silently). ensemble: a
    column ensemble_test_mae, the test MAE of the mean forecast of each name's runs (its seeds; needs their data)."""
    tables, hists = [], []
    for label, root in roots.items():
        table = runs(stage, Path(root))
        if table.empty:
            raise FileNotFoundError(f"no finished runs of stage {stage} under {root}/runs/{stage}")
        table.insert(0, "batch", label)
        table["concurrent_runs"] = len(table)
        tables.append(table)
        h = histories(table["run_dir"])
        h.insert(0, "batch", label)
        for i, col in enumerate(("name", "seed"), 1):
            h.insert(i, col, h["run_dir"].map(dict(zip(table["run_dir"], table[col]))))
        hists.append(h)
    out, hist = pd.concat(tables, ignore_index=True), pd.concat(hists, ignore_index=True)
    missing = sorted(set(rename or {}) - set(out["name"].dropna()))
    if missing:
        raise ValueError(
            f"--rename: no run named {', '.join(map(repr, missing))} "
            f"(names: {', '.join(map(repr, sorted(out['name'].dropna().unique())))})"
        )
    for df in (out, hist):
        df["name"] = df["name"].replace(rename or {})  # before the ensembles: runs renamed alike are one configuration
    if ensemble:
        from ..predict import ensemble_mae

        one = out.groupby(["batch", "name"], dropna=False)["run_dir"]  # one seed: no ensemble
        out["ensemble_test_mae"] = one.transform(lambda d: ensemble_mae(d) if len(d) > 1 else np.nan)
    for df in (out, hist):
        df["run_dir"] = df["run_dir"].map(lambda d: Path(d).name)  # the machine's paths mean nothing here
    return out, hist


def merge(previous: pd.DataFrame, table: pd.DataFrame, previous_hist=None, hist=None):
    """An earlier export's rows (and histories) kept beside a new one's, for runs trained in another session whose
    run directories are gone: a (batch, name, seed) in both is the new run (a rerun replaces its earlier one). A
    configuration (batch, name) whose seeds are split between the two loses its ensemble MAE (its members' forecasts
    are not all here). -> (runs, histories, [(batch, name) split])."""
    key = ["batch", "name"]
    rerun = pd.MultiIndex.from_frame(previous[key + ["seed"]]).isin(pd.MultiIndex.from_frame(table[key + ["seed"]]))
    old = previous[~rerun]
    split = sorted(set(map(tuple, old[key].values)) & set(map(tuple, table[key].values)))
    out = pd.concat([old, table], ignore_index=True)
    if "ensemble_test_mae" in out:
        out.loc[pd.MultiIndex.from_frame(out[key]).isin(split), "ensemble_test_mae"] = np.nan
    if hist is not None and previous_hist is not None:
        hist = pd.concat([previous_hist[previous_hist["run_dir"].isin(old["run_dir"])], hist], ignore_index=True)
    return out, hist, split


def main(argv=None) -> int:
    """python -m stlib.reporting.results --stage 04 --root LABEL=DIR [--root ...] --out runs.csv [--histories h.csv]"""
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m stlib.reporting.results", description=main.__doc__)
    ap.add_argument("--stage", required=True)
    ap.add_argument("--root", action="append", required=True, metavar="LABEL=DIR", help="an outputs root, labelled")
    ap.add_argument("--out", required=True, help="CSV: one row per run")
    ap.add_argument("--histories", help="CSV: every run's history, stacked")
    ap.add_argument("--rename", action="append", default=[], metavar="NAME=NEW", help="publish runs NAME as NEW")
    ap.add_argument("--ensemble", action="store_true", help="add each name's seed-ensemble test MAE (reads the data)")
    ap.add_argument("--merge", action="store_true", help="keep the rows of --out (and --histories) of other runs")
    args = ap.parse_args(argv)
    for flag, given, form in (("--root", args.root, "LABEL=DIR"), ("--rename", args.rename, "NAME=NEW")):
        if any("=" not in r for r in given):
            print(f"error: {flag} takes {form}, got {given}", file=sys.stderr)
            return 2
    roots = {k: Path(v) for k, v in (r.split("=", 1) for r in args.root)}
    try:
        table, hist = export(roots, args.stage, dict(r.split("=", 1) for r in args.rename), args.ensemble)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.merge and Path(args.out).exists():
        had = args.histories and Path(args.histories).exists()
        if args.histories and not had:
            print(f"error: --merge: {args.out} exists but {args.histories} does not", file=sys.stderr)
            return 2
        table, hist, split = merge(pd.read_csv(args.out), table, pd.read_csv(args.histories) if had else None, hist)
        for batch, name in split:
            print(f"warning: {batch} / {name}: seeds in both exports, no ensemble MAE", file=sys.stderr)
    for f, df in ((args.out, table), (args.histories, hist)):
        if f:
            Path(f).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(Path(f), df.to_csv(index=False))
    summary = seed_summary(from_export(table, keep=("batch",)), by=["batch", "config"])
    print(summary[[c for c in ("seeds", "MAE", "MAE sd", "ensemble MAE") if c in summary]].round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
