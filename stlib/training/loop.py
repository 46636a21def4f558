"""The training loop, top to bottom: set up, train one epoch (train_step per batch), validate, test.

Setup is what setup() builds once (every bad input fails there); State is what the loop changes as it goes. No host
sync in a step: the running loss stays on the device until the display or a checkpoint reads it.
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

from ..config import ConfigError, RunConfig
from ..data import Dataset, from_config, make_batches
from ..models import build_model, count_parameters
from ..reporting import records
from .checkpoint import LastCheckpoint, Progress, Run, open_run_dir, resume_config, rng_neutral, write_results
from .device import amp_dtype, compile_model, peak_memory_mb, pick_device, seed_everything
from .distributed import Dist, any_rank, end_distributed, rank_slice, setup_distributed, sum_over_ranks, wrap_model
from .interrupt import Interrupted, StopRequest
from .progress import RunningLoss, TensorBoardLog, TrainProgress, pick_mode, require_tensorboard
from .schedule import Plateau, accumulation, learning_rate
from .scoring import compute_loss, ema_model, ema_warmup_decay, ema_warmup_updates, evaluate
from .timing import Budget, Timer


def fit(
    cfg: RunConfig | None = None,
    dataset: Dataset | None = None,
    out_root: Path | None = None,
    *,
    resume: str | Path | None = None,
    checkpoint_every: int | None = None,
    progress: str = "auto",
) -> Run:
    """Train, keep the best-validation weights, score them on test, write the run record.

    resume: a run directory to continue from its last.pt (cfg may then be None: the saved config is used).
    checkpoint_every: optimizer steps between mid-epoch checkpoints (default CHECKPOINT_EVERY; 0 = epoch ends).
    progress: auto (a bar on a terminal, else epoch lines), bar, lines or off (train.quiet: off).
    """
    if resume is not None:
        cfg = resume_config(resume, cfg)
    elif cfg is None:
        raise TypeError("fit() needs a config (or resume=RUN_DIR)")
    if (checkpoint_every or 0) < 0:
        raise ConfigError(f"checkpoint_every must be >= 0 (0 = at epoch ends only), got {checkpoint_every}")
    pick_mode(progress, cfg.train.quiet)  # a bad value fails here, before anything is written
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    dist, device = setup_distributed(pick_device(cfg.train.device))
    with ExitStack() as held:  # the process group and the run directory's lock, released however fit ends
        held.callback(end_distributed, dist)
        return _fit(setup(cfg, dataset, dist, device), resume, out_root, checkpoint_every, held, progress)


def _fit(s: Setup, resume, out_root, every: int | None, held: ExitStack, progress: str) -> Run:
    """fit() once set up: the DDP wrapper, which holds the process group, goes with these locals before fit() ends
    the group (a gloo group freed after its end can hang the process at exit)."""
    st = start(s, resume, out_root, every, held, progress)  # from here on the run has a record
    st.stop = held.enter_context(StopRequest(enabled=s.dist.world == 1))  # Ctrl-C / SIGTERM: stop after a step
    for epoch in range(st.p.epoch, s.epochs + 1) if not st.p.done else []:
        if not train_and_validate(s, st, epoch):
            break
    return test(s, st)


@dataclass(frozen=True)
class Setup:
    """What a run trains with, built by setup() before the run has a record (bad inputs leave no trace)."""

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
    timed: bool  # train.time_phases: synchronise the GPU at each phase of a step
    train_batches: object  # global batches x (B, in, N, 3), y (B, out, N, 1) in original units
    val_batches: object
    batch_kw: dict
    epochs: int  # 0 for a baseline
    steps_per_epoch: int

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.dtype) if self.dtype is not None else nullcontext()


@dataclass
class State:
    """What the loop changes as it runs, and the run's record it writes to."""

    p: Progress  # where the loop stands: what last.pt saves
    best_state: dict | None  # the best validation's weights
    run_dir: Path
    out_root: Path
    last: LastCheckpoint
    show: TrainProgress
    tb: TensorBoardLog
    clock: Budget
    loss: RunningLoss  # the epoch's loss sum, on the device
    stop: StopRequest | None = None  # the signal that asked the loop to stop


def setup(cfg: RunConfig, dataset: Dataset | None, dist: Dist, device: torch.device) -> Setup:
    """Data, model, optimizer and batches; every bad input fails here."""
    tc = cfg.train
    if dist.world > 1 and tc.time_budget_s and tc.scheduler == "cosine":
        raise ConfigError(
            "train.time_budget_s with train.scheduler cosine follows each process's own clock, so under torchrun the "
            "ranks' learning rates would drift apart: use another scheduler, or the budget in one process"
        )
    if tc.tensorboard:
        require_tensorboard()  # missing package: a clear error before the run has a record
    seed_everything(tc.seed)
    ds = dataset if dataset is not None else from_config(cfg.data)
    model = build_model(cfg.model, ds).to(device)
    if dist.world > 1 and getattr(model, "stem_epochs", 0):
        raise ConfigError(
            "model.stem_epochs leaves the attention blocks without gradients in its first epochs, which "
            "DistributedDataParallel does not allow: train in one process, or set model.stem_epochs=0"
        )
    if dist.rank:  # the same initial weights on every rank, then each rank its own dropout / noise draws
        seed_everything(tc.seed + dist.rank)
    trainable = count_parameters(model) > 0
    fast = compile_model(model, tc.compile) if trainable else model
    batch_kw = {k: getattr(tc, k) for k in ("loader", "num_workers", "pin_memory", "prefetch_factor")}
    batch_kw["device"] = device
    train = make_batches(ds, "train", tc.batch_size, shuffle=True, seed=tc.seed, drop_last=tc.drop_last, **batch_kw)
    if trainable and tc.drop_last and len(train) == 0:
        raise ConfigError(
            f"train.drop_last with train.batch_size {tc.batch_size} leaves no batch of the "
            f"{len(ds.splits['train'])} training windows: lower the batch size or set train.drop_last=false"
        )
    ema = ema_model(model, tc.ema) if tc.ema and trainable else None
    updates, needed = len(train) * tc.epochs, ema_warmup_updates(tc.ema)
    if ema is not None and updates < needed:
        warnings.warn(
            f"train.ema={tc.ema} is reached only after {needed:,} updates and this run makes {updates:,} ({tc.epochs} "
            f"epochs of {len(train)} batches): its average follows the warm-up decay (1 + n) / (10 + n) throughout, "
            f"so any train.ema above {ema_warmup_decay(updates):.5f} trains the same run",
            stacklevel=2,
        )
    dtype = amp_dtype(tc.amp, device)
    return Setup(
        cfg,
        dist,
        device,
        ds,
        model,
        step_model=wrap_model(fast, dist, device) if trainable else fast,
        eval_model=ema.module if ema is not None else fast,
        ema=ema,
        optimizer=torch.optim.Adam(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay) if trainable else None,
        scaler=torch.amp.GradScaler(device.type, enabled=dtype == torch.float16),
        plateau=Plateau(tc.patience, tc.factor, tc.min_lr),
        dtype=dtype,
        graphs=tc.compile == "reduce-overhead" and trainable,
        timed=tc.time_phases if isinstance(tc.time_phases, bool) else device.type != "cuda",
        train_batches=train,
        val_batches=make_batches(ds, "val", tc.eval_batch_size, **batch_kw),
        batch_kw=batch_kw,
        epochs=tc.epochs if trainable else 0,
        steps_per_epoch=math.ceil(len(train) / tc.accumulation_steps),
    )


def start(s: Setup, resume, out_root, every: int | None, held: ExitStack, progress: str) -> State:
    """The run's record (a new one, or the resumed one with its last.pt restored) and the loop's state."""
    cfg, dist = s.cfg, s.dist
    run_dir, out_root = open_run_dir(cfg, resume, out_root, dist, s.device, held, s.ds)
    last = LastCheckpoint(run_dir / "last.pt" if cfg.train.save_checkpoint and s.optimizer else None, every, s)
    p, best_state = Progress(base_lr=cfg.train.lr), None
    if resume is not None and (restored := last.restore(run_dir)):
        p, best_state = restored
        if dist.main and p.history:  # the history as of the checkpoint (a later epoch's row is redone)
            records.write_csv(run_dir / "history.csv", pd.DataFrame(p.history))
    label = f"{cfg.name or cfg.model.name} s{cfg.train.seed}"  # e.g. '+scheduler s1'
    show = TrainProgress(pick_mode(progress, cfg.train.quiet, dist.main), label, s.epochs, len(s.train_batches))
    tb = TensorBoardLog(run_dir if cfg.train.tensorboard and dist.main else None, cfg.to_dict())
    held.callback(show.close)
    held.callback(tb.close)
    clock = Budget(cfg.train.time_budget_s, p.elapsed_s)
    return State(p, best_state, run_dir, out_root, last, show, tb, clock, RunningLoss(s.device))


def train_and_validate(s: Setup, st: State, epoch: int) -> bool:
    """One epoch, its validation when due, its history row and checkpoint; False when training ends early."""
    tc, p = s.cfg.train, st.p
    val_maes = [r["val_mae"] for r in p.history if not math.isnan(r["val_mae"])]
    for m in (s.model, s.ema.module if s.ema is not None else None):  # e.g. STID's path alone in the first epochs
        if (hook := getattr(m, "start_epoch", None)) is not None:
            hook(epoch, val_maes)
    timer, train_seconds = train_epoch(s, st, epoch)
    out_of_time = any_rank(st.clock.over(), s.dist, s.device) if tc.time_budget_s else False
    val_mae, val_seconds = math.nan, 0.0
    if epoch % tc.validate_every == 0 or epoch == s.epochs or out_of_time:  # the last epoch is always validated
        val_mae, val_seconds = validate(s, st, epoch)
    row = {
        "epoch": epoch,
        "train_loss": p.loss_sum / max(p.loss_n, 1),
        "val_mae": val_mae,
        "lr": s.optimizer.param_groups[0]["lr"],
        "seconds": train_seconds + val_seconds,
        "train_seconds": train_seconds,
        **{f"{k}_s": v for k, v in timer.totals.items()},
        "validation_s": val_seconds,
        "samples_per_s": p.samples / max(train_seconds, 1e-9),
        "peak_mem_mb": peak_memory_mb(s.device),
        "skipped_steps": p.skipped,
    }
    stale = p.since_best(row)
    early_stop = bool(tc.early_stop_patience and stale >= tc.early_stop_patience)
    why = "early stop" if early_stop else "time budget" if out_of_time else "epochs" if epoch == s.epochs else ""
    p.end_epoch(row, why, st.clock.spent())
    if s.dist.main:
        records.write_csv(st.run_dir / "history.csv", pd.DataFrame(p.history))
    st.last.save(p, st.best_state, f"end of epoch {epoch}")
    if stopping(st) and not p.done:
        raise Interrupted(st.stop.signame, st.run_dir, f"the end of epoch {epoch}", st.last.path is not None)
    st.show.end_epoch(row, p.best, p.best_epoch, last=p.done, budget_left=st.clock.left())
    st.tb.epoch(row)
    if early_stop:
        st.show.write(
            f"{st.show.label}: early stop at epoch {epoch}: no validation beat epoch {p.best_epoch}'s in {stale}"
        )
    elif out_of_time:
        st.show.write(f"{st.show.label}: time budget ({tc.time_budget_s:.0f} s) spent at epoch {epoch} of {s.epochs}")
    return not (early_stop or out_of_time)


def stopping(st: State) -> bool:
    return st.stop is not None and st.stop.signame is not None


def train_epoch(s: Setup, st: State, epoch: int) -> tuple[Timer, float]:
    """One epoch of optimizer steps (or its rest, when resumed mid-way); (phase timer, seconds)."""
    p, n_batches = st.p, len(s.train_batches)
    if s.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(s.device)
    s.step_model.train()
    timer = Timer(s.device, s.timed, p.phase_s)
    st.loss.start(p.loss_sum)
    epoch_start = time.perf_counter() - p.epoch_s  # a resumed epoch keeps its time so far
    st.show.start_epoch(epoch, p.batch)
    for i, (x, y) in enumerate(rng_neutral(s.train_batches.epoch(epoch - 1, skip=p.batch)), start=p.batch):
        lr = train_step(s, st, x, y, i, epoch, timer)
        st.show.step(lambda: running_loss(s, st, epoch))  # read (a sync) only when the bar shows it
        if lr is None:
            continue
        st.tb.step(p.opt_step, st.loss.last, lr)
        timer.lap("optimizer")
        if (st.last.due(p.opt_step) or stopping(st)) and i + 1 < n_batches:  # mid-epoch, of a run still finite
            running_loss(s, st, epoch)
            p.batch, p.epoch_s, p.elapsed_s = i + 1, time.perf_counter() - epoch_start, st.clock.spent()
            st.last.save(p, st.best_state, where := f"epoch {epoch}, after batch {i + 1}")
            if stopping(st):
                raise Interrupted(st.stop.signame, st.run_dir, where, st.last.path is not None)
            timer.restart()
    running_loss(s, st, epoch)
    train_seconds = time.perf_counter() - epoch_start
    p.loss_sum, p.loss_n = sum_over_ranks(p.loss_sum, p.loss_n, s.dist, s.device)  # every rank's part of the epoch
    return timer, train_seconds


def train_step(s: Setup, st: State, x: torch.Tensor, y: torch.Tensor, i: int, epoch: int, timer: Timer) -> float | None:
    """Batch i (global: x (B, in, N, 3), y (B, out, N, 1) original units): forward, loss (into st.loss, on the
    device) and backward of this rank's slice, and the optimizer step when the batch closes an accumulation group:
    its learning rate, or None when the batch only accumulated."""
    tc, p = s.cfg.train, st.p
    n = len(x)
    x, y, weight = rank_slice(x, y, s.dist)  # (B / world, ...): this rank's slice
    if tc.noise_std > 0:  # Gaussian noise on the z-scored value channel
        x = torch.cat([x[..., :1] + torch.randn_like(x[..., :1]) * tc.noise_std, x[..., 1:]], dim=-1)
    timer.lap("data")
    if s.graphs:  # a new step: the graphs' outputs of the last step may be overwritten now
        torch.compiler.cudagraph_mark_step_begin()
    with s.autocast():
        loss = compute_loss(s.step_model(x), y, s.ds.mean, s.ds.std, tc)  # ()
    st.loss.add(loss, i, len(x))
    timer.lap("forward")
    group, step_end = accumulation(i, len(s.train_batches), tc.accumulation_steps)
    if s.dist.world > 1:  # DDP all-reduces the gradients in the last micro-batch's backward only
        s.step_model.require_backward_grad_sync = step_end
    s.scaler.scale(loss * weight / group).backward()  # mean over the micro-batches of this optimizer step
    timer.lap("backward")
    p.loss_n, p.samples = p.loss_n + len(x), p.samples + n
    if not step_end:
        return None
    lr = learning_rate(tc, p.opt_step, epoch, s.steps_per_epoch, p.base_lr, st.clock.fraction())
    p.skipped += optimizer_step(s, lr)
    p.opt_step += 1
    return lr


def optimizer_step(s: Setup, lr: float) -> bool:
    """Clip, step at lr, zero the gradients, update the weight average; True when fp16's GradScaler skipped the step
    (an overflow lowers its scale). Reading the scale syncs, as GradScaler.step does anyway."""
    for g in s.optimizer.param_groups:
        g["lr"] = lr
    if s.cfg.train.grad_clip > 0:
        s.scaler.unscale_(s.optimizer)
        torch.nn.utils.clip_grad_norm_(s.model.parameters(), s.cfg.train.grad_clip)
    scale = s.scaler.get_scale() if s.scaler.is_enabled() else None
    s.scaler.step(s.optimizer)
    s.scaler.update()
    s.optimizer.zero_grad(set_to_none=True)
    if s.ema is not None:
        s.ema.update_parameters(s.model)
    return scale is not None and s.scaler.get_scale() < scale


def running_loss(s: Setup, st: State, epoch: int) -> float:
    """The epoch's mean training loss so far, read from the device (a sync) into st.p; a non-finite loss since the
    last read fails here, naming its step, before a checkpoint or validation could keep it."""
    p, n_batches, k = st.p, len(s.train_batches), s.cfg.train.accumulation_steps
    p.loss_sum, bad = st.loss.read()
    if bad is not None:
        i, value = bad
        raise FloatingPointError(
            f"non-finite loss ({value}) at epoch {epoch}, step {i} (batch {i + 1} of {n_batches}, optimizer step "
            f"{(epoch - 1) * s.steps_per_epoch + i // k}): lower train.lr or check the data. Kept: "
            + st.last.kept(st.run_dir)
        )
    return p.loss_sum / max(p.loss_n, 1)


def validate(s: Setup, st: State, epoch: int) -> tuple[float, float]:
    """Validation MAE and seconds; updates the best weights (best.pt) and the plateau rule."""
    p = st.p
    st.show.validating()
    begin = time.perf_counter()
    marks = s.graphs and s.ema is None
    val_mae = evaluate(s.eval_model, s.val_batches, s.ds, s.autocast(), s.dist, s.device, mark_steps=marks)["mae"]
    seconds = time.perf_counter() - begin
    if val_mae < p.best:
        p.best, p.best_epoch = val_mae, epoch
        st.best_state = copy.deepcopy((s.ema.module if s.ema is not None else s.model).state_dict())
        if s.cfg.train.save_checkpoint and s.dist.main:
            records.save_torch(st.run_dir / "best.pt", {"model": st.best_state, "epoch": epoch, "val_mae": val_mae})
    if s.cfg.train.scheduler == "plateau":
        p.base_lr = s.plateau.step(val_mae, p.base_lr)
    return val_mae, seconds


def test(s: Setup, st: State) -> Run:
    """Score the best-validation weights on val and test; write metrics.json and the ledger row."""
    cfg, dist, device, model, p = s.cfg, s.dist, s.device, s.model, st.p
    train_seconds = st.clock.spent()
    if st.best_state is not None:
        model.load_state_dict(st.best_state)
    elif cfg.train.save_checkpoint and dist.main:
        records.save_torch(st.run_dir / "best.pt", {"model": model.state_dict(), "epoch": 0, "val_mae": None})
    batches = (make_batches(s.ds, k, cfg.train.eval_batch_size, **s.batch_kw) for k in ("val", "test"))
    val_metrics, test_metrics = (evaluate(model, b, s.ds, s.autocast(), dist, device) for b in batches)
    hist = pd.DataFrame(p.history)
    metrics = {
        "test": test_metrics,
        "val": val_metrics,
        "best_epoch": p.best_epoch,
        "epochs_run": len(p.history),
        "train_seconds": train_seconds,
        "seconds_per_epoch": float(hist["train_seconds"].median()) if len(hist) else 0.0,
        "params": count_parameters(model),
        "model": cfg.model.name,
        "dataset": s.ds.name,
        "seed": cfg.train.seed,
        "device": str(device),
        "amp": str(s.dtype).replace("torch.", "") if s.dtype else "off",
        "skipped_steps": int(hist["skipped_steps"].sum()) if len(hist) else 0,
        "stopped_by": p.stopped_by or "epochs",
        **({"world_size": dist.world} if dist.world > 1 else {}),
    }
    st.tb.final(metrics, len(hist))
    if dist.main:
        write_results(cfg, st.run_dir, st.out_root, hist, metrics)
    return Run(cfg, st.run_dir.name, st.run_dir, hist, metrics, model, s.ds, device)
