"""The speed ladder: the roadmap's speed-ups measured side by side on the same model, data and process.

    python -m stlib.studies.bench --profile cpu|gpu|default [--out DIR] [--repeats 3] [--op-profile]
    python -m stlib.studies.bench --attn-ab --params P [--set model.name=alternating ...]   # short-sequence attention A/B
    python -m stlib.studies.bench --profile cpu --peer-only   # our STID runners against the peer's epoch time

Each rung adds one optimisation to the one before and trains with the real trainer on a subset of the training
windows (seconds per full epoch scaled from it). Every comparison here times its fits through `interleaved`.
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
from ..training import amp_dtype, compute_loss, fit, pick_device
from ..training.progress import duration, on_terminal, tqdm

PROFILES = {"cpu": "params/pems08_tail_cpu.yaml", "gpu": "params/pems08_tail_gpu.yaml"}
PROFILES["default"] = "params/default.yaml"
# the roadmap's expected saving per rung (fraction of epoch time), for the comparison table
ROADMAP_EXPECTED = {"+ AMP": (0.3, 0.5), "+ batch 128": (0.2, 0.3), "+ DataLoader workers": (0.1, 0.2)}
ROADMAP_EXPECTED |= {"+ torch.compile": (0.1, 0.3), "+ validate every 5": (0.2, 0.2)}
# every timed fit: no record kept, nothing shown, every epoch run at the same learning rate
BENCH = {"train.quiet": True, "train.save_checkpoint": False, "train.scheduler": "none", "stage": "bench"}
BENCH |= {"train.early_stop_patience": 0, "train.time_budget_s": 0.0}
PHASES = ("data", "forward", "backward", "optimizer")  # of a training step, timed apart (train.time_phases)


def ladder(device: torch.device, compile_mode="default", workers: int | None = None, lr: float | None = None) -> list:
    """[(rung, cumulative dotted overrides)]: each rung adds one optimisation. The batch-128 rung doubles the
    learning rate with the batch (the linear scaling rule) when `lr` is given: half the steps move the weights as far."""
    workers = workers or min(4, os.cpu_count() or 1)  # the roadmap's 4, capped at the cores there are
    naive = dict(amp="off", compile="off", loader="dataloader", num_workers=0, pin_memory=False, batch_size=64)
    steps = [
        ("naive", {**naive, "accumulation_steps": 1, "validate_every": 1}),
        ("+ AMP", {"amp": "auto"}),
        ("+ batch 128", {"batch_size": 128, **({"lr": 2 * lr} if lr else {})}),
        ("+ DataLoader workers", {"num_workers": workers, "pin_memory": device.type == "cuda", "prefetch_factor": 2}),
        ("+ device-resident windows", {"loader": "device", "num_workers": 0}),
        ("+ torch.compile", {"compile": compile_mode}),
        ("+ validate every 5", {"validate_every": 5}),
    ]
    if device.type == "cuda":  # past the roadmap: replay each step as CUDA graphs (launch-bound small kernels)
        steps.append(("+ CUDA graphs", {"compile": "reduce-overhead"}))
    rungs, acc = [], {}
    for name, extra in steps:
        acc = {**acc, **{f"train.{k}": v for k, v in extra.items()}}
        rungs.append((name, acc))
    return rungs


def config_ladder(cfg: RunConfig, device: torch.device) -> list:
    """The ladder of a config: its learning rate, its torch.compile mode (default when it compiles nothing)."""
    return ladder(device, cfg.train.compile if cfg.train.compile != "off" else "default", lr=cfg.train.lr)


def subset(ds: Dataset, train_windows: int, val_windows: int) -> Dataset:
    """The same dataset with the first `train_windows` training and `val_windows` validation and test windows."""
    first = {"train": train_windows, "val": val_windows, "test": val_windows}
    small = dc_replace(ds, splits={k: w[: first.get(k)] for k, w in ds.splits.items()})
    small.__dict__.update(mean=ds.mean, std=ds.std)  # keep the full training statistics
    return small


def flops_per_sample(cfg: RunConfig, ds: Dataset, device: torch.device, batch: int = 8) -> float:
    """Training FLOPs per window (forward, the trainer's own loss, backward), counted by torch.utils.flop_counter."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(cfg.model, ds).to(device).train()
    x, y = next(iter(make_batches(ds, "train", batch, device)))
    with FlopCounterMode(display=False) as counter:
        loss = compute_loss(model(x), y, ds.mean, ds.std, cfg.train)
        if loss.requires_grad:
            loss.backward()
    return counter.get_total_flops() / batch


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int | None = None, seconds: float = 1.0) -> float:
    """Achieved FLOP/s of a large square matmul: the practical peak of this device and dtype."""
    n = n or (8192 if device.type == "cuda" else 1024)
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
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


def interleaved(cfgs: dict[str, RunConfig], ds: Dataset, repeats: int, progress=print, bar: bool = False) -> tuple:
    """Train every config `repeats` times, interleaved, odd repeats in reverse order (a, b, c, c, b, a, a, ...), so
    that a warm-up or drift over the process's life hits the first and last alike; progress gets a line per fit (with
    the time left), bar shows a bar. ([(repeat, name, history, metrics, fit seconds)] in the order run, {name: error}):
    a config that fails is reported and not tried again; the first one raises (there is nothing to compare against).
    """
    names, log, failed, done = list(cfgs), [], {}, 0
    fits, started, windows = repeats * len(names), time.perf_counter(), len(ds.splits["train"])
    shown = tqdm(total=fits, desc="fits", unit="fit", file=sys.stderr, dynamic_ncols=True, disable=not bar)
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(repeats):
            for name in names[::-1] if rep % 2 else names:
                done += 1
                shown.set_postfix_str(f"repeat {rep + 1}/{repeats}: {name}")
                t0 = time.perf_counter()
                try:
                    run = fit(cfgs[name], dataset=ds, out_root=Path(tmp)) if name not in failed else None
                except Exception as e:  # noqa: BLE001  one broken config (a backend's bug) must not lose the rest
                    if name == names[0]:
                        raise
                    failed[name] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                    progress(f"repeat {rep + 1}/{repeats}  {name:<26s} FAILED: {failed[name]}")
                finally:
                    shown.update(1)
                if name not in failed:
                    wall = time.perf_counter() - t0
                    log.append((rep, name, run.history, run.metrics, wall))
                    progress(
                        f"repeat {rep + 1}/{repeats}  {name:<26s} {warm(run.history):7.3f} s per {windows} windows  "
                        f"(fit {done}/{fits}: {wall:.0f} s; {time_left(started, done, fits)})"
                    )
    shown.close()
    return log, failed


def warm(history: pd.DataFrame, column: str = "train_seconds") -> float:
    """The median of a fit's column over its epochs after the first (warm-up, compilation), or of its one epoch."""
    return float((history.iloc[1:] if len(history) > 1 else history)[column].median())


def per_fit(log: list) -> dict[str, list[float]]:
    """{name: the warm training seconds per epoch of each of its fits}, from interleaved's log (configs in order)."""
    seen = {}
    for _, name, history, _, _ in log:
        seen.setdefault(name, []).append(warm(history))
    return seen


def time_left(started: float, done: int, total: int) -> str:
    """'about 12 min 30 s left': the mean time of the fits so far times the fits to go (rough: rungs differ)."""
    per_fit_s = (time.perf_counter() - started) / max(done, 1)
    return "the last fit" if done >= total else f"about {duration(per_fit_s * (total - done))} left"


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
    cfg, ds=None, repeats=2, epochs=3, train_windows=1280, val_windows=256, rungs=None, progress=print, bar=False
) -> dict:
    """Every rung `repeats` times (interleaved): per-rung medians and the raw epochs."""
    device = pick_device(cfg.train.device)
    ds = ds if ds is not None else from_config(cfg.data)
    small = subset(ds, train_windows, val_windows)
    n_train, n_val, measured = len(ds.splits["train"]), len(ds.splits["val"]), len(small.splits["train"])
    scale_train, scale_val = n_train / measured, n_val / len(small.splits["val"])
    rungs = rungs or config_ladder(cfg, device)
    # phases timed with a device sync at each boundary (every rung alike), so the split is real on a GPU too
    base = replace(cfg, **BENCH, **{"train.epochs": epochs, "train.time_phases": True})
    log, failed = interleaved({n: replace(base, **o) for n, o in rungs}, small, repeats, progress, bar)
    index = {name: i for i, (name, _) in enumerate(rungs)}
    raw = [h.assign(rung=n, rung_index=index[n], repeat=rep, fit_seconds=wall) for rep, n, h, _, wall in log]
    raw = pd.concat(raw, ignore_index=True)
    names, fps, over = [n for n, _ in rungs if n not in failed], flops_per_sample(cfg, ds, device), dict(rungs)
    later = raw[raw["epoch"] > 1]  # the first epoch of each fit is warm-up / compilation
    med = lambda rows, column: rows.groupby("rung")[column].median().reindex(names).to_numpy()
    every = np.array([over[n]["train.validate_every"] for n in names])
    dtypes = [amp_dtype(over[n]["train.amp"], device) or torch.float32 for n in names]
    peaks = {dt: matmul_peak(device, dt) for dt in dict.fromkeys(dtypes)}
    t = pd.DataFrame({"rung": names, "train_s": med(later, "train_seconds") * scale_train})
    # validation amortised as scheduled; the first epoch's validation compiles the eval graph
    t["validation_s"] = np.nan_to_num(med(later[later["validation_s"] > 0], "validation_s")) * scale_val / every
    t.insert(1, "s_per_epoch", t["train_s"] + t["validation_s"])
    for p in PHASES:
        t[f"{p}_s"] = med(later, f"{p}_s") * scale_train
    t["samples_per_s"] = med(later, "samples_per_s")
    t["warmup_s"] = med(raw[raw["epoch"] == 1], "train_seconds") * scale_train - t["train_s"]
    t["peak_mem_mb"] = raw.groupby("rung")["peak_mem_mb"].max().reindex(names).to_numpy()
    t["dtype"] = [str(dt).replace("torch.", "") for dt in dtypes]
    t["achieved_tflops"] = fps * t["samples_per_s"] / 1e12
    t["peak_tflops"] = [peaks[dt] / 1e12 for dt in dtypes]
    first = t["s_per_epoch"].iloc[0]
    t["speedup"] = first / t["s_per_epoch"]
    t["throughput_x"] = t["samples_per_s"] / t["samples_per_s"].iloc[0]
    t["saving_vs_previous"] = 1 - t["s_per_epoch"] / t["s_per_epoch"].shift(1)
    t["cumulative_saving"] = 1 - t["s_per_epoch"] / first
    t["fraction_of_peak"] = t["achieved_tflops"] / t["peak_tflops"]
    t["data_share"] = t["data_s"] / t[[f"{p}_s" for p in PHASES]].sum(axis=1)
    t["roadmap_expected"] = [
        "-".join(f"{100 * v:.0f}%" for v in sorted(set(ROADMAP_EXPECTED.get(r, ())))) for r in names
    ]
    run = dict(device=device_name(device), dataset=ds.name, train_windows_full=n_train, train_windows_measured=measured)
    run |= dict(
        repeats=repeats, epochs_per_fit=epochs, failed=failed, model=cfg.model.__dict__, torch=torch.__version__
    )
    return {"table": t, "raw": raw, "flops_per_sample": fps, **run, "threads": torch.get_num_threads()}


def op_profile(cfg: RunConfig, ds=None, rung: str | None = None, epochs=2, train_windows=640, top=25) -> pd.DataFrame:
    """Where a rung's time goes (default: the fastest rung whose kernels CUDA graphs do not hide): torch.profiler
    over a short fit, top ops by self device time (compilation runs on the host: the device column is the step's)."""
    from torch.profiler import ProfilerActivity, profile

    device = pick_device(cfg.train.device)
    rungs = config_ladder(cfg, device)
    rung = rung or [n for n, o in rungs if o.get("train.compile") != "reduce-overhead"][-1]
    if rung not in dict(rungs):
        raise ValueError(f"unknown rung {rung!r}; one of {list(dict(rungs))}")
    small = subset(ds if ds is not None else from_config(cfg.data), train_windows, train_windows // 4)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with tempfile.TemporaryDirectory() as tmp, profile(activities=activities) as prof:
        fit(replace(cfg, **{**dict(rungs)[rung], **BENCH, "train.epochs": epochs}), dataset=small, out_root=Path(tmp))
    dev_attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    rows = {"op": [], "kind": [], "calls": [], "self_device_ms": [], "self_cpu_ms": []}
    for e in prof.key_averages():
        rows["op"].append(e.key)
        rows["kind"].append("op" if e.device_type == torch.autograd.DeviceType.CPU else "kernel")
        rows["calls"].append(e.count)
        rows["self_device_ms"].append(getattr(e, dev_attr, 0.0) / 1e3)
        rows["self_cpu_ms"].append(e.self_cpu_time_total / 1e3)
    table = device_shares(pd.DataFrame(rows)).sort_values("self_device_ms", ascending=False)
    return table.head(top).assign(rung=rung, device=device_name(device)).reset_index(drop=True)


def device_shares(table: pd.DataFrame) -> pd.DataFrame:
    """device_share = self device ms / the device's total: on a GPU the kernel rows' sum (an aten op's row repeats
    its kernels' time), so the kernels' shares add up to 1 and an op's share is its kernels'; on CPU all rows'."""
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
    m, short = result["model"], result["model"].get("attn_short")
    attn = f" Every rung attends sequences of up to {short} steps by explicit matmuls (model.attn_short {short})."
    lines = [
        f"# Speed ladder on {result['device']}",
        "",
        f"dataset {result['dataset']}, {result['train_windows_measured']} of {result['train_windows_full']} "
        f"training windows per measured epoch (scaled to the full epoch), {result['repeats']} repeats "
        f"(interleaved, every second one in reverse order) x {result['epochs_per_fit'] - 1} measured epochs; medians. "
        f"torch {result['torch']}. Model: {m['name']}" + (f" d_model {m['d_model']}" if "d_model" in m else "") + ", "
        f"{result['flops_per_sample'] / 1e9:.3f} GFLOP per training window." + (attn if short else ""),
        "",
        "| rung | s/epoch | speed-up | cumulative saving | roadmap expected (this rung) | data | forward | "
        "backward | optimizer | validation | samples/s | TFLOP/s | % of peak | warm-up s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["table"].itertuples():
        lines.append(
            f"| {r.rung} | {r.s_per_epoch:.2f} | {r.speedup:.2f}x | {100 * r.cumulative_saving:.0f}% | "
            f"{r.roadmap_expected or '-'} | {r.data_s:.2f} | {r.forward_s:.2f} | {r.backward_s:.2f} | "
            f"{r.optimizer_s:.2f} | {r.validation_s:.2f} | {r.samples_per_s:.0f} | "
            f"{r.achieved_tflops:.3f} | {100 * r.fraction_of_peak:.1f}% ({r.dtype}) | {r.warmup_s:.1f} |"
        )
    lines += [f"\n{rung}: failed, not measured ({error})" for rung, error in result.get("failed", {}).items()]
    return "\n".join(lines) + "\n"


def save(result: dict, out: Path) -> tuple[Path, Path]:
    """Write speed_<device>.json and .md under out."""
    out.mkdir(parents=True, exist_ok=True)
    js, md = (out / f"speed_{slug(result['device'])}{ext}" for ext in (".json", ".md"))
    payload = {k: v for k, v in result.items() if k not in ("table", "raw")}
    payload |= {"table": result["table"].to_dict(orient="records"), "epochs": result["raw"].to_dict(orient="records")}
    js.write_text(json.dumps(payload, indent=2, default=str))
    md.write_text(to_markdown(result))
    return js, md


def accuracy_guard(cfg: RunConfig, ds: Dataset, epochs: int, out_root: Path | None = None) -> pd.DataFrame:
    """Validation MAE of the naive and the fastest rung after the same number of full epochs."""
    rungs, rows = config_ladder(cfg, pick_device(cfg.train.device)), []
    for name, overrides in (rungs[0], rungs[-1]):
        over = {"train.epochs": epochs, "train.quiet": True, "train.scheduler": "none", "stage": "02"}
        run = fit(replace(cfg, **{**overrides, **over, "name": f"guard {name}"}), dataset=ds, out_root=out_root)
        h, mt = run.history, run.metrics
        last = float(h.dropna(subset=["val_mae"]).iloc[-1]["val_mae"])
        rows.append([name, epochs, last, float(h["val_mae"].min()), mt["test"]["mae"], mt["train_seconds"]])
    table = pd.DataFrame(rows, columns=["rung", "epochs", "val_mae_last", "best_val_mae", "test_mae", "train_seconds"])
    return table.assign(vs_naive=table["val_mae_last"] / table["val_mae_last"].iloc[0] - 1)


def attention_ab(
    cfg: RunConfig, ds=None, shorts=(0, 32), repeats=2, epochs=3, train_windows=640, val_windows=128, progress=print
) -> pd.DataFrame:
    """Training seconds per epoch of one config with each model.attn_short (0 = the fused kernels for every
    sequence), interleaved; for `train_windows` windows (a subset, as the ladder's), so only the ratio is the point."""
    small = subset(ds if ds is not None else from_config(cfg.data), train_windows, val_windows)
    cfgs = {f"attn_short {s}": replace(cfg, **BENCH, **{"train.epochs": epochs, "model.attn_short": s}) for s in shorts}
    seen = per_fit(interleaved(cfgs, small, repeats, progress)[0])
    m, median = cfg.model, {n: float(np.median(v)) for n, v in seen.items()}
    model = f"{m.name}{' ' + m.pattern if m.name == 'alternating' else ''} d{m.d_model} h{m.n_heads} "
    table = pd.DataFrame(
        {
            "model": model + f"enc{m.encoder_depth} dec{m.decoder_depth} batch {cfg.train.batch_size}",
            "attn_short": [cfgs[n].model.attn_short for n in seen],
            "train_s_per_epoch": list(median.values()),
            "windows_per_s": [train_windows / s for s in median.values()],
            "repeats_s": [[round(x, 4) for x in v] for v in seen.values()],
        }
    )
    table["speed_up"] = table["train_s_per_epoch"].iloc[0] / table["train_s_per_epoch"]
    device = device_name(pick_device(cfg.train.device))
    return table.assign(amp=cfg.train.amp, compile=cfg.train.compile, device=device, torch=torch.__version__)


PEER_RUNNERS = {  # our trainer on the peer's STID at its batch (64), with what our trainer adds switched on
    "ours, fp32, device windows": {"train.amp": "off", "train.loader": "device"},
    "ours, bf16, device windows": {"train.amp": "auto", "train.loader": "device"},
    "ours, bf16, device windows, compiled": {"train.amp": "auto", "train.loader": "device", "train.compile": "default"},
}


def peer_comparison(profile, ds: Dataset, repeats=2, epochs=4, runners: dict | None = None, progress=print):
    """Our trainer on the STID preset (batch 64, the peer's size), `epochs` full epochs a fit, against the peer
    runner's epoch time (docs/results.md: comparable on pems08-tail on the 2-core CPU class only)."""
    from ..reporting.reference import PEER, PROTOCOL

    stid = replace(profile.run_config(preset="stid"), **BENCH, **{"train.batch_size": 64, "train.epochs": epochs})
    cfgs = {label: replace(stid, **extra) for label, extra in (runners or PEER_RUNNERS).items()}
    log, _ = interleaved(cfgs, ds, repeats, progress)
    last = {name: (history, metrics) for _, name, history, metrics, _ in log}  # each runner's last repeat
    rows = [
        [n, float(np.median(v)), [round(x, 3) for x in v], warm(last[n][0], "validation_s"), cfgs[n].train.batch_size]
        + [last[n][1]["amp"], last[n][1]["params"]]
        for n, v in per_fit(log).items()
    ]
    columns = ["runner", "train_s_per_epoch", "repeats_s", "validation_s", "batch_size", "amp", "params"]
    table = pd.DataFrame(rows, columns=columns)
    if ds.name == PROTOCOL:
        peer_s = PEER["BasicTS STID (100 epochs, 3 seeds)"]["seconds_per_epoch"]
        table["peer s/epoch"] = peer_s
        table["faster than peer"] = peer_s / table["train_s_per_epoch"]
    return table


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
    ap.add_argument("--op-profile", action="store_true", help="also profile the fastest eager rung -> ops_<device>.csv")
    ap.add_argument("--attn-ab", action="store_true", help="only model.attn_short 0 vs --short -> attn_<device>.csv")
    ap.add_argument("--short", type=int, default=32, help="--attn-ab: the model.attn_short to try against 0")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="dotted override")
    ap.add_argument("--peer-only", action="store_true", help="only our STID runners vs the peer -> peer_<device>.csv")
    args = ap.parse_args(argv)
    profile = load_profile(Path(args.params or REPO_ROOT / PROFILES[args.profile]))
    try:
        cfg = profile.run_config(overrides=dict(parse_override(o) for o in args.overrides))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out, windows = Path(args.out), dict(train_windows=args.train_windows, val_windows=args.val_windows)
    if args.attn_ab:
        table = attention_ab(cfg, shorts=(0, args.short), repeats=args.repeats, epochs=max(args.epochs, 2), **windows)
        print(table.drop(columns=["repeats_s"]).round(4).to_string(index=False))
        write_csv(table, out / f"attn_{slug(table['device'].iloc[0])}.csv", append=True)  # a block per model
        print(f"best model.attn_short={int(table.loc[table['train_s_per_epoch'].idxmin(), 'attn_short'])}")
    elif args.peer_only:
        table = peer_comparison(profile, from_config(cfg.data), repeats=args.repeats, epochs=max(args.epochs, 2))
        print(table.round(3).to_string(index=False))
        cpu = device_name(torch.device("cpu"))
        write_csv(table.assign(device=cpu, torch=torch.__version__), out / f"peer_{slug(cpu)}.csv")
    else:
        device, t0 = pick_device(cfg.train.device), time.time()
        n = len(config_ladder(cfg, device))
        print(
            f"speed ladder: {n} rungs x {args.repeats} repeats = {n * args.repeats} fits of {args.epochs} epochs each, "
            f"on {args.train_windows} training and {args.val_windows} validation windows"
        )
        before = out / f"speed_{slug(device_name(device))}.json"
        guess = previous_seconds(before, n * args.repeats, args.epochs, args.train_windows)
        print(
            f"about {duration(guess)} in all, scaled from {before} (the last ladder saved there)"
            if guess
            else "time: not known yet; each fit's line says about how long is left",
            flush=True,
        )
        shown = dict(progress=tqdm.write, bar=on_terminal())
        result = speed_ladder(cfg, repeats=args.repeats, epochs=args.epochs, **windows, **shown)
        result["wall_seconds"] = time.time() - t0
        js, md = save(result, out)
        print(f"{md.read_text()}\nwrote {js} and {md} in {result['wall_seconds']:.0f} s")
        if args.op_profile:
            ops = op_profile(cfg, train_windows=min(args.train_windows, 640))
            print(ops[["op", "calls", "self_device_ms", "device_share"]].head(15).to_string(index=False))
            write_csv(ops, out / f"ops_{slug(ops['device'].iloc[0])}.csv")
    return 0


def write_csv(table: pd.DataFrame, path: Path, append: bool = False) -> None:
    """Write (append: add to, with a header only for a new file) a table as CSV, its folder made; say so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, mode="a" if append else "w", header=not (append and path.exists()), index=False)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
