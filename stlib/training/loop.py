"""The training loop, top to bottom: set up, train one epoch (train_step per batch), validate, test.

    run = fit(cfg)                                     # what `python -m stlib.train --params ...` runs
    run = fit(resume="outputs/runs/<stage>/<run-id>")  # continue a stopped run to the same numbers

The speed craft is in plain sight: autocast chosen once from train.amp, a GradScaler only for fp16,
gradient accumulation by dividing the loss, clipping after unscale_, torch.compile behind train.compile,
the learning rate from one pure function (schedule.learning_rate). Beside it: checkpoint (last.pt, exact
resume), distributed (torchrun), scoring (loss, metrics), progress and timing.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from ..reporting import records
from ..config import ConfigError, RunConfig
from ..data import Dataset, from_config, make_batches
from ..models import build_model, count_parameters
from .checkpoint import CHECKPOINT_EVERY, LastCheckpoint, Progress, open_run_dir, resume_config, rng_neutral
from .device import amp_dtype, compile_model, peak_memory_mb, pick_device, seed_everything
from .distributed import Dist, any_rank, end_distributed, setup_distributed, shard, sum_over_ranks, wrap_model
from .progress import TensorBoardLog, TrainProgress, pick_mode, require_tensorboard, run_label
from .run import Run, write_results
from .schedule import Plateau, learning_rate
from .scoring import compute_loss, ema_model, ema_warmup_decay, ema_warmup_updates, evaluate
from .timing import Budget, Timer


def fit(cfg: RunConfig | None = None, dataset: Dataset | None = None, out_root: Path | None = None, *,
        resume: str | Path | None = None, checkpoint_every: int | None = None, progress: str = "auto") -> Run:
    """Train, keep the best-validation weights, score them on test, write the run record (stlib.reporting.records).

    resume: a run directory to continue from its last.pt (cfg may then be None: the saved config is used).
    checkpoint_every: optimizer steps between mid-epoch checkpoints (default CHECKPOINT_EVERY; 0 = epoch ends).
    progress: auto (a bar on a terminal, else one line per epoch at most), bar, lines or off (train.quiet: off).
    """
    if resume is not None:
        cfg = resume_config(resume, cfg)
    elif cfg is None:
        raise TypeError("fit() needs a config (or resume=RUN_DIR)")
    every = CHECKPOINT_EVERY if checkpoint_every is None else checkpoint_every
    if every < 0:
        raise ConfigError(f"checkpoint_every must be >= 0 (0 = at epoch ends only), got {every}")
    pick_mode(progress, cfg.train.quiet)  # a bad value fails here, before anything is written
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    dist, device = setup_distributed(pick_device(cfg.train.device))
    with ExitStack() as held:  # the process group and the run directory's lock, released however fit ends
        held.callback(end_distributed, dist)
        return _fit(cfg, dataset, out_root, resume, every, dist, device, held, progress)


def _fit(cfg: RunConfig, dataset, out_root, resume, every: int, dist: Dist, device: torch.device,
         held: ExitStack, progress: str) -> Run:
    """fit() once the config, the device and the process group are settled.

    The DDP wrapper holds the process group: it goes with this function's locals, before fit() ends the
    group (a gloo group freed after its end can hang the process at exit).
    """
    t = setup(cfg, dataset, dist, device)
    # from here on the run has a record
    t.run_dir, t.out_root = open_run_dir(cfg, resume, out_root, dist, device, held)
    keep_last = cfg.train.save_checkpoint and t.optimizer is not None
    t.last = LastCheckpoint(t.run_dir / "last.pt" if keep_last else None, every, cfg, t.model, t.optimizer,
                            t.scaler, t.plateau, t.ema, dist, device)
    if resume is not None and (restored := t.last.restore(t.run_dir)):
        t.p, t.best_state = restored
        if dist.main and t.p.history:  # the history as of the checkpoint (a later epoch's row is redone)
            records.write_csv(t.run_dir / "history.csv", pd.DataFrame(t.p.history))
    t.show = TrainProgress(pick_mode(progress, cfg.train.quiet, dist.main), run_label(cfg), t.epochs,
                           len(t.train_batches))
    t.tb = TensorBoardLog(t.run_dir if cfg.train.tensorboard and dist.main else None, cfg.to_dict())
    held.callback(t.show.close)
    held.callback(t.tb.close)
    t.clock = Budget(cfg.train.time_budget_s, t.p.elapsed_s)
    for epoch in range(t.p.epoch, t.epochs + 1) if not t.p.done else []:
        if not train_and_validate(t, epoch):
            break
    return test(t)


@dataclass
class Training:
    """One run's training: what setup() builds before the run has a record (bad inputs leave no trace),
    then the record and the loop's state, which fit() adds."""

    cfg: RunConfig
    dist: Dist
    device: torch.device
    ds: Dataset
    model: torch.nn.Module  # the weights: checkpointed and tested
    step_model: torch.nn.Module  # what a training step runs: compiled and, under torchrun, DDP
    eval_model: torch.nn.Module  # what validation runs: compiled, or the weight average (train.ema)
    ema: torch.nn.Module | None
    optimizer: torch.optim.Optimizer | None  # None: a baseline with nothing to train
    scaler: torch.amp.GradScaler  # enabled for fp16 only
    plateau: Plateau
    dtype: torch.dtype | None  # the autocast dtype; None: full precision
    graphs: bool  # compile reduce-overhead replays CUDA graphs: each step is marked
    train_batches: object  # global batches x (B, in, N, 3), y (B, out, N, 1) in original units
    val_batches: object
    batch_kw: dict
    epochs: int  # 0 for a baseline
    # the record and the loop's state
    run_dir: Path | None = None
    out_root: Path | None = None
    last: LastCheckpoint | None = None
    p: Progress | None = None
    best_state: dict | None = None  # the best validation's weights
    show: TrainProgress | None = None
    tb: TensorBoardLog | None = None
    clock: Budget | None = None

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.dtype) if self.dtype is not None else nullcontext()


def setup(cfg: RunConfig, dataset: Dataset | None, dist: Dist, device: torch.device) -> Training:
    """Data, model, optimizer and batches; every bad input fails here."""
    tc = cfg.train
    if dist.world > 1 and tc.time_budget_s and tc.scheduler == "cosine":
        raise ConfigError("train.time_budget_s with train.scheduler cosine follows each process's own clock, so "
                          "under torchrun the ranks' learning rates would drift apart: use another scheduler, "
                          "or the budget in one process")
    if dist.world > 1 and tc.stem_epochs:
        raise ConfigError("train.stem_epochs leaves the attention blocks without gradients in its first epochs, which "
                          "DistributedDataParallel does not allow: train in one process, or set train.stem_epochs=0")
    if tc.tensorboard:
        require_tensorboard()  # missing package: a clear error before the run has a record
    seed_everything(tc.seed)
    ds = dataset if dataset is not None else from_config(cfg.data)
    model = build_model(cfg.model, ds).to(device)
    if dist.rank:  # the same initial weights on every rank, then each rank its own dropout / noise draws
        seed_everything(tc.seed + dist.rank)
    trainable = count_parameters(model) > 0
    fast = compile_model(model, tc.compile) if trainable else model
    batch_kw = dict(device=device, loader=tc.loader, num_workers=tc.num_workers, pin_memory=tc.pin_memory,
                    prefetch_factor=tc.prefetch_factor)
    train_batches = make_batches(ds, "train", tc.batch_size, shuffle=True, seed=tc.seed, drop_last=tc.drop_last,
                                 **batch_kw)
    if trainable and tc.drop_last and len(train_batches) == 0:
        raise ConfigError(f"train.drop_last with train.batch_size {tc.batch_size} leaves no batch of the "
                          f"{len(ds.splits['train'])} training windows: lower the batch size or set train.drop_last=false")
    ema = ema_model(model, tc.ema) if tc.ema and trainable else None
    updates, needed = len(train_batches) * tc.epochs, ema_warmup_updates(tc.ema)
    if ema is not None and updates < needed:
        warnings.warn(f"train.ema={tc.ema} is reached only after {needed:,} updates and this run "
                      f"makes {updates:,} ({tc.epochs} epochs of {len(train_batches)} batches): its average follows the "
                      f"warm-up decay (1 + n) / (10 + n) throughout, so any train.ema above "
                      f"{ema_warmup_decay(updates):.5f} trains the same run", stacklevel=2)
    dtype = amp_dtype(tc.amp, device)
    return Training(
        cfg, dist, device, ds, model, step_model=wrap_model(fast, dist, device) if trainable else fast,
        eval_model=ema.module if ema is not None else fast, ema=ema,
        optimizer=torch.optim.Adam(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay) if trainable else None,
        scaler=torch.amp.GradScaler(device.type, enabled=dtype == torch.float16),
        plateau=Plateau(tc.patience, tc.factor, tc.min_lr), dtype=dtype,
        graphs=tc.compile == "reduce-overhead" and trainable, train_batches=train_batches,
        val_batches=make_batches(ds, "val", tc.eval_batch_size, **batch_kw), batch_kw=batch_kw,
        epochs=tc.epochs if trainable else 0, p=Progress(base_lr=tc.lr))


def train_and_validate(t: Training, epoch: int) -> bool:
    """One epoch, its validation when due, its history row and checkpoint; False when training ends early."""
    tc, p = t.cfg.train, t.p
    set_stem_phase(t, epoch)
    timer, train_seconds = train_epoch(t, epoch)
    out_of_time = any_rank(t.clock.over(), t.dist, t.device) if tc.time_budget_s else False
    val_mae, val_seconds = float("nan"), 0.0
    if epoch % tc.validate_every == 0 or epoch == t.epochs or out_of_time:  # the last epoch is always validated
        val_mae, val_seconds = validate(t, epoch)
    row = {"epoch": epoch, "train_loss": p.loss_sum / max(p.loss_n, 1), "val_mae": val_mae,
           "lr": t.optimizer.param_groups[0]["lr"], "seconds": train_seconds + val_seconds,
           "train_seconds": train_seconds, **{f"{k}_s": v for k, v in timer.totals.items()},
           "validation_s": val_seconds, "samples_per_s": p.samples / max(train_seconds, 1e-9),
           "peak_mem_mb": peak_memory_mb(t.device), "skipped_steps": p.skipped}
    early_stop = bool(tc.early_stop_patience and p.stale >= tc.early_stop_patience)
    p.end_epoch(row, "early stop" if early_stop else "time budget" if out_of_time else
                "epochs" if epoch == t.epochs else "", t.clock.spent())
    if t.dist.main:
        records.write_csv(t.run_dir / "history.csv", pd.DataFrame(p.history))
    t.last.save(p, t.best_state, f"end of epoch {epoch}")
    t.show.end_epoch(row, p.best, p.best_epoch, last=p.done, budget_left=t.clock.left())
    t.tb.epoch(row)
    if early_stop or out_of_time:
        t.show.write(f"{t.show.label}: early stop at epoch {epoch}: no validation improvement in {p.stale} "
                     "validations" if early_stop else
                     f"{t.show.label}: time budget ({tc.time_budget_s:.0f} s) spent at epoch {epoch} of {t.epochs}")
    return not (early_stop or out_of_time)


def set_stem_phase(t: Training, epoch: int) -> None:
    """train.stem_epochs: STID's path alone through that epoch (as trained, so validated), the whole model after."""
    if t.cfg.train.stem_epochs:
        stem_only = epoch <= t.cfg.train.stem_epochs
        for model in (t.model, t.ema.module if t.ema is not None else None):
            if model is not None:
                model.stem_only = stem_only


def train_epoch(t: Training, epoch: int) -> tuple[Timer, float]:
    """One epoch of optimizer steps (or its rest, when resumed mid-way); (phase timer, seconds)."""
    p, n_batches = t.p, len(t.train_batches)
    if t.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(t.device)
    t.step_model.train()
    timer = Timer(t.device, t.cfg.train.time_phases, p.phase_s)
    epoch_start = time.perf_counter() - p.epoch_s  # a resumed epoch keeps its time so far
    t.show.start_epoch(epoch, p.batch)
    for i, (x, y) in enumerate(rng_neutral(t.train_batches.epoch(epoch - 1, skip=p.batch)), start=p.batch):
        loss_value, lr = train_step(t, x, y, i, epoch, timer)
        t.show.step(p.loss_sum / p.loss_n)
        if lr is None:
            continue
        t.tb.step(p.opt_step, loss_value, lr)
        timer.lap("optimizer")
        if t.last.due(p.opt_step) and i + 1 < n_batches:  # mid-epoch checkpoint
            p.batch, p.epoch_s, p.elapsed_s = i + 1, time.perf_counter() - epoch_start, t.clock.spent()
            t.last.save(p, t.best_state, f"epoch {epoch}, after batch {i + 1}")
            timer.restart()
    train_seconds = time.perf_counter() - epoch_start
    p.loss_sum, p.loss_n = sum_over_ranks(p.loss_sum, p.loss_n, t.dist, t.device)  # every rank's part of the epoch
    return timer, train_seconds


def train_step(t: Training, x: torch.Tensor, y: torch.Tensor, i: int, epoch: int,
               timer: Timer) -> tuple[float, float | None]:
    """Batch i of an epoch: forward, loss and backward of this rank's slice and, when the batch closes an
    accumulation group, the optimizer step. (loss, the step's learning rate or None when it only accumulated).

    x (B, in, N, 3), y (B, out, N, 1) original units: the global batch. The running loss, the samples seen and the
    optimizer steps taken go into t.p.
    """
    tc, p, dist, optimizer, scaler = t.cfg.train, t.p, t.dist, t.optimizer, t.scaler
    n_batches, steps_per_epoch = len(t.train_batches), math.ceil(len(t.train_batches) / tc.accumulation_steps)
    n = len(x)
    x, y = shard(x, dist), shard(y, dist)  # (B / world, ...): this rank's slice
    if tc.noise_std > 0:  # Gaussian input augmentation on the z-scored value channel
        x = torch.cat([x[..., :1] + torch.randn_like(x[..., :1]) * tc.noise_std, x[..., 1:]], dim=-1)
    timer.lap("data")
    if t.graphs:  # a new step: the graphs' outputs of the last step may be overwritten now
        torch.compiler.cudagraph_mark_step_begin()
    with t.autocast():
        loss = compute_loss(t.step_model(x), y, t.ds.mean, t.ds.std, tc, t.cfg.model.denoise_weight)  # ()
    loss_value = loss.item()  # one sync per step, shared by the check and the running mean
    if not math.isfinite(loss_value):
        kept = f" Kept: {t.last.kept(t.run_dir)}" if t.last is not None else ""
        raise FloatingPointError(f"non-finite loss ({loss_value}) at epoch {epoch}, step {i} (batch {i + 1} of "
                                 f"{n_batches}, optimizer step {p.opt_step}): lower train.lr or check the data.{kept}")
    timer.lap("forward")
    group = min(tc.accumulation_steps, n_batches - i // tc.accumulation_steps * tc.accumulation_steps)
    step_end = (i + 1) % tc.accumulation_steps == 0 or i + 1 == n_batches
    if dist.world > 1:
        t.step_model.require_backward_grad_sync = step_end  # all-reduce gradients once per optimizer step
        loss = loss * (len(x) * dist.world / n)  # weigh uneven slices so DDP's rank mean = the batch mean
    scaler.scale(loss / group).backward()  # mean over the micro-batches of this optimizer step
    timer.lap("backward")
    p.loss_sum, p.loss_n, p.samples = p.loss_sum + loss_value * len(x), p.loss_n + len(x), p.samples + n
    if not step_end:
        return loss_value, None
    lr = learning_rate(tc, p.opt_step, epoch, steps_per_epoch, p.base_lr, t.clock.fraction())
    for g in optimizer.param_groups:
        g["lr"] = lr
    if tc.grad_clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(t.model.parameters(), tc.grad_clip)
    scale_before = scaler.get_scale() if scaler.is_enabled() else None
    scaler.step(optimizer)
    scaler.update()
    if scale_before is not None and scaler.get_scale() < scale_before:
        p.skipped += 1  # fp16 overflow: GradScaler skipped this step (and lowered its scale)
    optimizer.zero_grad(set_to_none=True)
    if t.ema is not None:
        t.ema.update_parameters(t.model)
    p.opt_step += 1
    return loss_value, lr


def validate(t: Training, epoch: int) -> tuple[float, float]:
    """Validation MAE and seconds; then the early-stopping count, the best weights (best.pt), the plateau rule."""
    tc, p = t.cfg.train, t.p
    t.show.validating()
    start = time.perf_counter()
    val_mae = evaluate(t.eval_model, t.val_batches, t.ds, t.autocast(), t.dist, t.device,
                       mark_steps=t.graphs and t.ema is None)["mae"]
    seconds = time.perf_counter() - start
    p.stale = 0 if val_mae < p.best * (1 - 1e-4) else p.stale + 1  # a meaningful gain: as the plateau rule's
    if val_mae < p.best:
        p.best, p.best_epoch = val_mae, epoch
        t.best_state = copy.deepcopy((t.ema.module if t.ema is not None else t.model).state_dict())
        if tc.save_checkpoint and t.dist.main:
            records.save_torch(t.run_dir / "best.pt", {"model": t.best_state, "epoch": epoch, "val_mae": val_mae})
    if tc.scheduler == "plateau":
        p.base_lr = t.plateau.step(val_mae, p.base_lr)
    return val_mae, seconds


def test(t: Training) -> Run:
    """Score the best-validation weights on val and test; write metrics.json and the ledger row."""
    cfg, dist, device, model, p = t.cfg, t.dist, t.device, t.model, t.p
    train_seconds = t.clock.spent()
    if t.best_state is not None:
        model.load_state_dict(t.best_state)
    elif cfg.train.save_checkpoint and dist.main:
        records.save_torch(t.run_dir / "best.pt", {"model": model.state_dict(), "epoch": 0, "val_mae": None})
    batches = lambda split: make_batches(t.ds, split, cfg.train.eval_batch_size, **t.batch_kw)  # noqa: E731
    val_metrics = evaluate(model, batches("val"), t.ds, t.autocast(), dist, device)
    test_metrics = evaluate(model, batches("test"), t.ds, t.autocast(), dist, device)
    hist = pd.DataFrame(p.history)
    metrics = {
        "test": test_metrics, "val": val_metrics, "best_epoch": p.best_epoch, "epochs_run": len(p.history),
        "train_seconds": train_seconds,
        "seconds_per_epoch": float(hist["train_seconds"].median()) if len(hist) else 0.0,
        "params": count_parameters(model), "model": cfg.model.name, "dataset": t.ds.name, "seed": cfg.train.seed,
        "device": str(device), "amp": str(t.dtype).replace("torch.", "") if t.dtype else "off",
        "skipped_steps": int(hist["skipped_steps"].sum()) if len(hist) else 0,
        "stopped_by": p.stopped_by or "epochs",
        **({"world_size": dist.world} if dist.world > 1 else {}),
    }
    t.tb.final(metrics, len(hist))
    if dist.main:
        write_results(cfg, t.run_dir, t.out_root, hist, metrics, device)
    return Run(cfg, t.run_dir.name, t.run_dir, hist, metrics, model, t.ds, device)
