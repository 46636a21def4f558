"""Read run records back into pandas: the ledger, many runs, summaries over seeds (one run: records.read_run)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..paths import output_dir
from .records import read_run, recorded_device


def ledger(root: Path | None = None) -> pd.DataFrame:
    """outputs/ledger.csv as a DataFrame (empty with the right columns when there is none); stage is text ("01")."""
    from .records import read_ledger

    return read_ledger((root or output_dir()) / "ledger.csv")


def runs(stage: str | None = None, root: Path | None = None) -> pd.DataFrame:
    """Every finished run (optionally of one stage) as one row per run: config keys + test metrics."""
    base = (root or output_dir()) / "runs"
    pattern = f"{stage}/*/metrics.json" if stage else "*/*/metrics.json"
    rows = []
    for mfile in sorted(base.glob(pattern)):
        run = read_run(mfile.parent)
        cfg, m = run["config"], run["metrics"]
        row = {"run_dir": str(mfile.parent), "stage": cfg.get("stage"), "name": cfg.get("name"),
               "model": cfg["model"]["name"], "seed": cfg["train"]["seed"], "dataset": m.get("dataset"),
               "test_mae": m["test"]["mae"], "test_rmse": m["test"]["rmse"], "test_mape": m["test"]["mape"],
               **{f"mae_h{h}": v["mae"] for h, v in m["test"]["by_horizon"].items()},
               "val_mae": m["val"]["mae"], "best_epoch": m["best_epoch"], "epochs_run": m["epochs_run"],
               "seconds_per_epoch": m["seconds_per_epoch"], "train_seconds": m["train_seconds"],
               "params": m["params"], "time_budget_s": cfg["train"].get("time_budget_s", 0.0),
               "stopped_by": m.get("stopped_by", ""),
               "device": recorded_device(run["env"]) or ""}
        rows.append(row)
    return pd.DataFrame(rows)


def histories(run_dirs) -> pd.DataFrame:
    """history.csv of several runs stacked, with a run_dir column."""
    frames = [pd.read_csv(Path(d) / "history.csv").assign(run_dir=str(d)) for d in run_dirs]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def export(roots: dict[str, Path], stage: str, rename: dict[str, str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per run, every run's history) of the runs of `stage` under several outputs roots.

    roots: {label: outputs root}, e.g. the unpacked run records of two GPU sessions; each row gets its
    label (`batch`), its time budget, why it stopped and the epochs it ran. rename: {run name: the name to
    publish} (a run's short working name -> the configuration's description); a name absent from every
    root is an error, so a typo cannot pass silently.
    """
    tables, hists = [], []
    for label, root in roots.items():
        table = runs(stage, Path(root))
        if table.empty:
            raise FileNotFoundError(f"no finished runs of stage {stage} under {root}/runs/{stage}")
        table.insert(0, "batch", label)
        table["concurrent_runs"] = len(table)
        tables.append(table)
        h = histories(table["run_dir"])
        names = dict(zip(table["run_dir"], zip(table["name"], table["seed"])))
        h.insert(0, "batch", label)
        h.insert(1, "name", [names[d][0] for d in h["run_dir"]])
        h.insert(2, "seed", [names[d][1] for d in h["run_dir"]])
        hists.append(h)
    out, hist = pd.concat(tables, ignore_index=True), pd.concat(hists, ignore_index=True)
    missing = sorted(set(rename or {}) - set(out["name"].dropna()))
    if missing:
        raise ValueError(f"--rename: no run named {', '.join(map(repr, missing))} "
                         f"(names: {', '.join(map(repr, sorted(out['name'].dropna().unique())))})")
    out["name"], hist["name"] = out["name"].replace(rename or {}), hist["name"].replace(rename or {})
    out["run_dir"] = out["run_dir"].map(lambda d: Path(d).name)  # the machine's paths mean nothing here
    hist["run_dir"] = hist["run_dir"].map(lambda d: Path(d).name)
    return out, hist


def main(argv=None) -> int:
    """python -m stlib.reporting.results --stage 04 --root LABEL=DIR [--root ...] --out runs.csv [--histories h.csv]"""
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m stlib.reporting.results", description=main.__doc__)
    ap.add_argument("--stage", required=True)
    ap.add_argument("--root", action="append", required=True, metavar="LABEL=DIR",
                    help="an outputs root (holding runs/ and ledger.csv) and its label")
    ap.add_argument("--out", required=True, help="CSV: one row per run")
    ap.add_argument("--histories", help="CSV: every run's history, stacked")
    ap.add_argument("--rename", action="append", default=[], metavar="NAME=NEW",
                    help="publish the runs named NAME as NEW (repeatable)")
    args = ap.parse_args(argv)
    try:
        roots = dict(r.split("=", 1) for r in args.root)
    except ValueError:
        print(f"error: --root takes LABEL=DIR, got {args.root}", file=sys.stderr)
        return 2
    if any("=" not in r for r in args.rename):
        print(f"error: --rename takes NAME=NEW, got {args.rename}", file=sys.stderr)
        return 2
    try:
        table, hist = export({k: Path(v) for k, v in roots.items()}, args.stage,
                             dict(r.split("=", 1) for r in args.rename))
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from .records import atomic_write_text

    for f in (args.out, args.histories):
        if f:
            Path(f).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.out), table.to_csv(index=False))
    if args.histories:
        atomic_write_text(Path(args.histories), hist.to_csv(index=False))
    print(table.groupby(["batch", "name"], sort=False)["test_mae"].agg(["count", "mean", "std"]).round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
