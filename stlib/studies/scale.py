"""Cost of the alternating model against the number of sensors N: step time and peak memory.

    python -m stlib.studies.scale --sizes 170 1000 4000 --out outputs/benchmarks

Each N is measured in a fresh process (a clean peak-memory counter): one training step
(forward, backward, optimizer) of the alternating spatio-temporal model on random readings of
N sensors, at a fixed batch; the model is built by the registry and stepped by the trainer's
own train_step (stlib.training.loop), so what is measured is what training runs. On CUDA the
peak is torch.cuda.max_memory_allocated; on CPU it is the rise of the process's peak resident
memory (VmHWM, reset before the first step) over its size then.
`fit_growth` (stlib.reporting.results) fits cost = a * N^k on a log-log scale: spatial attention
through the memory-efficient kernels keeps memory close to linear in N (k ~ 1), where a
materialised N x N score matrix per head would make it quadratic. The figure:
stlib.reporting.reportplots.plot_scale.
"""

from __future__ import annotations

import argparse
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
    return build_run_config(
        {
            "stage": "scale",
            "model": {
                "name": "alternating",
                "d_model": d_model,
                "n_heads": n_heads,
                "encoder_depth": encoder_depth,
                "decoder_depth": decoder_depth,
                "pattern": pattern,
                "dropout": 0.0,
                "use_denoising": False,
            },
            "train": {
                "batch_size": batch,
                "lr": 1e-4,
                "weight_decay": 0.0,
                "grad_clip": 0.0,
                "amp": amp,
                "device": device,
                "time_phases": False,
                "save_checkpoint": False,
                "quiet": True,
            },
        },
        "scale benchmark",
    )


def random_dataset(n: int, windows: int, steps: int = 12) -> Dataset:
    """Random readings of n sensors at 5-minute steps, without a road graph: `windows` training windows of `steps`
    in and `steps` out, one for validation and one for test; the shape of a network of n sensors, nothing more."""
    rows = windows + 2 * steps + 1  # the test window starts at row windows + 1
    series = np.random.default_rng(0).uniform(1.0, 2.0, (rows, n, 1)).astype(np.float32)  # no reading missing (0)
    splits = {"train": np.arange(windows), "val": np.array([windows]), "test": np.array([windows + 1])}
    return Dataset(
        "random",
        series,
        pd.Timestamp("2024-01-01"),
        5,
        pd.DataFrame(columns=["from", "to", "cost"]),
        splits,
        in_steps=steps,
        out_steps=steps,
        source="random readings",
    )


def measure_step(
    n: int,
    batch: int = 2,
    d_model: int = 32,
    n_heads: int = 4,
    encoder_depth: int = 4,
    decoder_depth: int = 2,
    pattern: str = "alternating",
    amp: str = "auto",
    steps: int = 3,
    device: str = "auto",
) -> dict:
    """One process, one N: median seconds of a training step and the peak memory it needs.

    The model, optimizer and autocast come from the trainer's setup (the model registry's build), and each step is
    the trainer's own train_step, on one batch of random readings.
    """
    from ..training import loop
    from ..training.checkpoint import Progress
    from ..training.device import peak_resident_mb, pick_device, reset_peak_resident, resident_mb
    from ..training.distributed import Dist
    from ..training.progress import RunningLoss
    from ..training.timing import Budget, Timer

    cfg = scale_config(batch, d_model, n_heads, encoder_depth, decoder_depth, pattern, amp, device)
    dev = pick_device(cfg.train.device)
    t = loop.setup(cfg, random_dataset(n, batch), Dist(), dev)  # the fixed setup; the loop state without a record
    st = loop.State(Progress(), None, None, None, None, None, None, Budget(0.0), RunningLoss(dev))
    st.loss.start(0.0)
    t.step_model.train()
    x, y = next(iter(t.train_batches.epoch(0)))  # (batch, 12, N, 3), (batch, 12, N, 1)
    timer = Timer(dev, enabled=False)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev) / 2**20
    else:
        base = resident_mb()
        if not reset_peak_resident():
            raise RuntimeError(
                "cannot reset the peak-memory counter (/proc/self/clear_refs): CPU peak memory "
                "would include the imports"
            )
    times = []
    for _ in range(steps + 1):  # the first step is warm-up
        sync()
        t0 = time.perf_counter()
        loop.train_step(t, st, x, y, 0, 1, timer)
        sync()
        times.append(time.perf_counter() - t0)
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev) / 2**20 - base
    else:
        peak = peak_resident_mb() - base
    return {
        "N": n,
        "batch": batch,
        "d_model": d_model,
        "pattern": pattern,
        "device": str(dev),
        "dtype": str(t.dtype or torch.float32).replace("torch.", ""),
        "step_s": float(np.median(times[1:])),
        "warmup_s": times[0],
        "peak_mb": float(peak),
        "params": sum(p.numel() for p in t.model.parameters()),
    }


def measure(sizes=SIZES, timeout: float = 600, **kw) -> pd.DataFrame:
    """measure_step for every N, each in its own process; an N that fails (memory, time) is a row with its error."""
    rows = []
    for n in sizes:
        args = json.dumps({"n": int(n), **kw})
        code = f"import json; from stlib.studies.scale import measure_step; print(json.dumps(measure_step(**json.loads({args!r}))))"
        try:
            p = subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=REPO_ROOT,
                env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            )
        except subprocess.TimeoutExpired:
            rows.append({"N": n, "error": f"over {timeout:.0f} s"})
            continue
        if p.returncode != 0:
            last = (p.stderr.strip().splitlines() or ["no message"])[-1]
            rows.append({"N": n, "error": last[:200]})
            continue
        rows.append(json.loads(p.stdout.strip().splitlines()[-1]))
    return pd.DataFrame(rows)


def main(argv=None) -> int:
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
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dev = str(table["device"].dropna().iloc[0]) if "device" in table and table["device"].notna().any() else "unknown"
    from .bench import device_name, slug

    name = slug(device_name(torch.device(dev))) if dev != "unknown" else "unknown"
    path = out / f"scale_{name}.csv"
    table.to_csv(path, index=False)
    print(table.to_string())
    print(f"growth: step time N^{fit_growth(table, 'step_s'):.2f}, memory N^{fit_growth(table, 'peak_mb'):.2f}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
