"""The training loop: one function, every roadmap knob a config field.

    python -m stlib.train --params params/default.yaml [--preset stid] [--set train.epochs=5 ...]
    python -m stlib.train --resume outputs/runs/<stage>/<run-id>      # continue a killed run exactly
    torchrun --nproc_per_node=K -m stlib.train --params ...            # K processes, one model (DDP)

fit(config) trains on the train split, validates every `validate_every` epochs, keeps the best
validation weights, scores them on test and writes a run record (stlib.records). With
train.save_checkpoint the record also holds last.pt, the whole training state (model, optimizer,
schedule, GradScaler, random generators, sampler position), written at every epoch end and every
`checkpoint_every` optimizer steps: a run killed at any moment resumes and ends with the same numbers.

While it trains a run shows (stlib.progress) a bar over each epoch's batches on a terminal, or one line per
epoch at most in logs, notebooks and ablation workers, or nothing with train.quiet; train.tensorboard adds
TensorBoard scalars under <run_dir>/tensorboard/.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import random
import resource
import sys
import time
from contextlib import ExitStack, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as td
import torch.nn as nn
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel

from . import records
from .config import ConfigError, RunConfig, build_run_config, load_profile
from .data import Dataset, from_config, make_batches
from .metrics import MetricSums, masked_huber, masked_mae
from .models import build_model, count_parameters
from .paths import output_dir, resolve_params
from .progress import TensorBoardLog, TrainProgress, pick_mode, require_tensorboard, run_label

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


def cosine_factor(step: int, total: int, floor: float, time_frac: float = 0.0) -> float:
    """Cosine decay from 1 to `floor` over `total` steps, or over a time budget when it runs out first.

    time_frac: the share of train.time_budget_s spent so far (0 without a budget). The schedule follows
    whichever is further along, so a budgeted run anneals fully by its deadline ("budgeted training").
    """
    t = min(max(step / max(total, 1), time_frac), 1.0)
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
    random.seed(seed)


# ---------------------------------------------------------------------------------------------
# several processes (torchrun): DistributedDataParallel, each rank on its slice of every batch


@dataclass
class Dist:
    """This process's place in a torchrun job (rank 0 of 1 without one)."""

    rank: int = 0
    world: int = 1
    owned: bool = False  # fit() started the process group, so fit() ends it

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: torch.device) -> tuple[Dist, torch.device]:
    """Join the torchrun process group if there is one (NCCL, one GPU per rank; gloo on CPU); the rank's device."""
    if not td.is_available() or (not td.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) <= 1):
        return Dist(), device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    owned = not td.is_initialized()
    if owned:
        td.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(td.get_rank(), td.get_world_size(), owned), device


def shard(t: torch.Tensor, dist: Dist) -> torch.Tensor:
    """This rank's contiguous slice of a global batch: (B, ...) -> (about B / world, ...)."""
    return t if dist.world == 1 else t.tensor_split(dist.world)[dist.rank]


def all_reduce_sum(values: torch.Tensor, dist: Dist, device) -> torch.Tensor:
    """Element-wise sum over the ranks (through the device for NCCL)."""
    if dist.world == 1:
        return values
    t = values.to(device) if td.get_backend() == "nccl" else values.clone()
    td.all_reduce(t)
    return t.to(values.device)


def gather_objects(obj, dist: Dist) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every rank."""
    if dist.world == 1:
        return [obj]
    out = [None] * dist.world
    td.all_gather_object(out, obj)
    return out


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

    def __init__(self, device: torch.device, enabled: bool = True, totals: dict | None = None):
        self.sync = torch.cuda.synchronize if device.type == "cuda" and enabled else (lambda: None)
        self.totals = totals if totals is not None else dict.fromkeys(PHASES, 0.0)
        self.t = time.perf_counter()

    def lap(self, phase: str) -> None:
        self.sync()
        now = time.perf_counter()
        self.totals[phase] += now - self.t
        self.t = now

    def restart(self) -> None:
        """Restart the lap clock: time since the last lap (a checkpoint write) counts in no phase."""
        self.sync()
        self.t = time.perf_counter()


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
def evaluate(model, batches, ds: Dataset, autocast, dist: Dist | None = None, device=None,
             mark_steps: bool = False) -> dict:
    """Masked metrics of a model over a batch iterable, in original units (under DDP: every rank's shard).

    mark_steps: the model replays CUDA graphs (compile reduce-overhead): mark each batch a new step.
    """
    dist = dist or Dist()
    model.eval()
    sums = MetricSums(ds.out_steps)
    for x, y in batches:
        x, y = shard(x, dist), shard(y, dist)
        if mark_steps:
            torch.compiler.cudagraph_mark_step_begin()
        with autocast:
            pred = model(x)
        sums.update(ds.denormalize(pred.float()), y)
    if dist.world > 1:  # the sums over every rank's shard are the sums over the whole split
        total = all_reduce_sum(torch.stack([sums.abs, sums.sq, sums.ape, sums.count]), dist, device)  # (4, H)
        sums.abs, sums.sq, sums.ape, sums.count = total.unbind()
    return sums.result()


# ---------------------------------------------------------------------------------------------
# exact resume: the training state in and out of last.pt

CHECKPOINT_EVERY = 200  # default optimizer steps between mid-epoch checkpoints (epoch ends always write one)
RESUMABLE_CHANGES = ("train.quiet", "train.device", "train.threads", "train.time_phases",  # how, not what
                     "train.tensorboard")


@dataclass
class Progress:
    """Where the loop stands: all an exact resume needs besides model, optimizer, scaler and RNGs."""

    epoch: int = 1  # the epoch in progress (1-based) ...
    batch: int = 0  # ... and its batches done: always whole optimizer steps (accumulation groups)
    opt_step: int = 0
    base_lr: float = 0.0
    best: float = math.inf
    best_epoch: int = 0
    stale: int = 0  # validations without a meaningful gain (early stopping)
    done: bool = False  # training over (last epoch or early stop): only the test is left
    stopped_by: str = ""  # why training ended: epochs | early stop | time budget
    history: list = field(default_factory=list)
    elapsed_s: float = 0.0  # training wall time so far, all sessions
    # sums of the epoch in progress
    loss_sum: float = 0.0
    loss_n: int = 0
    skipped: int = 0
    samples: int = 0
    epoch_s: float = 0.0
    phase_s: dict = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))

    def next_epoch(self) -> None:
        """Move to the start of the next epoch with fresh sums."""
        self.epoch, self.batch = self.epoch + 1, 0
        self.loss_sum, self.loss_n, self.skipped, self.samples, self.epoch_s = 0.0, 0, 0, 0, 0.0
        self.phase_s = dict.fromkeys(PHASES, 0.0)


def rng_state() -> dict:
    """Every generator the loop may draw from: torch CPU (+ CUDA), numpy, Python."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
            "python": random.getstate()}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])


def ema_model(model: nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of the model's weights (and buffers), updated after each optimizer step.

    The decay warms up as min(decay, (1 + n) / (10 + n)) over the n updates so far, so the average forgets the
    random initial weights within tens of steps instead of the 1 / (1 - decay) a fixed decay would need.
    """
    def avg(averaged: torch.Tensor, current: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        d = min(decay, (1.0 + float(n)) / (10.0 + float(n)))
        return averaged * d + current * (1.0 - d)

    return AveragedModel(model, avg_fn=avg, use_buffers=True)


def pack_checkpoint(cfg, model, optimizer, scaler, plateau, p: Progress, best_state, rngs: list, dist: Dist,
                    device, ema: AveragedModel | None = None) -> dict:
    """last.pt: the whole training state as tensors and plain values (it loads with weights_only)."""
    progress = asdict(p)
    if dist.world > 1:  # the epoch's loss so far, summed over the ranks (a resume restores it on rank 0)
        sums = all_reduce_sum(torch.tensor([p.loss_sum, p.loss_n], dtype=torch.float64), dist, device)
        progress["loss_sum"], progress["loss_n"] = sums[0].item(), int(sums[1].item())
    return {"format": 1, "config": cfg.to_dict(), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(), "plateau": dict(vars(plateau)), "progress": progress,
            "best_state": best_state, "rng": rngs, "ema": ema.state_dict() if ema is not None else None}


def unpack_checkpoint(ckpt: dict, model, optimizer, scaler, plateau, rank: int = 0,
                      ema: AveragedModel | None = None) -> tuple[Progress, dict | None]:
    """Restore a pack_checkpoint state in place; return the progress and the best weights so far."""
    model.load_state_dict(ckpt["model"])
    if ema is not None:
        ema.load_state_dict(ckpt["ema"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scaler.load_state_dict(ckpt["scaler"])
    vars(plateau).update(ckpt["plateau"])
    if rank < len(ckpt["rng"]):  # a resume on more ranks than saved keeps the new ranks' seeded generators
        set_rng_state(ckpt["rng"][rank])
    p = Progress(**ckpt["progress"])
    if rank:  # the saved epoch sums are over all ranks: count them once
        p.loss_sum, p.loss_n = 0.0, 0
    return p, ckpt["best_state"]


def save_last(path: Path, dist: Dist, device, cfg, model, optimizer, scaler, plateau, p: Progress,
              best_state, ema: AveragedModel | None = None) -> None:
    """Write last.pt (rank 0, atomically) with every rank's generators: the point a resume starts from."""
    ckpt = pack_checkpoint(cfg, model, optimizer, scaler, plateau, p, best_state,
                           gather_objects(rng_state(), dist), dist, device, ema)
    if dist.main:
        records.save_torch(path, ckpt)


def resume_config(run_dir: str | Path, cfg: RunConfig | None = None) -> RunConfig:
    """The config saved in a run directory; a given cfg may differ only in how it runs (RESUMABLE_CHANGES)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        what = "does not exist" if not Path(run_dir).exists() else "is not a run directory (no config.yaml)"
        raise FileNotFoundError(f"cannot resume {run_dir}: it {what}")
    saved = build_run_config(yaml.safe_load(path.read_text()) or {}, str(path))
    if cfg is None:
        return saved
    a, b = _dotted(saved.to_dict()), _dotted(cfg.to_dict())
    diff = [f"{k}: {a[k]!r} -> {b.get(k)!r}" for k in a if a[k] != b.get(k) and k not in RESUMABLE_CHANGES]
    if diff:
        raise ConfigError(f"cannot resume {run_dir} with a different config ({'; '.join(diff)}): "
                          "a resumed run continues with the config it started with")
    return cfg


def _dotted(tree: dict) -> dict:
    """{'train': {'lr': 0.1}, 'stage': 'x'} -> {'train.lr': 0.1, 'stage': 'x'}."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def restore(run_dir: Path, model, optimizer, scaler, plateau, dist: Dist, device,
            ema: AveragedModel | None = None) -> tuple[Progress, dict] | None:
    """The state of run_dir/last.pt restored in place, or None (start over) if the run died before writing one."""
    path = run_dir / "last.pt"
    if optimizer is None or not path.exists():
        if (run_dir / "metrics.json").exists():
            raise ValueError(f"cannot resume {run_dir}: it finished without a training checkpoint (last.pt): "
                             "nothing to continue")
        if optimizer is not None and dist.main:
            print(f"note: {path} not found (the run stopped before its first checkpoint): training from the start",
                  file=sys.stderr)
        return None
    return unpack_checkpoint(records.load_torch(path, device), model, optimizer, scaler, plateau, dist.rank, ema)


def open_run_dir(cfg: RunConfig, resume, out_root, dist: Dist, device, held: ExitStack) -> tuple[Path, Path]:
    """(run directory, outputs root): the resumed one, or a new one that rank 0 creates with config and env.

    Rank 0 holds the directory's lock until fit() ends, so a run cannot be resumed while it still runs.
    """
    if resume is not None:
        run_dir = Path(resume).resolve()
        if dist.main:
            held.enter_context(records.run_lock(run_dir))
            records.remove_temp_files(run_dir)  # half-written files of the killed session
        return run_dir, Path(out_root) if out_root else run_dir.parents[2]  # <root>/runs/<stage>/<run-id>
    out_root = Path(out_root) if out_root else output_dir()
    run_dir = None
    if dist.main:
        label = f"{cfg.model.name}-s{cfg.train.seed}" + (f"-{cfg.name}" if cfg.name else "")
        _, run_dir = records.new_run_dir(cfg.stage, label, out_root)
        held.enter_context(records.run_lock(run_dir))
        records.write_config(run_dir / "config.yaml", cfg.to_dict())
        records.write_json(run_dir / "env.json", records.environment(device))
    if dist.world > 1:
        box = [run_dir]
        td.broadcast_object_list(box, src=0)
        run_dir = box[0]
    return run_dir, out_root


def rng_neutral(batches):
    """The batches, with the start of the iteration kept off torch's global generator.

    A DataLoader draws its base seed from that generator when an epoch starts; a resumed epoch starts
    again, and that extra draw would shift every later dropout / noise draw.
    """
    it = iter(batches)
    with torch.random.fork_rng(devices=[]):
        first = next(it, None)
    if first is not None:
        yield first
        yield from it


def non_finite_loss(value: float, epoch: int, i: int, n_batches: int, opt_step: int, run_dir: Path,
                    saved: str | None) -> FloatingPointError:
    """The error that stops a run on a NaN/inf loss: where it happened and what was kept."""
    kept = (f"the last good checkpoint is {run_dir / 'last.pt'} ({saved}); " if saved else "no checkpoint yet; ")
    return FloatingPointError(
        f"non-finite loss ({value}) at epoch {epoch}, step {i} (batch {i + 1} of {n_batches}, optimizer step "
        f"{opt_step}): lower train.lr or check the data. Kept: {kept}history of the finished epochs in "
        f"{run_dir / 'history.csv'}")


# ---------------------------------------------------------------------------------------------
# the loop


def fit(cfg: RunConfig | None = None, dataset: Dataset | None = None, out_root: Path | None = None, *,
        resume: str | Path | None = None, checkpoint_every: int | None = None, progress: str = "auto") -> Run:
    """Train, keep the best-validation weights, score them on test, write the run record.

    resume: a run directory to continue from its last.pt (cfg may then be None: the saved config is used).
    checkpoint_every: optimizer steps between mid-epoch checkpoints (default CHECKPOINT_EVERY; 0 = epoch ends).
    progress: what the run shows on stderr (stlib.progress): auto (a bar over each epoch's batches on a
    terminal, else one line per epoch at most), bar, lines or off; train.quiet always means off.
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
        if dist.owned:
            held.callback(td.destroy_process_group)
        return _fit(cfg, dataset, out_root, resume, every, dist, device, held, progress)


def _fit(cfg: RunConfig, dataset, out_root, resume, every: int, dist: Dist, device: torch.device,
         held: ExitStack, progress: str) -> Run:
    """fit() once the config, the device and the process group are settled."""
    tc = cfg.train
    if dist.world > 1 and tc.time_budget_s and tc.scheduler == "cosine":
        raise ConfigError("train.time_budget_s with train.scheduler cosine follows each process's own clock, so "
                          "under torchrun the ranks' learning rates would drift apart: use another scheduler, "
                          "or the budget in one process")
    if tc.tensorboard:
        require_tensorboard()  # missing package: a clear error before the run has a record
    seed_everything(tc.seed)
    ds = dataset if dataset is not None else from_config(cfg.data)
    model = build_model(cfg.model, ds).to(device)
    if dist.rank:  # the same initial weights on every rank, then each rank its own dropout / noise draws
        seed_everything(tc.seed + dist.rank)
    trainable = count_parameters(model) > 0
    dtype = amp_dtype(tc.amp, device)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    fast_model = torch.compile(model, mode=None if tc.compile == "default" else tc.compile) \
        if tc.compile != "off" and trainable else model  # validation runs this one (no DDP needed)
    graphs = tc.compile == "reduce-overhead" and trainable  # CUDA graphs: step boundaries are marked
    step_model = DistributedDataParallel(fast_model, device_ids=[device.index] if device.type == "cuda" else None) \
        if dist.world > 1 and trainable else fast_model

    batch_kw = dict(device=device, loader=tc.loader, num_workers=tc.num_workers, pin_memory=tc.pin_memory,
                    prefetch_factor=tc.prefetch_factor)
    train_batches = make_batches(ds, "train", tc.batch_size, shuffle=True, seed=tc.seed, drop_last=tc.drop_last,
                                 **batch_kw)
    if trainable and tc.drop_last and len(train_batches) == 0:
        raise ConfigError(f"train.drop_last with train.batch_size {tc.batch_size} leaves no batch of the "
                          f"{len(ds.splits['train'])} training windows: lower the batch size or set train.drop_last=false")
    val_batches = make_batches(ds, "val", tc.eval_batch_size, **batch_kw)
    optimizer = torch.optim.Adam(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay) if trainable else None
    plateau = Plateau(tc.patience, tc.factor, tc.min_lr)
    ema = ema_model(model, tc.ema) if tc.ema and trainable else None  # validated, tested and saved in place of model
    eval_model = ema.module if ema is not None else fast_model
    n_batches = len(train_batches)
    steps_per_epoch = math.ceil(n_batches / tc.accumulation_steps)
    total_steps = steps_per_epoch * tc.epochs
    mean, std = ds.mean, ds.std
    epochs = tc.epochs if trainable else 0

    # everything above can fail on bad inputs and leaves no trace; from here on the run has a record
    run_dir, out_root = open_run_dir(cfg, resume, out_root, dist, device, held)
    last_pt = run_dir / "last.pt" if tc.save_checkpoint and trainable else None
    p, best_state, saved = Progress(base_lr=tc.lr), None, None  # saved: what last.pt holds, for messages
    if resume is not None and (restored := restore(run_dir, model, optimizer, scaler, plateau, dist, device, ema)):
        p, best_state = restored
        saved = f"epoch {p.epoch}, after batch {p.batch}" if p.batch else f"start of epoch {p.epoch}"
        if dist.main and p.history:  # the history as of the checkpoint (a later epoch's row is redone)
            records.write_csv(run_dir / "history.csv", pd.DataFrame(p.history))
    checkpoint = lambda: save_last(last_pt, dist, device, cfg, model, optimizer, scaler, plateau, p,  # noqa: E731
                                   best_state, ema)

    show = TrainProgress(pick_mode(progress, tc.quiet, dist.main), run_label(cfg), epochs, n_batches)
    held.callback(show.close)
    tb = TensorBoardLog(run_dir, cfg.to_dict()) if tc.tensorboard and dist.main else None
    if tb is not None:
        held.callback(tb.close)
    session_start, elapsed_before = time.perf_counter(), p.elapsed_s
    spent = lambda: elapsed_before + time.perf_counter() - session_start  # noqa: E731  training seconds, all sessions
    budget = tc.time_budget_s  # training seconds (validation included), all sessions; 0 = no budget
    out_of_time = False
    for epoch in range(p.epoch, epochs + 1) if not p.done else []:
        # ---- train one epoch (or its rest, when resumed mid-way) -----------------------------
        if tc.scheduler == "multistep":
            p.base_lr = tc.lr * tc.gamma ** sum(m <= epoch - 1 for m in tc.milestones)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        step_model.train()
        timer = Timer(device, tc.time_phases, p.phase_s)
        epoch_start = time.perf_counter() - p.epoch_s  # a resumed epoch keeps its time so far
        show.start_epoch(epoch, p.batch)
        for i, (x, y) in enumerate(rng_neutral(train_batches.epoch(epoch - 1, skip=p.batch)), start=p.batch):
            # x (B, in, N, 3), y (B, out, N, 1) original units: the global batch; each rank takes its slice
            n = len(x)
            x, y = shard(x, dist), shard(y, dist)  # (B / world, ...)
            if tc.noise_std > 0:  # Gaussian input augmentation on the z-scored value channel
                x = torch.cat([x[..., :1] + torch.randn_like(x[..., :1]) * tc.noise_std, x[..., 1:]], dim=-1)
            timer.lap("data")
            if graphs:  # a new step: the graphs' outputs of the last step may be overwritten now
                torch.compiler.cudagraph_mark_step_begin()
            with autocast:
                loss = compute_loss(step_model(x), y, mean, std, tc, cfg.model.denoise_weight)
            loss_value = loss.item()  # one sync per step, shared by the check and the running mean
            if not math.isfinite(loss_value):
                raise non_finite_loss(loss_value, epoch, i, n_batches, p.opt_step, run_dir, saved)
            timer.lap("forward")
            group = min(tc.accumulation_steps, n_batches - i // tc.accumulation_steps * tc.accumulation_steps)
            step_end = (i + 1) % tc.accumulation_steps == 0 or i + 1 == n_batches
            if dist.world > 1:
                step_model.require_backward_grad_sync = step_end  # all-reduce gradients once per optimizer step
                loss = loss * (len(x) * dist.world / n)  # weigh uneven slices so DDP's rank mean = the batch mean
            scaler.scale(loss / group).backward()  # mean over the micro-batches of this optimizer step
            timer.lap("backward")
            p.loss_sum += loss_value * len(x)
            p.loss_n += len(x)
            p.samples += n
            show.step(p.loss_sum / p.loss_n)
            if step_end:
                lr = p.base_lr * warmup_factor(p.opt_step, tc.warmup_steps)
                if tc.scheduler == "cosine":
                    lr *= cosine_factor(p.opt_step, total_steps, tc.min_lr / tc.lr, spent() / budget if budget else 0.0)
                for g in optimizer.param_groups:
                    g["lr"] = lr
                if tc.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
                scale_before = scaler.get_scale() if scaler.is_enabled() else None
                scaler.step(optimizer)
                scaler.update()
                if scale_before is not None and scaler.get_scale() < scale_before:
                    p.skipped += 1  # fp16 overflow: GradScaler skipped this step (and lowered its scale)
                optimizer.zero_grad(set_to_none=True)
                if ema is not None:
                    ema.update_parameters(model)
                p.opt_step += 1
                if tb is not None:
                    tb.step(p.opt_step, loss_value, lr)
                timer.lap("optimizer")
                if last_pt and every and p.opt_step % every == 0 and i + 1 < n_batches:  # mid-epoch checkpoint
                    p.batch, p.epoch_s = i + 1, time.perf_counter() - epoch_start
                    p.elapsed_s = spent()
                    checkpoint()
                    saved = f"epoch {epoch}, after batch {i + 1}"
                    timer.restart()
        train_seconds = time.perf_counter() - epoch_start
        if dist.world > 1:  # every rank's part of the epoch's loss
            sums = all_reduce_sum(torch.tensor([p.loss_sum, p.loss_n], dtype=torch.float64), dist, device)
            p.loss_sum, p.loss_n = sums[0].item(), int(sums[1].item())

        # ---- validate -----------------------------------------------------------------------
        val_mae, val_seconds = float("nan"), 0.0
        out_of_time = bool(budget) and spent() >= budget
        if budget and dist.world > 1:  # the ranks' clocks differ a little: all stop when one is out of time
            out_of_time = bool(all_reduce_sum(torch.tensor([float(out_of_time)]), dist, device).item() > 0)
        if epoch % tc.validate_every == 0 or epoch == epochs or out_of_time:  # the last epoch is always validated
            show.validating()
            t0 = time.perf_counter()
            val_mae = evaluate(eval_model, val_batches, ds, autocast, dist, device,
                               mark_steps=graphs and ema is None)["mae"]
            val_seconds = time.perf_counter() - t0
            # early stopping counts validations without a meaningful gain (relative 1e-4, as the plateau rule)
            p.stale = 0 if val_mae < p.best * (1 - 1e-4) else p.stale + 1
            if val_mae < p.best:
                p.best, p.best_epoch = val_mae, epoch
                best_state = copy.deepcopy((ema.module if ema is not None else model).state_dict())
                if tc.save_checkpoint and dist.main:
                    records.save_torch(run_dir / "best.pt", {"model": best_state, "epoch": epoch, "val_mae": val_mae})
            if tc.scheduler == "plateau":
                p.base_lr = plateau.step(val_mae, p.base_lr)
        row = {"epoch": epoch, "train_loss": p.loss_sum / max(p.loss_n, 1), "val_mae": val_mae,
               "lr": optimizer.param_groups[0]["lr"], "seconds": train_seconds + val_seconds,
               "train_seconds": train_seconds, **{f"{k}_s": v for k, v in timer.totals.items()},
               "validation_s": val_seconds, "samples_per_s": p.samples / max(train_seconds, 1e-9),
               "peak_mem_mb": peak_memory_mb(device), "skipped_steps": p.skipped}
        p.history.append(row)
        early_stop = bool(tc.early_stop_patience and p.stale >= tc.early_stop_patience)
        p.done = early_stop or out_of_time or epoch == epochs
        if p.done:
            p.stopped_by = "early stop" if early_stop else "time budget" if out_of_time else "epochs"
        p.next_epoch()
        p.elapsed_s = spent()
        if dist.main:
            records.write_csv(run_dir / "history.csv", pd.DataFrame(p.history))
        if last_pt:
            checkpoint()
            saved = f"end of epoch {epoch}"
        show.end_epoch(row, p.best, p.best_epoch, last=p.done, budget_left=budget - p.elapsed_s if budget else None)
        if tb is not None:
            tb.epoch(row)
        if early_stop or out_of_time:
            show.write(f"{show.label}: early stop at epoch {epoch}: no validation improvement in {p.stale} "
                       "validations" if early_stop else
                       f"{show.label}: time budget ({budget:.0f} s) spent at epoch {epoch} of {epochs}")
            break
    train_total = spent()

    # ---- test with the best-validation weights ---------------------------------------------------
    if best_state is not None:
        model.load_state_dict(best_state)
    elif tc.save_checkpoint and dist.main:
        records.save_torch(run_dir / "best.pt", {"model": model.state_dict(), "epoch": 0, "val_mae": None})
    make = lambda split: make_batches(ds, split, tc.eval_batch_size, **batch_kw)  # noqa: E731
    val_metrics = evaluate(model, make("val"), ds, autocast, dist, device)
    test_metrics = evaluate(model, make("test"), ds, autocast, dist, device)
    hist = pd.DataFrame(p.history)
    metrics = {
        "test": test_metrics, "val": val_metrics, "best_epoch": p.best_epoch, "epochs_run": len(p.history),
        "train_seconds": train_total,
        "seconds_per_epoch": float(hist["train_seconds"].median()) if len(hist) else 0.0,
        "params": count_parameters(model), "model": cfg.model.name, "dataset": ds.name, "seed": tc.seed,
        "device": str(device), "amp": str(dtype).replace("torch.", "") if dtype else "off",
        "skipped_steps": int(hist["skipped_steps"].sum()) if len(hist) else 0,
        "stopped_by": p.stopped_by or "epochs",
    }
    if dist.world > 1:
        metrics["world_size"] = dist.world
    if tb is not None:
        tb.final(metrics, len(hist))
    if dist.main:
        write_results(cfg, run_dir, out_root, hist, metrics, device)
    return Run(cfg, run_dir.name, run_dir, hist, metrics, model, ds, device)


def write_results(cfg: RunConfig, run_dir: Path, out_root: Path, hist: pd.DataFrame, metrics: dict, device) -> None:
    """metrics.json and the run's ledger row (one row, also when the run was resumed)."""
    if hist.empty:
        records.write_csv(run_dir / "history.csv", pd.DataFrame(columns=["epoch", "train_loss", "val_mae"]))
    records.write_json(run_dir / "metrics.json", metrics)
    test, val, h = metrics["test"], metrics["val"], metrics["test"]["by_horizon"]
    records.append_ledger({
        "run_id": run_dir.name, "stage": cfg.stage, "name": cfg.name, "profile": cfg.profile, "model": cfg.model.name,
        "dataset": metrics["dataset"], "seed": cfg.train.seed, "params": metrics["params"],
        "best_epoch": metrics["best_epoch"], "epochs_run": metrics["epochs_run"],
        "train_seconds": round(metrics["train_seconds"], 2), "seconds_per_epoch": round(metrics["seconds_per_epoch"], 3),
        "val_mae": round(val["mae"], 4), "test_mae": round(test["mae"], 4), "test_rmse": round(test["rmse"], 4),
        "test_mape": round(test["mape"], 4), "mae_h3": round(h["3"]["mae"], 4), "mae_h6": round(h["6"]["mae"], 4),
        "mae_h12": round(h["12"]["mae"], 4), "device": str(device), "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        "run_dir": str(run_dir),
    }, out_root)


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
    ap.add_argument("--quiet", action="store_true", help="no progress output (bar or epoch lines)")
    ap.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run from its last.pt, in the same record")
    ap.add_argument("--checkpoint-every", type=int, metavar="N",
                    help=f"write last.pt every N optimizer steps too (default {CHECKPOINT_EVERY}; 0 = epoch ends only)")
    args = ap.parse_args(argv)
    try:
        if args.resume:
            if args.preset or args.overrides or args.stage:
                raise ConfigError("--resume continues a run with the config it started with: drop --preset, --set "
                                  "and --stage")
            cfg = resume_config(args.resume)
        else:
            profile = load_profile(resolve_params(args.params))
            cfg = profile.run_config(preset=args.preset, overrides=args.overrides, stage=args.stage)
        if args.quiet:
            cfg.train.quiet = True
        run = fit(cfg, resume=args.resume, checkpoint_every=args.checkpoint_every)
    except (ConfigError, FileNotFoundError, ValueError) as e:  # bad params, data files or run directory
        return _fail(e, 2)
    except FloatingPointError as e:  # NaN / inf loss: the checkpoints before it are kept
        return _fail(e, 3)
    except OSError as e:  # unwritable outputs, full disk: nothing half-written is left
        return _fail(e, 4)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 prints
        t = run.metrics["test"]
        print(f"test MAE {t['mae']:.3f}  RMSE {t['rmse']:.3f}  MAPE {t['mape']:.2f}%  "
              f"(best epoch {run.metrics['best_epoch']}, {run.metrics['train_seconds']:.0f} s)")
        print(run.dir)
    return 0


def _fail(e: Exception, code: int) -> int:
    """Print one clear error line (naming the rank under torchrun); return the exit code."""
    rank = f"[rank {os.environ['RANK']}] " if int(os.environ.get("WORLD_SIZE", "1")) > 1 else ""
    print(f"{rank}error: {e}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
