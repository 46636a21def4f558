"""Ablations: configs x seeds -> a table of runs, resumable; the roadmap's stage-1 items as configs.

    runs, table = run_ablation(profile, stage1_variants(scaled_constants(cfg, n)), [0, 1, 2], "03", dataset=ds)
    summary = summarize(table)  # a row per config: mean and sd over seeds, gain over the start

A recorded (config, seed) is read back, not trained again; `jobs=2` trains two runs at a time in worker processes.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import sys
from collections import namedtuple
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
import yaml

from ..config import ConfigError, Profile, RunConfig, build_run_config, load_profile, parse_override, set_dotted
from ..data import from_config
from ..paths import output_dir, resolve_params
from ..reporting.records import atomic_write_text
from ..reporting.reference import ROADMAP
from ..reporting.results import beats, from_export, metrics_table, seed_summary
from ..training import Run, fit
from .experiments import find_run

# the roadmap author's run, as far as the note tells (ROADMAP.md): 100 epochs; their data is full
# PEMS08 (about 10700 training windows); batch 64 is the ladder's naive rung and assumed here
ROADMAP_RUN = {"epochs": 100, "train_windows": 10700, "batch_size": 64, "patience": 10, "warmup_steps": 1000}

# the roadmap's stage-1 items with its expected MAE gain (its author's data), in its order
STAGE1_EXPECTED = {"scheduler": (0.5, 1.0), "depth": (0.5, 1.0), "noise": (0.3, 0.5), "warmup": (0.2, 0.4)}


@dataclass
class Variant:
    """One configuration of an ablation: dotted overrides on the base config."""

    name: str
    overrides: dict = field(default_factory=dict)
    kind: str = "alone"  # start | alone | cumulative | extra | component
    expected: tuple[float, float] | None = None  # the roadmap's expected MAE gain, where it gives one


def updates(t, train_windows: int) -> int:
    """The optimizer steps of a run of train config t on train_windows windows."""
    return math.ceil(train_windows / t.batch_size / t.accumulation_steps) * t.epochs


def scaled_constants(cfg: RunConfig, train_windows: int) -> dict:
    """The roadmap's warmup (1000 steps, 6 % of its updates) and plateau patience (10 of 100 validations) as the
    same shares of our run (at least 1 each): the overrides and the arithmetic, for the notebook to print."""
    r, t = ROADMAP_RUN, cfg.train
    r_steps = math.ceil(r["train_windows"] / r["batch_size"]) * r["epochs"]
    warm_share, patience_share = r["warmup_steps"] / r_steps, r["patience"] / r["epochs"]
    steps, validations = updates(t, train_windows), max(1, t.epochs // t.validate_every)
    warmup, patience = max(1, round(warm_share * steps)), max(1, round(patience_share * validations))
    out = dict(overrides={"train.warmup_steps": warmup, "train.patience": patience}, roadmap_steps=r_steps)
    return out | dict(
        warmup_share=warm_share, our_steps=steps, patience_share=patience_share, our_validations=validations
    )


def stage1_variants(
    scaled: dict, depth: tuple[int, int] = (4, 6), noise_std: float = 0.01, dropout: tuple[float, float] = (0.05, 0.1)
) -> list[Variant]:
    """Start; each roadmap item alone; the items added cumulatively; denoising, positions and dropout."""
    o = scaled["overrides"]
    items = {
        "scheduler": {"train.scheduler": "plateau", "train.patience": o["train.patience"], "train.factor": 0.5},
        "depth": {"model.encoder_depth": depth[1]},
        "noise": {"train.noise_std": noise_std},
        "warmup": {"train.warmup_steps": o["train.warmup_steps"]},
    }
    base = {"model.encoder_depth": depth[0], "model.dropout": dropout[0]}
    out = [Variant("start", base, "start")]
    out += [Variant(f"+{k}", {**base, **v}, "alone", STAGE1_EXPECTED[k]) for k, v in items.items()]
    for n in range(2, len(items) + 1):
        names = list(items)[:n]
        acc = {k: v for name in names for k, v in items[name].items()}
        expected = tuple(sum(STAGE1_EXPECTED[name][j] for name in names) for j in (0, 1))
        out.append(Variant("+" + "+".join(names), {**base, **acc}, "cumulative", expected))
    return out + [
        Variant("no denoising", {**base, "model.use_denoising": False}, "extra"),
        Variant("learned positions", {**base, "model.pos_encoding": "learned"}, "extra"),
        Variant(f"dropout {dropout[1]}", {**base, "model.dropout": dropout[1]}, "extra"),
    ]


# stage 2's configurations, one component at a time (stage2_variants)
STAGE2_START = "stage 1 (temporal only)"
STACKED = "+ spatial attention (stacked T..S..)"
ALTERNATION = "+ alternation (T S T S)"
ADAPTIVE = "+ adaptive embedding"
STAEFORMER_ORDER = "stacked + adaptive (STAEformer order)"
# what notebook 04 asks, each (a, b): does a beat b beyond the seed spread? Of its own runs, and of each committed batch
STAGE2_QUESTIONS = [(ALTERNATION, STACKED), (ALTERNATION, STAGE2_START), (ADAPTIVE, STAEFORMER_ORDER)]
STAGE2_BATCH_QUESTIONS = [*STAGE2_QUESTIONS[:2], (STACKED, STAGE2_START), (ADAPTIVE, ALTERNATION)]


def stage2_variants(encoder_depth: int | None = None, adaptive_dim: int = 80) -> list[Variant]:
    """Stage 2, one component at a time (temporal only, + spatial attention stacked, + alternation, + adaptive
    embedding) and STAEformer's order as a control, all at encoder_depth (None: the base config's)."""
    depth = {} if encoder_depth is None else {"model.encoder_depth": encoder_depth}
    alt, adaptive = {"model.name": "alternating", **depth}, {"model.adaptive_dim": adaptive_dim}
    return [
        Variant(STAGE2_START, {"model.name": "encdec", **depth}, "start"),
        Variant(STACKED, {**alt, "model.pattern": "stacked"}, "component"),
        Variant(ALTERNATION, {**alt, "model.pattern": "alternating"}, "component"),
        Variant(ADAPTIVE, {**alt, "model.pattern": "alternating", **adaptive}, "component"),
        Variant(STAEFORMER_ORDER, {**alt, "model.pattern": "stacked", **adaptive}, "extra"),
    ]


def select(variants: list[Variant], names) -> list[Variant]:
    """The variants named (all when names is empty); an unknown name is an error listing the known ones."""
    known = {v.name: v for v in variants}
    if missing := [n for n in names if n not in known]:
        raise ValueError(f"unknown variant(s) {missing}; known: {list(known)}")
    return [known[n] for n in names] if names else variants


# can an item act at this budget? (a change that cannot act is not a result) The config fields of each roadmap item:
# a variant acts only through the items it changes
ITEM_FIELDS = {"scheduler": ("scheduler", "patience", "factor", "min_lr", "milestones", "gamma")}
ITEM_FIELDS |= {"warmup": ("warmup_steps",), "noise": ("noise_std",)}
CANNOT_ACT = "cannot act at this budget"


def validation_epochs(epochs: int, validate_every: int = 1) -> list[int]:
    """The epochs after which a run validates: every validate_every-th, and always the last."""
    return [e for e in range(1, epochs + 1) if e % validate_every == 0 or e == epochs]


def plateau_can_act(epochs: int, validate_every: int, patience: int) -> bool:
    """Whether ReduceLROnPlateau(patience) can cut the learning rate before the run ends: the earliest cut follows
    validation patience + 2 (the first sets the best), and it acts only if epochs follow it."""
    vals = validation_epochs(epochs, validate_every)
    return len(vals) >= patience + 2 and vals[patience + 1] < epochs


def why_inert(cfg: RunConfig, start: RunConfig, train_windows: int) -> dict[str, str | None]:
    """{item: None if it can act, else why not} for each item (scheduler, warmup, noise; any other change is one item
    `other`, which always acts) in which cfg differs from the start config; empty when cfg changes nothing."""
    t, t0 = cfg.train, start.train
    changed = {k for k in vars(t) if getattr(t, k) != getattr(t0, k)}
    steps, out = updates(t, train_windows), {}
    for item in (i for i, fields in ITEM_FIELDS.items() if changed & set(fields)):
        if item == "noise":
            out[item] = None if t.noise_std > 0 else "noise std 0"
        elif item == "warmup":
            spans = f"warmup {t.warmup_steps} steps spans the whole run ({steps} updates)"
            out[item] = None if 0 < t.warmup_steps < steps else "warmup 0" if t.warmup_steps <= 0 else spans
        elif t.scheduler == "none":
            out[item] = "no scheduler is on"
        elif t.scheduler == "plateau" and not plateau_can_act(t.epochs, t.validate_every, t.patience):
            validations = len(validation_epochs(t.epochs, t.validate_every))
            out[item] = (
                f"plateau patience {t.patience} needs {t.patience + 2} validations before the last "
                f"epoch; the run has {validations} in {t.epochs} epochs"
            )
        elif t.scheduler == "multistep" and not any(0 < m < t.epochs for m in t.milestones):
            out[item] = f"no milestone within the {t.epochs} epochs"
        else:
            out[item] = None
    rest = changed - {f for fs in ITEM_FIELDS.values() for f in fs} - {"seed", "quiet"}
    if cfg.model != start.model or cfg.data != start.data or rest:
        out["other"] = None
    return out


def budget_check(
    profile: Profile, variants: list[Variant], train_windows: int, base_overrides: dict | None = None, reference="start"
) -> pd.DataFrame:
    """One row per variant: `acts` (can any of its changes act at this budget; if none can, it trains the reference
    again and is not a result) and a `note` naming what cannot (why_inert)."""
    by = {v.name: profile.run_config(overrides={**(base_overrides or {}), **v.overrides}) for v in variants}
    start, rows = by.get(reference), []
    for v in variants:
        items = why_inert(by[v.name], start, train_windows) if start is not None and v.name != reference else None
        inert = {k: w for k, w in (items or {}).items() if w is not None}
        acts = items is None or len(inert) < len(items)
        if items == {}:
            note = f"{CANNOT_ACT}: the same configuration as {reference}"
        elif acts:
            note = "; ".join(f"{k} cannot act: {w}" for k, w in inert.items())
        else:
            note = f"{CANNOT_ACT}: " + "; ".join(f"{k}: {w}" for k, w in inert.items())
        rows.append({"config": v.name, "acts": acts, "note": note})
    return pd.DataFrame(rows).set_index("config")


def same_in_every_seed(table: pd.DataFrame, name: str, reference: str = "start") -> bool:
    """Whether a configuration scored exactly the reference's test MAE on every seed both ran: it did nothing."""
    a, b = (table[table["config"] == n].set_index("seed")["MAE"] for n in (name, reference))
    common = a.index.intersection(b.index)
    same = (a[common].to_numpy(dtype=float) == b[common].to_numpy(dtype=float)).all()
    return name != reference and len(common) > 0 and bool(same)


def _fit_in_worker(profile_path: str, cfg_dict: dict, out_root: str) -> str:
    """Worker process: one run on one torch thread, progress in lines (workers share a terminal); its run dir."""
    torch.set_num_threads(1)
    return str(fit(build_run_config(cfg_dict, profile_path), out_root=Path(out_root), progress="lines").dir)


def run_ablation(
    profile: Profile, variants: list[Variant], seeds, stage: str, dataset=None, base_overrides=None, reuse=True, jobs=1
) -> tuple[dict[tuple[str, int], Run], pd.DataFrame]:
    """Train every variant with every seed (reading back recorded runs); ({(name, seed): Run}, one row per run:
    results.metrics_table with each variant's kind)."""
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ValueError(f"variant names must be unique, got {names}")
    over = lambda v, seed: {**(base_overrides or {}), **v.overrides, "train.seed": seed}
    cfgs = {
        (v.name, s): profile.run_config(overrides=over(v, s), stage=stage, name=v.name) for v in variants for s in seeds
    }
    dirs = {key: find_run(cfg) if reuse else None for key, cfg in cfgs.items()}
    todo = [key for key, d in dirs.items() if d is None]
    print(f"{len(cfgs) - len(todo)} of {len(cfgs)} runs already recorded; training {len(todo)}")
    if jobs > 1 and len(todo) > 1:
        # spawn, not fork: a forked worker cannot use CUDA, and several runs share one GPU well
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            args = (str(profile.path), str(output_dir()))
            futs = {key: pool.submit(_fit_in_worker, args[0], cfgs[key].to_dict(), args[1]) for key in todo}
            dirs.update({key: Path(fut.result()) for key, fut in futs.items()})
    runs = {k: Run.from_dir(dirs[k], dataset=dataset) if dirs[k] else fit(c, dataset=dataset) for k, c in cfgs.items()}
    return runs, metrics_table(runs, {v.name: v.kind for v in variants})


def table_from_export(
    runs: pd.DataFrame, variants: list[Variant] | None = None, names: dict | None = None
) -> pd.DataFrame:
    """Committed runs (a results export) as run_ablation's table; with variants, only theirs, in their order,
    each with its kind (one without runs is an error); names: {variant: its runs' name in the export}."""
    table = from_export(runs)
    if names:
        if absent := [n for n in names.values() if n not in set(table["config"])]:
            raise ValueError(f"no committed runs named {absent}; committed: {sorted(set(table['config']))}")
        shadowed = set(names) - set(names.values())  # export rows that carry a variant's name but are other runs
        table = table[~table["config"].isin(shadowed)].copy()
        table["config"] = table["config"].replace({n: v for v, n in names.items()})
    if variants is not None:
        if absent := [v.name for v in variants if v.name not in set(table["config"])]:
            raise ValueError(f"no committed runs of {absent}; committed: {sorted(set(table['config']))}")
        order = {v.name: i for i, v in enumerate(variants)}
        table = table[table["config"].isin(order)].sort_values("config", key=lambda c: c.map(order), kind="stable")
        table.insert(1, "kind", table["config"].map({v.name: v.kind for v in variants}))
    return table.reset_index(drop=True)


def summarize(
    table: pd.DataFrame, variants: list[Variant] | None = None, reference: str = "start", check=None
) -> pd.DataFrame:
    """results.seed_summary per config; gain = reference MAE - config MAE (positive = better), `gain sd` (of a
    difference of two means), `clear`: it beats the reference beyond the seed spread (results.beats) and `acts`: not
    if budget_check (`check`) says none of its changes can, or it scored the reference's MAE on every seed (`note`)."""
    out = seed_summary(table)
    out["acts"], out["note"] = True, ""
    if check is not None:
        known = out.index.intersection(check.index)
        out.loc[known, "acts"] = check.loc[known, "acts"].astype(bool)
        out.loc[known, "note"] = check.loc[known, "note"].fillna("").astype(str)
    if reference in out.index:
        for name in out.index[out["acts"].to_numpy(dtype=bool)]:
            if same_in_every_seed(table, name, reference):
                out.loc[name, "acts"] = False
                out.loc[name, "note"] = (
                    f"{CANNOT_ACT}: the same test MAE as {reference} on every seed, it trained {reference} again"
                )
        ref = out.loc[reference]
        out["gain"] = ref["MAE"] - out["MAE"]
        out["gain sd"] = (ref["MAE sd"] ** 2 / ref["seeds"] + out["MAE sd"] ** 2 / out["seeds"]) ** 0.5
        out["clear"] = beats(out["MAE"], out["MAE sd"], ref["MAE"], ref["MAE sd"]) & out["acts"]
        out.loc[reference, "clear"] = False
    if variants is not None:
        exp = {v.name: v.expected for v in variants}
        out["expected gain"] = [f"{exp[n][0]:.1f}-{exp[n][1]:.1f}" if exp.get(n) else "" for n in out.index]
    return out


Choice = namedtuple("Choice", "name why")  # the configuration stage 2 starts from, and why (a sentence)


def choose(summary: pd.DataFrame, reference: str = "start") -> Choice:
    """The start, unless some configuration that acts at this budget beats it by more than the seed spread (`clear`
    in summarize's table): then the lowest mean MAE among those. A gain within the spread is noise, not tuning."""
    if reference not in summary.index:
        raise ValueError(f"no {reference!r} configuration to compare with (have {list(summary.index)})")
    ref, others = summary.loc[reference], summary.drop(index=reference)
    results = others[others["acts"].astype(bool)] if "acts" in others else others
    inert = [n for n in others.index if n not in results.index]
    tail = f" Not results at this budget: {', '.join(inert)}." if inert else ""
    clear = results[results["clear"].astype(bool)] if "clear" in results else results.iloc[:0]
    best = (clear if len(clear) else results)["MAE"].idxmin() if len(results) else None
    r = results.loc[best] if best is not None else None
    spread = ref["MAE sd"] + r["MAE sd"] if r is not None else None
    if len(clear):
        many = f"; the lowest mean MAE of the {len(clear)} configurations that do" if len(clear) > 1 else ""
        why = f"its gain over {reference} ({r['gain']:.3f} MAE, {r['MAE']:.3f} against {ref['MAE']:.3f}) beats"
        return Choice(best, f"{best!r}: {why} the seed spread ({spread:.3f}, the two sds added){many}.{tail}")
    if int(ref.get("seeds", 1)) < 2:
        why = "with one seed there is no seed spread to beat, so no gain counts"
    elif best is None:
        why = "no other configuration acts at this budget"
    else:
        why = f"no configuration's gain beats the seed spread (the best, {best!r}, gains {ref['MAE'] - r['MAE']:.3f}"
        why += f" MAE against a spread of {spread:.3f})"
    return Choice(reference, f"{reference!r}: {why}.{tail}")


def mark_choice(summary: pd.DataFrame, choice: Choice) -> pd.DataFrame:
    """The summary with `chosen` (True on the chosen row) and `why chosen` (its sentence), as notebook 05 reads it."""
    chosen = summary.index == choice.name
    return summary.assign(chosen=chosen, **{"why chosen": [choice.why if c else "" for c in chosen]})


def gate(mae: float, baseline_mae: float) -> dict:
    """The roadmap's stage-1 gate (MAE <= 16 against its baseline 14.57) as a ratio to our baseline."""
    ratio = ROADMAP["stage1_gate_mae"] / ROADMAP["baseline_mae"]
    out = {"ratio": ratio, "baseline_mae": baseline_mae, "threshold": ratio * baseline_mae, "mae": mae}
    return out | {"passed": bool(mae <= out["threshold"])}


def write_params(profile: Profile, overrides: dict, path: Path, note: str) -> Path:
    """The profile with `overrides` folded into its base, as a new params file (atomically) that stage 2 starts from;
    it keeps the profile's presets, notebook parameters and name (its runs stay that profile's, whatever the file)."""
    tree = {k: (dict(v) if isinstance(v, dict) else v) for k, v in profile.base.items()}
    for k, v in overrides.items():
        set_dotted(tree, k, v, f"{path}")
    path = Path(path)
    tree["profile"] = profile.name  # derived from the profile: its runs stay that profile's
    doc = {**tree, "presets": profile.presets, "notebooks": profile.notebooks}
    text = f"# {note}\n# written by stlib.studies.ablation.write_params from {profile.path.name}\n"
    text += yaml.safe_dump(doc, sort_keys=False, default_flow_style=None)
    check = path.with_name(f".{path.stem}.check{path.suffix}")  # it must read back as a valid profile before it is
    atomic_write_text(check, text)  # written: a bad key leaves nothing behind
    try:
        load_profile(check)
    finally:
        check.unlink(missing_ok=True)
    atomic_write_text(path, text)
    return path


def main(argv=None) -> int:
    """python -m stlib.studies.ablation --params P --study stage1|stage2 [--seeds 0 1 2] [--jobs K] [--set k=v ...]"""
    ap = argparse.ArgumentParser(prog="python -m stlib.studies.ablation", description=main.__doc__)
    ap.add_argument("--params", required=True, help="params profile (YAML)")
    ap.add_argument("--study", choices=("stage1", "stage2"), required=True)
    ap.add_argument("--variants", nargs="*", default=[], help="variant names (default: all)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    jobs = max(1, min(2, os.cpu_count() or 1))  # one per core, at most 2 (the CPU machines have 2 cores)
    ap.add_argument("--jobs", type=int, default=jobs, help="runs at a time, each in its own process")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="dotted override")
    ap.add_argument("--depth", type=int, nargs=2, default=(4, 6), help="stage 1: encoder depth start, tuned")
    ap.add_argument("--encoder-depth", type=int, help="stage 2: encoder depth of every configuration")
    ap.add_argument("--adaptive-dim", type=int, default=80, help="stage 2: adaptive embedding size")
    ap.add_argument("--stage", help="record under outputs/runs/<stage>/ (default 03 or 04)")
    ap.add_argument("--out", help="folder for <study>_runs.csv and <study>_summary.csv (default outputs/<profile>)")
    args = ap.parse_args(argv)
    try:
        profile = load_profile(resolve_params(args.params))
        base = dict(parse_override(o) for o in args.overrides)
        cfg = profile.run_config(overrides=base)
        ds = from_config(cfg.data)
        if args.study == "stage1":
            variants = stage1_variants(scaled_constants(cfg, len(ds.splits["train"])), tuple(args.depth))
            stage, reference = args.stage or "03", "start"
        else:
            variants = stage2_variants(args.encoder_depth, args.adaptive_dim)
            stage, reference = args.stage or "04", STAGE2_START
        variants = select(variants, args.variants)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    _, table = run_ablation(profile, variants, args.seeds, stage, dataset=ds, base_overrides=base, jobs=args.jobs)
    summary = summarize(table, variants, reference=reference)
    out = Path(args.out) if args.out else output_dir() / profile.name
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / f"{args.study}_runs.csv", table.to_csv(index=False))
    atomic_write_text(out / f"{args.study}_summary.csv", summary.to_csv())
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(summary.round(3).to_string())
    print(f"wrote {out / (args.study + '_runs.csv')} and {out / (args.study + '_summary.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
