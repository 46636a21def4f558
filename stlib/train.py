"""The training loop: one function, every roadmap knob a config field.

    python -m stlib.train --params params/default.yaml [--preset stid] [--set train.epochs=5 ...]

fit(config) trains on the train split, validates every `validate_every` epochs, keeps the best
validation weights, scores them on test and writes a run record (stlib.records).
"""

from __future__ import annotations

import argparse
import copy
import math
import resource
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm  # plain text bars: readable in terminals, papermill logs and notebooks alike

from . import records
from .config import ConfigError, RunConfig, load_profile
from .data import Dataset, from_config, make_batches
from .metrics import MetricSums, masked_huber, masked_mae
from .models import build_model, count_parameters
from .paths import output_dir, resolve_params

PHASES = ("data", "forward", "backward", "optimizer")


# ---------------------------------------------------------------------------------------------
# small pure helpers


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device: unknown device {name!r} (use auto, cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is 'cuda' but no CUDA device is available (use train.device=auto)")
    return dev


def amp_dtype(amp: str, device: torch.device):
    """The autocast dtype for train.amp, or None for full precision. 'auto' picks bf16 where supported."""
    if amp == "off":
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16":
        return torch.bfloat16
    if device.type == "cuda":  # auto
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    cpu_bf16 = getattr(torch.backends.mkldnn, "is_available", lambda: False)() and \
        getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    return torch.bfloat16 if device.type == "cpu" and cpu_bf16 else None


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Linear warmup: the lr multiplier for optimizer step `step` (0-based)."""
    return 1.0 if warmup_steps <= 0 else min(1.0, (step + 1) / warmup_steps)


def cosine_factor(step: int, total: int, floor: float) -> float:
    """Cosine decay from 1 to `floor` over `total` steps."""
    t = min(step / max(total, 1), 1.0)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))


class Plateau:
    """ReduceLROnPlateau semantics (mode min, relative threshold 1e-4), counted in validations."""

    def __init__(self, patience: int, factor: float, min_lr: float, threshold: float = 1e-4):
        self.patience, self.factor, self.min_lr, self.threshold = patience, factor, min_lr, threshold
        self.best, self.bad = math.inf, 0

    def step(self, metric: float, lr: float) -> float:
        """Record one validation metric; return the (possibly reduced) lr."""
        if metric < self.best * (1 - self.threshold):
            self.best, self.bad = metric, 0
        else:
            self.bad += 1
        if self.bad > self.patience:
            self.bad = 0
            return max(lr * self.factor, self.min_lr)
        return lr


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory: allocated on CUDA since the last reset, else the process's peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


# ---------------------------------------------------------------------------------------------
# the run


@dataclass
class Run:
    """A finished run: its config, record directory, history, metrics and best model."""

    config: RunConfig
    run_id: str
    dir: Path
    history: pd.DataFrame
    metrics: dict
    model: torch.nn.Module
    dataset: Dataset
    device: torch.device

    @classmethod
    def from_dir(cls, run_dir: Path, dataset: Dataset | None = None, device: str = "cpu") -> "Run":
        """A finished run read back from its record, with its best weights loaded."""
        from .config import build_run_config
        from .results import load_run

        rec = load_run(run_dir)
        cfg = build_run_config(rec["config"], str(run_dir / "config.yaml"))
        ds = dataset if dataset is not None else from_config(cfg.data)
        dev = torch.device(device)
        model = build_model(cfg.model, ds).to(dev)
        if (run_dir / "best.pt").exists():
            model.load_state_dict(torch.load(run_dir / "best.pt", map_location=dev)["model"])
        return cls(cfg, run_dir.name, run_dir, rec["history"], rec["metrics"], model, ds, dev)

    @torch.no_grad()
    def predict(self, split: str = "test", batch_size: int = 256):
        """(pred, true) numpy arrays (S, out, N) in original units for a split, best weights."""
        self.model.eval()
        preds, trues = [], []
        for x, y in make_batches(self.dataset, split, batch_size, self.device):
            preds.append(self.dataset.denormalize(self.model(x).float())[..., 0].cpu())
            trues.append(y[..., 0].cpu())
        return torch.cat(preds).numpy(), torch.cat(trues).numpy()


class Timer:
    """Accumulates wall time per phase; synchronises the device first so GPU work is counted."""

    def __init__(self, device: torch.device, enabled: bool = True):
        self.sync = torch.cuda.synchronize if device.type == "cuda" and enabled else (lambda: None)
        self.totals = dict.fromkeys(PHASES, 0.0)
        self.t = time.perf_counter()

    def lap(self, phase: str) -> None:
        self.sync()
        now = time.perf_counter()
        self.totals[phase] += now - self.t
        self.t = now


def compute_loss(out, y: torch.Tensor, mean: float, std: float, tc, denoise_weight: float = 0.0) -> torch.Tensor:
    """Training loss on z-scored values, masking missing (zero) targets, plus any auxiliary loss.

    out: the model's (B, out, N, 1) z-scored forecast, or (forecast, auxiliary loss) when denoising.
    """
    pred, aux = out if isinstance(out, tuple) else (out, None)
    mask = (y != 0).to(torch.float32)  # missing targets carry no loss
    y_z = (y - mean) / std
    if tc.loss == "huber":
        loss = masked_huber(pred.float(), y_z, delta=tc.huber_delta, mask=mask)
    else:
        loss = masked_mae(pred.float(), y_z, mask=mask)
    return loss if aux is None else loss + denoise_weight * aux.float()


@torch.no_grad()
def evaluate(model, batches, ds: Dataset, autocast) -> dict:
    """Masked metrics of a model over a batch iterable, in original units."""
    model.eval()
    sums = MetricSums(ds.out_steps)
    for x, y in batches:
        with autocast:
            pred = model(x)
        sums.update(ds.denormalize(pred.float()), y)
    return sums.result()


def fit(cfg: RunConfig, dataset: Dataset | None = None, out_root: Path | None = None) -> Run:
    """Train, keep the best-validation weights, score them on test, write the run record."""
    tc = cfg.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    device = pick_device(tc.device)
    seed_everything(tc.seed)
    ds = dataset if dataset is not None else from_config(cfg.data)
    model = build_model(cfg.model, ds).to(device)
    trainable = count_parameters(model) > 0
    dtype = amp_dtype(tc.amp, device)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    step_model = torch.compile(model, mode=None if tc.compile == "default" else tc.compile) \
        if tc.compile != "off" and trainable else model

    out_root = out_root or output_dir()
    label = f"{cfg.model.name}-s{tc.seed}" + (f"-{cfg.name}" if cfg.name else "")
    run_id, run_dir = records.new_run_dir(cfg.stage, label, out_root)
    records.write_config(run_dir / "config.yaml", cfg.to_dict())
    records.write_json(run_dir / "env.json", records.environment(device))

    batch_kw = dict(device=device, loader=tc.loader, num_workers=tc.num_workers, pin_memory=tc.pin_memory,
                    prefetch_factor=tc.prefetch_factor)
    train_batches = make_batches(ds, "train", tc.batch_size, shuffle=True, seed=tc.seed, **batch_kw)
    val_batches = make_batches(ds, "val", tc.eval_batch_size, **batch_kw)
    optimizer = torch.optim.Adam(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay) if trainable else None
    plateau = Plateau(tc.patience, tc.factor, tc.min_lr)
    n_batches = len(train_batches)
    steps_per_epoch = math.ceil(n_batches / tc.accumulation_steps)
    total_steps = steps_per_epoch * tc.epochs
    mean, std = ds.mean, ds.std

    history, best, best_state, best_epoch, stale = [], math.inf, None, 0, 0
    base_lr, opt_step = tc.lr, 0
    epochs = tc.epochs if trainable else 0
    bar = tqdm(range(1, epochs + 1), desc=f"{cfg.model.name} s{tc.seed}", unit="epoch", disable=tc.quiet,
               dynamic_ncols=True)
    train_start = time.perf_counter()
    for epoch in bar:
        # ---- train one epoch ------------------------------------------------------------------
        if tc.scheduler == "multistep":
            base_lr = tc.lr * tc.gamma ** sum(m <= epoch - 1 for m in tc.milestones)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        step_model.train()
        timer = Timer(device, tc.time_phases)
        loss_sum, loss_n, skipped, samples = 0.0, 0, 0, 0
        epoch_start = time.perf_counter()
        batches = train_batches.epoch(epoch - 1)
        for i, (x, y) in enumerate(batches):  # x (B, in, N, 3), y (B, out, N, 1) original units
            if tc.noise_std > 0:  # Gaussian input augmentation on the z-scored value channel
                x = torch.cat([x[..., :1] + torch.randn_like(x[..., :1]) * tc.noise_std, x[..., 1:]], dim=-1)
            timer.lap("data")
            with autocast:
                loss = compute_loss(step_model(x), y, mean, std, tc, cfg.model.denoise_weight)
            loss_value = loss.item()  # one sync per step, shared by the check and the running mean
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"non-finite loss ({loss_value}) at epoch {epoch}, step {i}: "
                                         "lower train.lr or check the data")
            timer.lap("forward")
            group = min(tc.accumulation_steps, n_batches - i // tc.accumulation_steps * tc.accumulation_steps)
            scaler.scale(loss / group).backward()  # mean over the micro-batches of this optimizer step
            timer.lap("backward")
            loss_sum += loss_value * len(x)
            loss_n += len(x)
            samples += len(x)
            if (i + 1) % tc.accumulation_steps == 0 or i + 1 == n_batches:
                lr = base_lr * warmup_factor(opt_step, tc.warmup_steps)
                if tc.scheduler == "cosine":
                    lr *= cosine_factor(opt_step, total_steps, tc.min_lr / tc.lr)
                for g in optimizer.param_groups:
                    g["lr"] = lr
                if tc.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
                scale_before = scaler.get_scale() if scaler.is_enabled() else None
                scaler.step(optimizer)
                scaler.update()
                if scale_before is not None and scaler.get_scale() < scale_before:
                    skipped += 1  # fp16 overflow: GradScaler skipped this step
                optimizer.zero_grad(set_to_none=True)
                opt_step += 1
                timer.lap("optimizer")
        train_seconds = time.perf_counter() - epoch_start

        # ---- validate -----------------------------------------------------------------------
        val_mae, val_seconds = float("nan"), 0.0
        if epoch % tc.validate_every == 0 or epoch == epochs:
            t0 = time.perf_counter()
            val_mae = evaluate(step_model, val_batches, ds, autocast)["mae"]
            val_seconds = time.perf_counter() - t0
            # early stopping counts validations without a meaningful gain (relative 1e-4, as the plateau rule)
            stale = 0 if val_mae < best * (1 - 1e-4) else stale + 1
            if val_mae < best:
                best, best_epoch = val_mae, epoch
                best_state = copy.deepcopy(model.state_dict())
                if tc.save_checkpoint:
                    records.save_torch(run_dir / "best.pt", {"model": best_state, "epoch": epoch, "val_mae": val_mae})
            if tc.scheduler == "plateau":
                base_lr = plateau.step(val_mae, base_lr)
        row = {"epoch": epoch, "train_loss": loss_sum / max(loss_n, 1), "val_mae": val_mae,
               "lr": optimizer.param_groups[0]["lr"], "seconds": train_seconds + val_seconds,
               "train_seconds": train_seconds, **{f"{k}_s": v for k, v in timer.totals.items()},
               "validation_s": val_seconds, "samples_per_s": samples / max(train_seconds, 1e-9),
               "peak_mem_mb": peak_memory_mb(device), "skipped_steps": skipped}
        history.append(row)
        records.write_csv(run_dir / "history.csv", pd.DataFrame(history))
        bar.set_postfix(loss=f"{row['train_loss']:.4f}", val_mae=f"{val_mae:.3f}", best=f"{best:.3f}")
        if tc.early_stop_patience and stale >= tc.early_stop_patience:
            tqdm.write(f"early stop at epoch {epoch}: no validation improvement in {stale} validations")
            break
    train_total = time.perf_counter() - train_start

    # ---- test with the best-validation weights ---------------------------------------------------
    if best_state is not None:
        model.load_state_dict(best_state)
    elif tc.save_checkpoint:
        records.save_torch(run_dir / "best.pt", {"model": model.state_dict(), "epoch": 0, "val_mae": None})
    make = lambda split: make_batches(ds, split, tc.eval_batch_size, **batch_kw)  # noqa: E731
    val_metrics = evaluate(model, make("val"), ds, autocast)
    test_metrics = evaluate(model, make("test"), ds, autocast)
    hist = pd.DataFrame(history)
    if hist.empty:
        records.write_csv(run_dir / "history.csv", pd.DataFrame(columns=["epoch", "train_loss", "val_mae"]))
    metrics = {
        "test": test_metrics, "val": val_metrics, "best_epoch": best_epoch, "epochs_run": len(history),
        "train_seconds": train_total,
        "seconds_per_epoch": float(hist["train_seconds"].median()) if len(hist) else 0.0,
        "params": count_parameters(model), "model": cfg.model.name, "dataset": ds.name, "seed": tc.seed,
        "device": str(device), "amp": str(dtype).replace("torch.", "") if dtype else "off",
        "skipped_steps": int(hist["skipped_steps"].sum()) if len(hist) else 0,
    }
    records.write_json(run_dir / "metrics.json", metrics)
    h = test_metrics["by_horizon"]
    records.append_ledger({
        "run_id": run_id, "stage": cfg.stage, "name": cfg.name, "profile": cfg.profile, "model": cfg.model.name,
        "dataset": ds.name, "seed": tc.seed, "params": metrics["params"], "best_epoch": best_epoch,
        "epochs_run": len(history), "train_seconds": round(train_total, 2),
        "seconds_per_epoch": round(metrics["seconds_per_epoch"], 3), "val_mae": round(val_metrics["mae"], 4),
        "test_mae": round(test_metrics["mae"], 4), "test_rmse": round(test_metrics["rmse"], 4),
        "test_mape": round(test_metrics["mape"], 4), "mae_h3": round(h["3"]["mae"], 4),
        "mae_h6": round(h["6"]["mae"], 4), "mae_h12": round(h["12"]["mae"], 4), "device": str(device),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "run_dir": str(run_dir),
    }, out_root)
    return Run(cfg, run_id, run_dir, hist, metrics, model, ds, device)


# ---------------------------------------------------------------------------------------------
# command line


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stlib.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params/default.yaml", help="params profile (YAML)")
    ap.add_argument("--preset", help="a named preset of the params file (e.g. stid)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="dotted override, e.g. --set model.name=stid --set train.epochs=5")
    ap.add_argument("--stage", help="record under outputs/runs/<stage>/ (default: the params' stage)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    try:
        profile = load_profile(resolve_params(args.params))
        cfg = profile.run_config(preset=args.preset, overrides=args.overrides, stage=args.stage)
        if args.quiet:
            cfg.train.quiet = True
        run = fit(cfg)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t = run.metrics["test"]
    print(f"test MAE {t['mae']:.3f}  RMSE {t['rmse']:.3f}  MAPE {t['mape']:.2f}%  "
          f"(best epoch {run.metrics['best_epoch']}, {run.metrics['train_seconds']:.0f} s)")
    print(run.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
