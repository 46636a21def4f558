"""Cost of the alternating model against the number of sensors N: step time and peak memory.

    python -m stlib.studies.scale --sizes 170 1000 4000 --out outputs/benchmarks

Each N is measured in a fresh process (a clean peak-memory counter): one training step of the alternating model,
built by the model registry through the trainer's setup and stepped by the trainer's own train_step
(stlib.training.loop), on random readings of N sensors at a fixed batch. The peak is torch.cuda.max_memory_allocated
on CUDA, else the rise of the process's peak resident memory (VmHWM, reset before the first step).
`fit_growth` (stlib.reporting.results) fits cost = a * N^k: the memory-efficient attention kernels keep memory close
to linear in N (k ~ 1), where a materialised N x N score matrix per head would make it quadratic.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..config import RunConfig, build_run_config
from ..data import Dataset
from ..paths import REPO_ROOT
from ..reporting.results import fit_growth

SIZES = (170, 1000, 4000, 8600)  # PEMS08, a city, a large district, LargeST California


def scale_config(
    batch: int = 2,
    d_model: int = 32,
    n_heads: int = 4,
    encoder_depth: int = 4,
    decoder_depth: int = 2,
    pattern: str = "alternating",
    amp: str = "auto",
    device: str = "auto",
) -> RunConfig:
    """The run measured at every N: the alternating model without dropout or denoising (nothing random in a step),
    Adam at a fixed learning rate without weight decay or clipping, one batch a step, no record kept."""
    model = dict(name="alternating", d_model=d_model, n_heads=n_heads, pattern=pattern, dropout=0.0)
    model.update(encoder_depth=encoder_depth, decoder_depth=decoder_depth, use_denoising=False)
    train = dict(batch_size=batch, lr=1e-4, weight_decay=0.0, grad_clip=0.0, amp=amp, device=device)
    train.update(time_phases=False, save_checkpoint=False, quiet=True)
    return build_run_config({"stage": "scale", "model": model, "train": train}, "scale benchmark")


def random_dataset(n: int, windows: int, steps: int = 12) -> Dataset:
    """Random readings of n sensors at 5-minute steps, without a road graph: `windows` training windows of `steps`
    in and `steps` out, one for validation and one for test; the shape of a network of n sensors, nothing more."""
    rows = windows + 2 * steps + 1  # the test window starts at row windows + 1
    series = np.random.default_rng(0).uniform(1.0, 2.0, (rows, n, 1)).astype(np.float32)  # no reading missing (0)
    splits = {"train": np.arange(windows), "val": np.array([windows]), "test": np.array([windows + 1])}
    edges = pd.DataFrame(columns=["from", "to", "cost"])
    start = pd.Timestamp("2024-01-01")
    return Dataset("random", series, start, 5, edges, splits, in_steps=steps, out_steps=steps, source="random readings")


def measure_step(n: int, steps: int = 3, **config) -> dict:
    """One process, one N: median seconds of a training step (after one warm-up step) and the peak memory it needs.
    config: scale_config's arguments (batch, d_model, n_heads, encoder_depth, decoder_depth, pattern, amp, device)."""
    from ..training import loop
    from ..training.checkpoint import Progress
    from ..training.device import peak_resident_mb, pick_device, reset_peak_resident, resident_mb
    from ..training.distributed import Dist
    from ..training.progress import RunningLoss
    from ..training.timing import Budget, Timer

    cfg = scale_config(**config)
    dev = pick_device(cfg.train.device)
    s = loop.setup(cfg, random_dataset(n, cfg.train.batch_size), Dist(), dev)
    # the loop's state without a record: train_step reads only its progress, running loss and clock
    kept = dict(p=Progress(base_lr=cfg.train.lr), clock=Budget(0.0), loss=RunningLoss(dev))
    st = loop.State(**{f.name: kept.get(f.name) for f in dataclasses.fields(loop.State)})
    st.loss.start(0.0)
    s.step_model.train()
    x, y = next(iter(s.train_batches.epoch(0)))  # (batch, 12, N, 3), (batch, 12, N, 1)
    timer, cuda = Timer(dev, enabled=False), dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev) / 2**20
    elif reset_peak_resident():
        base = resident_mb()
    else:
        raise RuntimeError("cannot reset the peak-memory counter (/proc/self/clear_refs): it would count the imports")
    times = []
    for _ in range(steps + 1):  # the first step is warm-up
        sync()
        t0 = time.perf_counter()
        loop.train_step(s, st, x, y, 0, 1, timer)
        sync()
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(dev) / 2**20 if cuda else peak_resident_mb()
    m = cfg.model
    return {
        "N": n,
        "batch": cfg.train.batch_size,
        "d_model": m.d_model,
        "pattern": m.pattern,
        "device": str(dev),
        "dtype": str(s.dtype or torch.float32).replace("torch.", ""),
        "step_s": float(np.median(times[1:])),
        "warmup_s": times[0],
        "peak_mb": float(peak - base),
        "params": sum(p.numel() for p in s.model.parameters()),
    }


def measure(sizes=SIZES, timeout: float = 600, **kw) -> pd.DataFrame:
    """measure_step for every N, each in its own process; an N that fails (memory, time) is a row with its error."""
    rows = []
    for n in sizes:
        args = json.dumps({"n": int(n), **kw})
        code = f"import json; from stlib.studies.scale import measure_step; print(json.dumps(measure_step(**json.loads({args!r}))))"
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        try:
            p = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT, env=env
            )
        except subprocess.TimeoutExpired:
            rows.append({"N": n, "error": f"over {timeout:.0f} s"})
            continue
        if p.returncode != 0:
            rows.append({"N": n, "error": (p.stderr.strip().splitlines() or ["no message"])[-1][:200]})
        else:
            rows.append(json.loads(p.stdout.strip().splitlines()[-1]))
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    from .bench import device_name, slug

    ap = argparse.ArgumentParser(
        prog="python -m stlib.studies.scale", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--d-model", type=int, default=32)
    ap.add_argument("--pattern", default="alternating", choices=["alternating", "stacked", "temporal"])
    ap.add_argument("--out", default="outputs/benchmarks")
    args = ap.parse_args(argv)
    table = measure(args.sizes, batch=args.batch, d_model=args.d_model, pattern=args.pattern)
    ran = table["device"].dropna() if "device" in table else pd.Series(dtype=object)
    name = slug(device_name(torch.device(ran.iloc[0]))) if len(ran) else "unknown"
    path = Path(args.out) / f"scale_{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    print(table.to_string())
    print(f"growth: step time N^{fit_growth(table, 'step_s'):.2f}, memory N^{fit_growth(table, 'peak_mb'):.2f}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
