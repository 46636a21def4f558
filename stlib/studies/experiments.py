"""Train named presets over seeds and gather their metrics: what the stage notebooks call."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import yaml

from ..config import ConfigError, Profile, RunConfig, build_run_config
from ..data import Dataset
from ..paths import output_dir
from ..reporting.records import joined, run_device
from ..training import Run, fit


def same_run(a: dict, b: dict) -> bool:
    """Two config dicts describe the same experiment (the label, progress bar and devices aside).

    Both are read through the current config schema first, so a record written before a field was
    added (and which therefore ran with its default) still matches; one that no longer validates does not.
    """
    def key(c):
        try:
            c = build_run_config(copy.deepcopy(c), "recorded config").to_dict()
        except ConfigError:
            return None
        c.pop("name", None)
        for k in ("quiet", "device", "threads", "tensorboard"):
            c["train"].pop(k, None)
        return c
    ka = key(a)
    return ka is not None and ka == key(b)


def find_run(cfg: RunConfig, root: Path | None = None) -> Path | None:
    """The newest finished run directory whose config matches cfg, if any."""
    base = (root or output_dir()) / "runs" / cfg.stage
    want = cfg.to_dict()
    for mfile in sorted(base.glob("*/metrics.json"), reverse=True):
        have = yaml.safe_load((mfile.parent / "config.yaml").read_text())
        if same_run(have, want) and (mfile.parent / "best.pt").exists():
            return mfile.parent
    return None


def train_presets(profile: Profile, presets, seeds, stage: str, dataset: Dataset | None = None,
                  overrides: dict | None = None, seeds_by_preset: dict | None = None,
                  reuse: bool = True) -> dict[tuple[str, int], Run]:
    """fit() every preset with every seed (one dataset load shared); {(preset, seed): Run}.

    With reuse, a run whose record already exists with the same config is read back instead of
    trained again, so a long notebook can be re-executed or resumed after a crash.
    """
    runs = {}
    for name in presets:
        for seed in (seeds_by_preset or {}).get(name, seeds):
            cfg = profile.run_config(preset=name, overrides={**(overrides or {}), "train.seed": seed},
                                     stage=stage, name=name)
            done = find_run(cfg) if reuse else None
            if done is not None:
                print(f"{name} seed {seed}: reusing {done}")
                runs[name, seed] = Run.from_dir(done, dataset=dataset)
            else:
                runs[name, seed] = fit(cfg, dataset=dataset)
    return runs


def metrics_table(runs: dict[tuple[str, int], Run]) -> pd.DataFrame:
    """One row per run: MAE / RMSE / MAPE averaged over the horizon and at horizons 3, 6, 12, and the device it
    trained on (in words, from its record; None when unrecorded)."""
    rows = []
    for (name, seed), run in runs.items():
        t = run.metrics["test"]
        row = {"model": name, "seed": seed, "MAE": t["mae"], "RMSE": t["rmse"], "MAPE %": t["mape"]}
        for h, v in t["by_horizon"].items():
            row.update({f"MAE h{h}": v["mae"], f"RMSE h{h}": v["rmse"], f"MAPE h{h}": v["mape"]})
        row.update({"best epoch": run.metrics["best_epoch"], "epochs": run.metrics.get("epochs_run"),
                    "s/epoch": run.metrics["seconds_per_epoch"],
                    "params": run.metrics["params"], "device": run_device(run.dir)})
        rows.append(row)
    return pd.DataFrame(rows)


def seed_summary(table: pd.DataFrame, cols=("MAE", "MAE h3", "MAE h6", "MAE h12", "RMSE", "MAPE %", "s/epoch",
                                           "epochs")):
    """Mean and sd over seeds per model (sd is NaN with one seed); `epochs` is the epochs trained (the budget);
    `device` the devices the seeds trained on, when the table has them."""
    g = table.groupby("model", sort=False)[[c for c in cols if c in table]]
    out = g.mean().round(3)
    sd = g.std().round(3)
    out.insert(1, "MAE sd", sd["MAE"])
    out.insert(0, "seeds", g.size())
    if "device" in table:
        out["device"] = table.groupby("model", sort=False)["device"].agg(joined)
    return out
