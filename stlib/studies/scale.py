"""Cost of the alternating model against the number of sensors N: step time and peak memory.

    python -m stlib.studies.scale --sizes 170 1000 4000 --out outputs/benchmarks

Each N is measured in a fresh process (a clean peak-memory counter): one training step
(forward, backward, optimizer) of the alternating spatio-temporal model on random inputs shaped
like a graph of N sensors, at a fixed batch. On CUDA the peak is torch.cuda.max_memory_allocated;
on CPU it is the rise of the process's peak resident memory (VmHWM, reset before the first step)
over its size then.
`fit_growth` fits cost = a * N^k on a log-log scale: spatial attention through the
memory-efficient kernels keeps memory close to linear in N (k ~ 1), where a materialised N x N
score matrix per head would make it quadratic.
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

from ..paths import REPO_ROOT

SIZES = (170, 1000, 4000, 8600)  # PEMS08, a city, a large district, LargeST California


def _inputs(batch: int, steps: int, n: int, spd: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, steps, n, 3, generator=g)
    slot = torch.randint(0, spd - steps, (batch, 1, 1), generator=g) + torch.arange(steps).view(1, -1, 1)
    x[..., 1] = (slot / spd).expand(batch, steps, n)  # time of day (fraction)
    x[..., 2] = torch.randint(0, 7, (batch, 1, 1), generator=g).float().expand(batch, steps, n)  # weekday
    y = torch.randn(batch, steps, n, 1, generator=g)
    return x.to(device), y.to(device)


def measure_step(n: int, batch: int = 2, d_model: int = 32, n_heads: int = 4, encoder_depth: int = 4,
                 decoder_depth: int = 2, pattern: str = "alternating", amp: str = "auto", steps: int = 3,
                 device: str = "auto") -> dict:
    """One process, one N: median seconds of a training step and the peak memory it needs."""
    from ..models.alternating import AlternatingEncoderDecoder
    from ..training.device import amp_dtype, peak_resident_mb, pick_device, reset_peak_resident, resident_mb

    dev = pick_device(device)
    dt = amp_dtype(amp, dev)
    model = AlternatingEncoderDecoder(n, 12, 12, 288, -1.5, d_model=d_model, n_heads=n_heads,
                                      encoder_depth=encoder_depth, decoder_depth=decoder_depth, pattern=pattern,
                                      dropout=0.0, use_denoising=False).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x, y = _inputs(batch, 12, n, 288, dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev) / 2**20
    else:
        base = resident_mb()
        if not reset_peak_resident():
            raise RuntimeError("cannot reset the peak-memory counter (/proc/self/clear_refs): CPU peak memory "
                               "would include the imports")
    times = []
    for _ in range(steps + 1):  # the first step is warm-up
        sync()
        t0 = time.perf_counter()
        with torch.autocast(dev.type, dtype=dt or torch.float32, enabled=dt is not None):
            loss = (model(x).float() - y).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()
        times.append(time.perf_counter() - t0)
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev) / 2**20 - base
    else:
        peak = peak_resident_mb() - base
    return {"N": n, "batch": batch, "d_model": d_model, "pattern": pattern, "device": str(dev),
            "dtype": str(dt or torch.float32).replace("torch.", ""), "step_s": float(np.median(times[1:])),
            "warmup_s": times[0], "peak_mb": float(peak), "params": sum(p.numel() for p in model.parameters())}


def measure(sizes=SIZES, timeout: float = 600, **kw) -> pd.DataFrame:
    """measure_step for every N, each in its own process; an N that fails (memory, time) is a row with its error."""
    rows = []
    for n in sizes:
        args = json.dumps({"n": int(n), **kw})
        code = f"import json; from stlib.studies.scale import measure_step; print(json.dumps(measure_step(**json.loads({args!r}))))"
        try:
            p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                               cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
        except subprocess.TimeoutExpired:
            rows.append({"N": n, "error": f"over {timeout:.0f} s"})
            continue
        if p.returncode != 0:
            last = (p.stderr.strip().splitlines() or ["no message"])[-1]
            rows.append({"N": n, "error": last[:200]})
            continue
        rows.append(json.loads(p.stdout.strip().splitlines()[-1]))
    return pd.DataFrame(rows)


def fit_growth(table: pd.DataFrame, column: str) -> float:
    """Exponent k of column = a * N^k (least squares on logs) over the rows that ran."""
    ok = table.dropna(subset=[column])
    ok = ok[ok[column] > 0]
    if len(ok) < 2:
        return float("nan")
    k, _ = np.polyfit(np.log(ok["N"].astype(float)), np.log(ok[column].astype(float)), 1)
    return float(k)


def _ticks_at(axis, values, fmt, min_share: float) -> None:
    """Log-axis ticks at the measured values only, labelled with fmt, skipping any closer to the last one kept
    than min_share of the axis' span (no overlapping labels); minor ticks off."""
    from matplotlib.ticker import FixedLocator, NullLocator

    lo, hi = axis.get_view_interval()
    min_gap = min_share * (np.log10(hi) - np.log10(lo)) if lo > 0 and hi > lo else 0.0
    kept = []
    for v in sorted({float(v) for v in values if v > 0}):
        if not kept or np.log10(v) - np.log10(kept[-1]) >= min_gap:
            kept.append(v)
    axis.set_major_locator(FixedLocator(kept))
    axis.set_ticklabels([fmt(v) for v in kept])
    axis.set_minor_locator(NullLocator())


def plot(table: pd.DataFrame, axes=None, *, device=None):
    """Step time and peak memory against N on log-log axes, ticks at the measured N, with the fitted exponents.

    device: named in the footer (else the table's `device` and `dtype` columns).
    """
    import matplotlib.pyplot as plt

    from ..reporting.figstyle import device_label, joined, legend_outside, stamp

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    ok = table.dropna(subset=["step_s"]) if "step_s" in table else table.iloc[:0]
    handles = []
    panels = ((axes[0], "step_s", "step time", "seconds per training step", lambda v: f"{v:.3g}"),
              (axes[1], "peak_mb", "peak memory", "peak memory (MiB)", lambda v: f"{v:,.0f}" if v >= 10 else f"{v:.2g}"))
    for i, (ax, col, what, ylabel, fmt) in enumerate(panels):
        k = fit_growth(ok, col)
        line, = ax.loglog(ok["N"], ok[col], "o-", color=f"C{i}", label=f"{what}, measured (N^{k:.2f})")
        handles.append(line)
        if len(ok):
            n0, v0 = float(ok["N"].iloc[0]), float(ok[col].iloc[0])
            grid = np.array([ok["N"].min(), ok["N"].max()], dtype=float)
            ref = [ax.loglog(grid, v0 * grid / n0, "k:", lw=1, label="linear in N")[0],
                   ax.loglog(grid, v0 * (grid / n0) ** 2, "r:", lw=1, label="quadratic in N")[0]]
            _ticks_at(ax.xaxis, ok["N"], lambda v: f"{v:,.0f}", 0.12)
            _ticks_at(ax.yaxis, ok[col], fmt, 0.07)
        ax.set(xlabel="sensors N (ticks at the measured N)", ylabel=ylabel,
               title=f"{what.capitalize()} grows as N^{k:.2f}")
    if len(ok):
        handles += ref
    legend_outside(axes[-1], handles)
    if device is None and "device" in ok and len(ok):
        dtype = f", {joined(ok['dtype'])}" if "dtype" in ok else ""
        device = f"{joined(device_label(d) for d in ok['device'])}{dtype}"
    batch = f"batch {joined(ok['batch'])}, " if "batch" in ok and len(ok) else ""
    stamp(axes[0].figure, f"random inputs ({batch}12 steps x N sensors)", device,
          "seconds per training step; MiB of peak memory")
    return axes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stlib.studies.scale", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
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
