"""Named presets over seeds, reading back the runs already recorded: what the stage notebooks call.

Their metrics per run and over seeds: stlib.reporting.results (metrics_table, seed_summary).
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from ..config import ConfigError, Profile, RunConfig, build_run_config
from ..data import Dataset
from ..paths import output_dir
from ..training import Run, fit


def same_run(a: dict, b: dict) -> bool:
    """Two config dicts describe the same experiment (the label, progress bar and devices aside). Both are read
    through the current config schema first, so a record written before a field was added (and which therefore ran
    with its default) still matches; one that no longer validates does not."""

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
    want = cfg.to_dict()
    for mfile in sorted(((root or output_dir()) / "runs" / cfg.stage).glob("*/metrics.json"), reverse=True):
        have = yaml.safe_load((mfile.parent / "config.yaml").read_text())
        if same_run(have, want) and (mfile.parent / "best.pt").exists():
            return mfile.parent
    return None


def train_presets(
    profile: Profile,
    presets,
    seeds,
    stage: str,
    dataset: Dataset | None = None,
    overrides: dict | None = None,
    seeds_by_preset: dict | None = None,
    reuse: bool = True,
) -> dict[tuple[str, int], Run]:
    """fit() every preset with every seed (one dataset load shared); {(preset, seed): Run}. With reuse, a run whose
    record exists with the same config is read back, so a long notebook can be re-run or resumed after a crash."""
    runs = {}
    for name in presets:
        for seed in (seeds_by_preset or {}).get(name, seeds):
            over = {**(overrides or {}), "train.seed": seed}
            cfg = profile.run_config(preset=name, overrides=over, stage=stage, name=name)
            done = find_run(cfg) if reuse else None
            if done is not None:
                print(f"{name} seed {seed}: reusing {done}")
            runs[name, seed] = Run.from_dir(done, dataset=dataset) if done is not None else fit(cfg, dataset=dataset)
    return runs
