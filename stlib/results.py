"""Read run records back into pandas: the ledger, one run, many runs, summaries over seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from .paths import output_dir


def ledger(root: Path | None = None) -> pd.DataFrame:
    """outputs/ledger.csv as a DataFrame (empty with the right columns when there is none)."""
    from .records import LEDGER_COLUMNS

    path = (root or output_dir()) / "ledger.csv"
    if not path.exists() or not path.stat().st_size:
        return pd.DataFrame(columns=LEDGER_COLUMNS)
    return pd.read_csv(path)


def load_run(run_dir: str | Path) -> dict:
    """One run directory -> {'config', 'metrics', 'history', 'env', 'dir'}."""
    run_dir = Path(run_dir)
    if not (run_dir / "metrics.json").exists():
        raise FileNotFoundError(f"{run_dir} has no metrics.json (unfinished or not a run directory)")
    return {
        "dir": run_dir,
        "config": yaml.safe_load((run_dir / "config.yaml").read_text()),
        "metrics": json.loads((run_dir / "metrics.json").read_text()),
        "history": pd.read_csv(run_dir / "history.csv"),
        "env": json.loads((run_dir / "env.json").read_text()) if (run_dir / "env.json").exists() else {},
    }


def runs(stage: str | None = None, root: Path | None = None) -> pd.DataFrame:
    """Every finished run (optionally of one stage) as one row per run: config keys + test metrics."""
    base = (root or output_dir()) / "runs"
    pattern = f"{stage}/*/metrics.json" if stage else "*/*/metrics.json"
    rows = []
    for mfile in sorted(base.glob(pattern)):
        run = load_run(mfile.parent)
        cfg, m = run["config"], run["metrics"]
        row = {"run_dir": str(mfile.parent), "stage": cfg.get("stage"), "name": cfg.get("name"),
               "model": cfg["model"]["name"], "seed": cfg["train"]["seed"], "dataset": m.get("dataset"),
               "test_mae": m["test"]["mae"], "test_rmse": m["test"]["rmse"], "test_mape": m["test"]["mape"],
               **{f"mae_h{h}": v["mae"] for h, v in m["test"]["by_horizon"].items()},
               "val_mae": m["val"]["mae"], "best_epoch": m["best_epoch"], "epochs_run": m["epochs_run"],
               "seconds_per_epoch": m["seconds_per_epoch"], "train_seconds": m["train_seconds"],
               "params": m["params"]}
        rows.append(row)
    return pd.DataFrame(rows)


def histories(run_dirs) -> pd.DataFrame:
    """history.csv of several runs stacked, with a run_dir column."""
    frames = [pd.read_csv(Path(d) / "history.csv").assign(run_dir=str(d)) for d in run_dirs]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def summarize(df: pd.DataFrame, by="name", metrics=("test_mae", "mae_h12", "test_rmse", "test_mape")) -> pd.DataFrame:
    """Mean and standard deviation over seeds per group, with the number of seeds."""
    agg = df.groupby(by)[list(metrics)].agg(["mean", "std"])
    agg.columns = [f"{m}_{s}" for m, s in agg.columns]
    agg.insert(0, "seeds", df.groupby(by).size())
    return agg.reset_index()
