"""The speed ladder: the roadmap's speed-ups measured side by side on the same model, data and process.

    python -m stlib.studies.bench --profile cpu|gpu|default [--out DIR] [--repeats 3]
    python -m stlib.studies.bench --attn-ab --params P [--set model.name=alternating ...]   # short-sequence attention A/B

Each rung adds one optimisation to the one before (naive -> AMP -> batch 128 -> DataLoader workers ->
device-resident windows -> torch.compile -> validate every 5 [-> CUDA graphs, on a GPU]). Every rung trains with the real
trainer (stlib.train.fit) on a fixed subset of the training windows; the first epoch of each fit is
warm-up (and compilation) and is reported apart; seconds per full epoch are scaled from the subset.
Rungs are interleaved and repeated, odd repeats in reverse order, so machine drift hits all alike; medians are reported.
It says up front how many fits it runs (rungs x repeats) and, from a ladder saved in --out before, about how
long; each fit's line then gives the time left, and on a terminal a bar runs over the fits.

Imports only torch, numpy, pandas and pyyaml on the bench path (a bare GPU machine has those).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace as dc_replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..config import ConfigError, RunConfig, load_profile, parse_override, replace
from ..data import Dataset, from_config, make_batches
from ..models import build_model
from ..paths import REPO_ROOT
from ..training.progress import duration, on_terminal, tqdm

PROFILES = {
    "cpu": "params/pems08_tail_cpu.yaml",
    "gpu": "params/pems08_tail_gpu.yaml",
    "default": "params/default.yaml",
}

# the roadmap's expected saving per rung (fraction of epoch time), for the comparison table
ROADMAP_EXPECTED = {
    "+ AMP": (0.30, 0.50),
    "+ batch 128": (0.20, 0.30),
    "+ DataLoader workers": (0.10, 0.20),
    "+ torch.compile": (0.10, 0.30),
    "+ validate every 5": (0.20, 0.20),
}


def ladder(
    device: torch.device, compile_mode: str = "default", workers: int | None = None, lr: float | None = None
) -> list[tuple[str, dict]]:
    """[(rung, cumulative dotted overrides)]: each rung adds one optimisation.

    The batch-128 rung doubles the learning rate with the batch (the linear scaling rule) when `lr`
    is given, so that an epoch of half as many steps still moves the weights as far.
    """
    workers = workers or min(4, os.cpu_count() or 1)  # the roadmap's 4, capped at the cores there are
    steps = [
        (
            "naive",
            {
                "train.amp": "off",
                "train.compile": "off",
                "train.loader": "dataloader",
                "train.num_workers": 0,
                "train.pin_memory": False,
                "train.batch_size": 64,
                "train.accumulation_steps": 1,
                "train.validate_every": 1,
            },
        ),
        ("+ AMP", {"train.amp": "auto"}),
        ("+ batch 128", {"train.batch_size": 128, **({"train.lr": 2 * lr} if lr else {})}),
        (
            "+ DataLoader workers",
            {"train.num_workers": workers, "train.pin_memory": device.type == "cuda", "train.prefetch_factor": 2},
        ),
        ("+ device-resident windows", {"train.loader": "device", "train.num_workers": 0}),
        ("+ torch.compile", {"train.compile": compile_mode}),
        ("+ validate every 5", {"train.validate_every": 5}),
    ]
    if device.type == "cuda":  # past the roadmap: replay each step as CUDA graphs (launch-bound small kernels)
        steps.append(("+ CUDA graphs", {"train.compile": "reduce-overhead"}))
    rungs, acc = [], {}
    for name, extra in steps:
        acc = {**acc, **extra}
        rungs.append((name, dict(acc)))
    return rungs


def ladder_compile_mode(cfg: RunConfig) -> str:
    """The torch.compile mode of the ladder's compile rung: the config's own, or default when it compiles nothing."""
    return cfg.train.compile if cfg.train.compile != "off" else "default"


def subset(ds: Dataset, train_windows: int, val_windows: int) -> Dataset:
    """The same dataset with the first `train_windows` / `val_windows` windows of each split."""
    splits = {
        "train": ds.splits["train"][:train_windows],
        "val": ds.splits["val"][:val_windows],
        "test": ds.splits["test"][: min(val_windows, len(ds.splits["test"]))],
    }
    small = dc_replace(ds, splits=splits)
    small.__dict__.update(mean=ds.mean, std=ds.std)  # keep the full training statistics
    return small


# ---------------------------------------------------------------------------------------------
# distance to the limit


def flops_per_sample(cfg: RunConfig, ds: Dataset, device: torch.device, batch: int = 8) -> float:
    """Training FLOPs (forward + backward) per window, counted by torch.utils.flop_counter."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(cfg.model, ds).to(device).train()
    x, y = next(iter(make_batches(ds, "train", batch, device)))
    with FlopCounterMode(display=False) as counter:
        out = model(x)
        pred = out[0] if isinstance(out, tuple) else out
        loss = pred.float().abs().mean() + (out[1] if isinstance(out, tuple) else 0)
        if loss.requires_grad:
            loss.backward()
    return counter.get_total_flops() / batch


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int | None = None, seconds: float = 1.0) -> float:
    """Achieved FLOP/s of a large square matmul: the practical peak of this device and dtype."""
    n = n or (8192 if device.type == "cuda" else 1024)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(3):
        a @ b
    sync()
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
        if reps % 4 == 0:
            sync()
    sync()
    return 2 * n**3 * reps / (time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------
# the ladder


def ladder_plan(
    n_rungs: int, repeats: int, epochs: int, train_windows: int, val_windows: int, n_train: int | None = None
) -> str:
    """What a ladder will run, in one line: rungs x repeats = fits, epochs each, on how many windows."""
    of = f" of {n_train}" if n_train else ""
    return (
        f"speed ladder: {n_rungs} rungs x {repeats} repeats = {n_rungs * repeats} fits of {epochs} epochs "
        f"each, on {train_windows}{of} training and {val_windows} validation windows"
    )


def previous_seconds(path: Path, fits: int, epochs: int, train_windows: int) -> float | None:
    """How long this ladder should take, scaled by its work (fits x epochs x windows) from a ladder saved at
    path (a speed_<device>.json of the same device), or None when there is none."""
    try:
        old = json.loads(Path(path).read_text())
        old_fits = (len(old["table"]) + len(old.get("failed", {}))) * old["repeats"]
        old_work = old_fits * old["epochs_per_fit"] * old["train_windows_measured"]
        return old["wall_seconds"] * fits * epochs * train_windows / old_work
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError):
        return None


def speed_ladder(
    cfg: RunConfig,
    ds: Dataset | None = None,
    repeats: int = 2,
    epochs: int = 3,
    train_windows: int = 1280,
    val_windows: int = 256,
    rungs=None,
    progress=print,
    bar: bool = False,
) -> dict:
    """Run every rung `repeats` times, interleaved; return per-rung medians and the raw epochs.

    Odd repeats run the rungs in reverse order (naive, ..., fastest, fastest, ..., naive), so a warm-up or
    drift over the process's life (the first fit of a process runs slowest) hits the first and last rungs alike.
    progress: gets one line per fit, with the time left estimated from the fits so far; bar: also show a
    bar over the fits (for a terminal; write the lines with tqdm.write then).
    """
    from ..training import amp_dtype, fit, pick_device

    device = pick_device(cfg.train.device)
    ds = ds if ds is not None else from_config(cfg.data)
    small = subset(ds, train_windows, val_windows)
    n_train, n_val = len(ds.splits["train"]), len(ds.splits["val"])
    scale_train, scale_val = n_train / len(small.splits["train"]), n_val / len(small.splits["val"])
    compile_mode = ladder_compile_mode(cfg)
    rungs = rungs or ladder(device, compile_mode, lr=cfg.train.lr)
    # phases timed with a device sync at each boundary (every rung alike), so the split is real on a GPU too
    base = replace(
        cfg,
        **{
            "train.epochs": epochs,
            "train.quiet": True,
            "train.save_checkpoint": False,
            "train.scheduler": "none",
            "train.early_stop_patience": 0,
            "train.time_budget_s": 0.0,
            "train.time_phases": True,
            "stage": "bench",
        },
    )
    raw, failed = [], {}  # failed: rung -> the error that stopped it (the other rungs still run)
    fits, started = repeats * len(rungs), time.perf_counter()
    shown = tqdm(total=fits, desc="speed ladder", unit="fit", file=sys.stderr, dynamic_ncols=True) if bar else None
    done = 0  # fits tried (a failed rung's later repeats are skipped: they count as done)
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(repeats):
            order = list(enumerate(rungs))
            for i, (name, overrides) in order[::-1] if rep % 2 else order:
                done += 1
                if name in failed:
                    if shown is not None:
                        shown.update(1)
                    continue
                if shown is not None:
                    shown.set_postfix_str(f"repeat {rep + 1}/{repeats}: {name}")
                rcfg = replace(base, **overrides)
                t0 = time.perf_counter()
                try:
                    run = fit(rcfg, dataset=small, out_root=Path(tmp))
                except Exception as e:  # noqa: BLE001  one broken rung (a backend's bug) must not lose the ladder
                    if i == 0:
                        raise  # without the naive rung there is nothing to compare against
                    failed[name] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                    progress(f"repeat {rep + 1}/{repeats}  {name:<26s} FAILED: {failed[name]}")
                    continue
                finally:
                    if shown is not None:
                        shown.update(1)
                wall = time.perf_counter() - t0
                h = run.history.assign(rung=name, rung_index=i, repeat=rep, fit_seconds=wall)
                raw.append(h)
                progress(
                    f"repeat {rep + 1}/{repeats}  {name:<26s} {h['train_seconds'].iloc[1:].median():7.3f} s "
                    f"per {len(small.splits['train'])} windows  "
                    f"(fit {done}/{fits}: {wall:.0f} s; {time_left(started, done, fits)})"
                )
    if shown is not None:
        shown.close()
    raw = pd.concat(raw, ignore_index=True)
    dtype_peak = {}
    rows = []
    fps = flops_per_sample(cfg, ds, device)
    for i, (name, overrides) in enumerate(rungs):
        r = raw[raw["rung_index"] == i]
        if name in failed:
            continue
        warm = r[r["epoch"] > 1]  # the first epoch of each fit is warm-up / compilation
        validate_every = overrides["train.validate_every"]
        val_runs = warm[warm["validation_s"] > 0]  # first-epoch validation compiles the eval graph
        val_full = float(val_runs["validation_s"].median()) * scale_val if len(val_runs) else 0.0
        train_full = float(warm["train_seconds"].median()) * scale_train
        epoch_s = train_full + val_full / validate_every  # validation amortised as scheduled
        phase = {p: float(warm[f"{p}_s"].median()) * scale_train for p in ("data", "forward", "backward", "optimizer")}
        sps = float(warm["samples_per_s"].median())
        dt = amp_dtype(overrides["train.amp"], device) or torch.float32
        if dt not in dtype_peak:
            dtype_peak[dt] = matmul_peak(device, dt)
        rows.append(
            {
                "rung": name,
                "s_per_epoch": epoch_s,
                "train_s": train_full,
                "validation_s": val_full / validate_every,
                **{f"{p}_s": v for p, v in phase.items()},
                "samples_per_s": sps,
                "warmup_s": float(r[r["epoch"] == 1]["train_seconds"].median()) * scale_train - train_full,
                "peak_mem_mb": float(r["peak_mem_mb"].max()),
                "dtype": str(dt).replace("torch.", ""),
                "achieved_tflops": fps * sps / 1e12,
                "peak_tflops": dtype_peak[dt] / 1e12,
            }
        )
    table = pd.DataFrame(rows)
    table["speedup"] = table["s_per_epoch"].iloc[0] / table["s_per_epoch"]
    table["throughput_x"] = table["samples_per_s"] / table["samples_per_s"].iloc[0]
    table["saving_vs_previous"] = 1 - table["s_per_epoch"] / table["s_per_epoch"].shift(1)
    table["cumulative_saving"] = 1 - table["s_per_epoch"] / table["s_per_epoch"].iloc[0]
    table["fraction_of_peak"] = table["achieved_tflops"] / table["peak_tflops"]
    table["data_share"] = table["data_s"] / table[["data_s", "forward_s", "backward_s", "optimizer_s"]].sum(axis=1)
    table["roadmap_expected"] = table["rung"].map(
        lambda r: "-".join(f"{100 * v:.0f}%" for v in sorted(set(ROADMAP_EXPECTED.get(r, ()))))
    )
    return {
        "table": table,
        "raw": raw,
        "flops_per_sample": fps,
        "device": device_name(device),
        "dataset": ds.name,
        "train_windows_full": n_train,
        "train_windows_measured": len(small.splits["train"]),
        "repeats": repeats,
        "epochs_per_fit": epochs,
        "failed": failed,
        "model": cfg.model.__dict__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def time_left(started: float, done: int, total: int) -> str:
    """'about 12 min 30 s left': the mean time of the fits so far times the fits to go (rough: rungs differ)."""
    if done >= total:
        return "the last fit"
    per_fit = (time.perf_counter() - started) / max(done, 1)
    return f"about {duration(per_fit * (total - done))} left"


def op_profile(
    cfg: RunConfig,
    ds: Dataset | None = None,
    rung: str | None = None,
    epochs: int = 2,
    train_windows: int = 640,
    top: int = 25,
) -> pd.DataFrame:
    """Where a rung's time goes, op by op: torch.profiler over a short fit, top ops by self device time.

    rung: a rung name (default: the fastest rung that still launches its kernels one by one, so that
    CUDA graphs do not hide them). Rows: op, calls, self device ms, share of device time, self CPU ms.
    Compilation and warm-up are in the window too; they run on the host, so the device column is the step's.
    """
    from torch.profiler import ProfilerActivity, profile

    from ..training import fit, pick_device

    device = pick_device(cfg.train.device)
    ds = ds if ds is not None else from_config(cfg.data)
    rungs = ladder(device, ladder_compile_mode(cfg), lr=cfg.train.lr)
    named = dict(rungs)
    if rung is None:
        rung = [n for n, o in rungs if o.get("train.compile") != "reduce-overhead"][-1]
    if rung not in named:
        raise ValueError(f"unknown rung {rung!r}; one of {list(named)}")
    rcfg = replace(
        cfg,
        **{
            **named[rung],
            "train.epochs": epochs,
            "train.quiet": True,
            "train.save_checkpoint": False,
            "train.scheduler": "none",
            "train.early_stop_patience": 0,
            "train.time_budget_s": 0.0,
            "stage": "bench",
        },
    )
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with tempfile.TemporaryDirectory() as tmp, profile(activities=activities) as prof:
        fit(rcfg, dataset=subset(ds, train_windows, train_windows // 4), out_root=Path(tmp))
    dev_attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    rows = [
        {
            "op": e.key,
            "kind": "op" if e.device_type == torch.autograd.DeviceType.CPU else "kernel",
            "calls": e.count,
            "self_device_ms": getattr(e, dev_attr, 0.0) / 1e3,
            "self_cpu_ms": e.self_cpu_time_total / 1e3,
        }
        for e in prof.key_averages()
    ]
    table = device_shares(pd.DataFrame(rows)).sort_values("self_device_ms", ascending=False)
    return table.head(top).assign(rung=rung, device=device_name(device)).reset_index(drop=True)


def device_shares(table: pd.DataFrame) -> pd.DataFrame:
    """device_share = self device ms / the device's total. On a GPU the profiler lists each kernel once as a
    kernel row and again inside the aten op that launched it (an op row with the same device time): the
    total is the kernel rows' sum, so the kernels' shares add up to 1 and an op's share is its kernels'.
    On CPU every row is an op and the total is theirs."""
    kernels = table["kind"].eq("kernel")
    total = table.loc[kernels, "self_device_ms"].sum() if kernels.any() else table["self_device_ms"].sum()
    return table.assign(device_share=table["self_device_ms"] / max(total, 1e-9))


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower().split(" (")[0]).strip("-")


def to_markdown(result: dict) -> str:
    """The ladder as a Markdown table (the roadmap's format plus the phase split and % of peak)."""
    t = result["table"]
    lines = [
        f"# Speed ladder on {result['device']}",
        "",
        f"dataset {result['dataset']}, {result['train_windows_measured']} of {result['train_windows_full']} "
        f"training windows per measured epoch (scaled to the full epoch), {result['repeats']} repeats "
        f"(interleaved, every second one in reverse order) x {result['epochs_per_fit'] - 1} measured epochs; medians. torch {result['torch']}. "
        f"Model: {result['model']['name']}"
        + (f" d_model {result['model']['d_model']}" if "d_model" in result["model"] else "")
        + ", "
        f"{result['flops_per_sample'] / 1e9:.3f} GFLOP per training window."
        + (
            f" Every rung attends sequences of up to {result['model']['attn_short']} steps by explicit matmuls "
            f"(model.attn_short {result['model']['attn_short']})."
            if result["model"].get("attn_short")
            else ""
        ),
        "",
        "| rung | s/epoch | speed-up | cumulative saving | roadmap expected (this rung) | data | forward | "
        "backward | optimizer | validation | samples/s | TFLOP/s | % of peak | warm-up s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in t.itertuples():
        lines.append(
            f"| {r.rung} | {r.s_per_epoch:.2f} | {r.speedup:.2f}x | {100 * r.cumulative_saving:.0f}% | "
            f"{r.roadmap_expected or '-'} | {r.data_s:.2f} | {r.forward_s:.2f} | {r.backward_s:.2f} | "
            f"{r.optimizer_s:.2f} | {r.validation_s:.2f} | {r.samples_per_s:.0f} | "
            f"{r.achieved_tflops:.3f} | {100 * r.fraction_of_peak:.1f}% ({r.dtype}) | {r.warmup_s:.1f} |"
        )
    for rung, error in result.get("failed", {}).items():
        lines.append(f"\n{rung}: failed, not measured ({error})")
    return "\n".join(lines) + "\n"


def save(result: dict, out: Path) -> tuple[Path, Path]:
    """Write speed_<device>.json and .md under out."""
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"speed_{slug(result['device'])}"
    payload = {k: v for k, v in result.items() if k not in ("table", "raw")}
    payload["table"] = result["table"].to_dict(orient="records")
    payload["epochs"] = result["raw"].to_dict(orient="records")
    stem.with_suffix(".json").write_text(json.dumps(payload, indent=2, default=str))
    stem.with_suffix(".md").write_text(to_markdown(result))
    return stem.with_suffix(".json"), stem.with_suffix(".md")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m stlib.studies.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    ap.add_argument("--params", help="params file (overrides --profile)")
    ap.add_argument("--out", default="outputs/benchmarks")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3, help="epochs per fit; the first is warm-up")
    ap.add_argument("--train-windows", type=int, default=1280)
    ap.add_argument("--val-windows", type=int, default=256)
    ap.add_argument(
        "--op-profile",
        action="store_true",
        help="also profile the fastest kernel-by-kernel rung op by op -> ops_<device>.csv",
    )
    ap.add_argument(
        "--attn-ab",
        action="store_true",
        help="only the attention A/B: fused kernels vs explicit matmuls for short sequences "
        "(model.attn_short 0 vs --short) -> attn_<device>.csv",
    )
    ap.add_argument("--short", type=int, default=32, help="--attn-ab: the model.attn_short to try against 0")
    ap.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dotted override of the params file, e.g. --set model.name=alternating",
    )
    ap.add_argument(
        "--peer-only",
        action="store_true",
        help="only our STID-style runners against the peer runner -> peer_<device>.csv (--repeats, --epochs)",
    )
    args = ap.parse_args(argv)
    params = Path(args.params or REPO_ROOT / PROFILES[args.profile])
    profile = load_profile(params)
    try:
        cfg = profile.run_config(overrides=dict(parse_override(o) for o in args.overrides))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.attn_ab:
        table = attention_ab(
            cfg,
            shorts=(0, args.short),
            repeats=args.repeats,
            epochs=max(args.epochs, 2),
            train_windows=args.train_windows,
            val_windows=args.val_windows,
        )
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"attn_{slug(table['device'].iloc[0])}.csv"
        table.to_csv(path, mode="a", header=not path.exists(), index=False)  # one file, a block per model
        print(table.drop(columns=["repeats_s"]).round(4).to_string(index=False))
        best = int(table.loc[table["train_s_per_epoch"].idxmin(), "attn_short"])
        print(f"wrote {path}\nbest model.attn_short={best}")
        return 0
    if args.peer_only:
        table = peer_comparison(profile, from_config(cfg.data), repeats=args.repeats, epochs=max(args.epochs, 2))
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"peer_{slug(device_name(torch.device('cpu')))}.csv"
        table.assign(device=device_name(torch.device("cpu")), torch=torch.__version__).to_csv(path, index=False)
        print(table.round(3).to_string(index=False))
        print(f"wrote {path}")
        return 0
    say_plan(cfg, args)
    t0 = time.time()
    result = speed_ladder(
        cfg,
        repeats=args.repeats,
        epochs=args.epochs,
        train_windows=args.train_windows,
        val_windows=args.val_windows,
        progress=tqdm.write,
        bar=on_terminal(),
    )
    result["wall_seconds"] = time.time() - t0
    js, md = save(result, Path(args.out))
    print(md.read_text())
    print(f"wrote {js} and {md} in {result['wall_seconds']:.0f} s")
    if args.op_profile:
        ops = op_profile(cfg, train_windows=min(args.train_windows, 640))
        path = Path(args.out) / f"ops_{slug(ops['device'].iloc[0])}.csv"
        ops.to_csv(path, index=False)
        print(ops[["op", "calls", "self_device_ms", "device_share"]].head(15).to_string(index=False))
        print(f"wrote {path}")
    return 0


def say_plan(cfg: RunConfig, args) -> None:
    """Print what the ladder will run and, from a ladder saved in --out before, about how long it takes."""
    from ..training import pick_device

    device = pick_device(cfg.train.device)
    n_rungs = len(ladder(device, lr=cfg.train.lr))
    fits = n_rungs * args.repeats
    print(ladder_plan(n_rungs, args.repeats, args.epochs, args.train_windows, args.val_windows), flush=True)
    before = Path(args.out) / f"speed_{slug(device_name(device))}.json"
    guess = previous_seconds(before, fits, args.epochs, args.train_windows)
    print(
        f"about {duration(guess)} in all, scaled from {before} (the last ladder saved there)"
        if guess
        else "time: not known yet; each fit's line says about how long is left",
        flush=True,
    )


# ---------------------------------------------------------------------------------------------
# accuracy guard and peer comparison (full data)


def accuracy_guard(cfg: RunConfig, ds: Dataset, epochs: int, out_root: Path | None = None) -> pd.DataFrame:
    """Validation MAE of the naive and the fastest rung after the same number of full epochs."""
    from ..training import fit, pick_device

    rungs = ladder(pick_device(cfg.train.device), ladder_compile_mode(cfg), lr=cfg.train.lr)
    rows = []
    for name, overrides in (rungs[0], rungs[-1]):
        rcfg = replace(
            cfg,
            **{
                **overrides,
                "train.epochs": epochs,
                "train.quiet": True,
                "stage": "02",
                "name": f"guard {name}",
                "train.scheduler": "none",
            },
        )
        run = fit(rcfg, dataset=ds, out_root=out_root)
        last = run.history.dropna(subset=["val_mae"]).iloc[-1]
        rows.append(
            {
                "rung": name,
                "epochs": epochs,
                "val_mae_last": float(last["val_mae"]),
                "best_val_mae": float(run.history["val_mae"].min()),
                "test_mae": run.metrics["test"]["mae"],
                "train_seconds": run.metrics["train_seconds"],
            }
        )
    table = pd.DataFrame(rows)
    table["vs_naive"] = table["val_mae_last"] / table["val_mae_last"].iloc[0] - 1
    return table


def time_epochs(cfg: RunConfig, ds: Dataset, epochs: int = 3, out_root: Path | None = None) -> dict:
    """Median seconds per full training epoch (first epoch excluded) and per validation of a config."""
    from ..training import fit

    rcfg = replace(
        cfg, **{"train.epochs": epochs, "train.quiet": True, "train.save_checkpoint": False, "stage": "bench"}
    )
    with tempfile.TemporaryDirectory() as tmp:
        run = fit(rcfg, dataset=ds, out_root=out_root or Path(tmp))
    h = run.history.iloc[1:] if len(run.history) > 1 else run.history
    return {
        "train_s_per_epoch": float(h["train_seconds"].median()),
        "validation_s": float(h["validation_s"].median()),
        "batch_size": cfg.train.batch_size,
        "amp": run.metrics["amp"],
        "loader": cfg.train.loader,
        "params": run.metrics["params"],
    }


def attention_ab(
    cfg: RunConfig,
    ds: Dataset | None = None,
    shorts=(0, 32),
    repeats: int = 2,
    epochs: int = 3,
    train_windows: int = 640,
    val_windows: int = 128,
    progress=print,
) -> pd.DataFrame:
    """Training seconds per epoch of one config with each model.attn_short (0 = the fused kernels for
    every sequence), fits interleaved and repeated, the first epoch of each fit excluded; medians.

    Seconds are for `train_windows` windows (a subset, as the ladder's), so only the ratio is the point.
    """
    from ..training import pick_device

    ds = subset(ds or from_config(cfg.data), train_windows, val_windows)
    seen = {s: [] for s in shorts}
    for rep in range(repeats):
        for s in shorts:
            r = time_epochs(replace(cfg, **{"model.attn_short": s}), ds, epochs=epochs)
            seen[s].append(r["train_s_per_epoch"])
            progress(f"repeat {rep + 1}/{repeats}  attn_short {s:>3d}: {seen[s][-1]:.3f} s per {train_windows} windows")
    m = cfg.model
    model = (
        f"{m.name}{' ' + m.pattern if m.name == 'alternating' else ''} d{m.d_model} h{m.n_heads} "
        f"enc{m.encoder_depth} dec{m.decoder_depth} batch {cfg.train.batch_size}".replace("  ", " ")
    )
    table = pd.DataFrame(
        [
            {
                "model": model,
                "attn_short": s,
                "train_s_per_epoch": float(np.median(v)),
                "windows_per_s": train_windows / float(np.median(v)),
                "repeats_s": [round(x, 4) for x in v],
            }
            for s, v in seen.items()
        ]
    )
    table["speed_up"] = table["train_s_per_epoch"].iloc[0] / table["train_s_per_epoch"]
    return table.assign(
        amp=cfg.train.amp,
        compile=cfg.train.compile,
        device=device_name(pick_device(cfg.train.device)),
        torch=torch.__version__,
    )


PEER_RUNNERS = {  # our trainer on the peer's STID at its batch (64), with what our trainer adds switched on
    "ours, fp32, device windows": {"train.amp": "off", "train.loader": "device"},
    "ours, bf16, device windows": {"train.amp": "auto", "train.loader": "device"},
    "ours, bf16, device windows, compiled": {"train.amp": "auto", "train.loader": "device", "train.compile": "default"},
}


def peer_comparison(
    profile, ds: Dataset, repeats: int = 2, epochs: int = 4, runners: dict | None = None, progress=print
) -> pd.DataFrame:
    """Our trainer on the STID preset (batch 64, the peer's model size) against the peer runner's epoch time.

    Each runner trains `epochs` full epochs (the first is warm-up), `repeats` times interleaved; the
    table has the median training seconds per epoch, every repeat's figure, and the ratio to the
    peer's (docs/results.md), which only means something on pems08-tail on the 2-core CPU class.
    """
    from ..reporting.reference import PEER, PROTOCOL

    stid = replace(profile.run_config(preset="stid"), **{"train.batch_size": 64})
    runners = runners or PEER_RUNNERS
    seen = {label: [] for label in runners}
    last = {}
    for rep in range(repeats):
        for label, extra in runners.items():
            last[label] = time_epochs(replace(stid, **extra), ds, epochs=epochs)
            seen[label].append(last[label]["train_s_per_epoch"])
            progress(f"repeat {rep + 1}/{repeats}  {label:<38s} {seen[label][-1]:.3f} s per training epoch")
    rows = [
        {
            "runner": label,
            "train_s_per_epoch": float(np.median(v)),
            "repeats_s": [round(x, 3) for x in v],
            **{k: last[label][k] for k in ("validation_s", "batch_size", "amp", "params")},
        }
        for label, v in seen.items()
    ]
    table = pd.DataFrame(rows)
    if ds.name == PROTOCOL:
        peer_s = PEER["BasicTS STID (100 epochs, 3 seeds)"]["seconds_per_epoch"]
        table["peer s/epoch"] = peer_s
        table["faster than peer"] = peer_s / table["train_s_per_epoch"]
    return table


if __name__ == "__main__":
    sys.exit(main())
