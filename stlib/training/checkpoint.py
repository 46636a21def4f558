"""The run directory: opened, checkpointed, closed (metrics.json, the ledger row), read back as a Run. last.pt (all
of the training state, every rank's generators included) is written atomically at every epoch end and every
`checkpoint_every` optimizer steps, so a run killed at any moment resumes to the same numbers."""

from __future__ import annotations

import json
import math
import random
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from ..config import ConfigError, RunConfig, build_run_config
from ..data import Dataset, from_config, make_batches
from ..data.core import data_changes
from ..models import build_model
from ..paths import output_dir
from ..reporting import records
from .distributed import Dist, broadcast_object, gather_objects, sum_over_ranks
from .timing import PHASES

CHECKPOINT_EVERY = 200  # default optimizer steps between mid-epoch checkpoints (epoch ends always write one)
# the options a resume may change: how a run runs, not what it computes
RESUMABLE_CHANGES = ("train.quiet", "train.device", "train.threads", "train.time_phases", "train.tensorboard")


@dataclass
class Progress:
    """Where the loop stands: all an exact resume needs besides model, optimizer, scaler and RNGs."""

    epoch: int = 1  # the epoch in progress (1-based) ...
    batch: int = 0  # ... and its batches done: always whole optimizer steps (accumulation groups)
    opt_step: int = 0
    base_lr: float = 0.0  # the plateau rule's lr (train.lr until its first cut)
    best: float = math.inf
    best_epoch: int = 0
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

    def since_best(self, row: dict | None = None) -> int:
        """Validations after the best checkpoint's epoch in the history (and row, the epoch ending): early stopping's
        count. Read from the history, so a resumed run counts as the uninterrupted one."""
        rows = [*self.history, *([row] if row else [])]
        return sum(1 for r in rows if r["epoch"] > self.best_epoch and not math.isnan(r["val_mae"]))

    def end_epoch(self, row: dict, stopped_by: str, elapsed_s: float) -> None:
        """Record an epoch's history row, move to the next epoch; stopped_by: why training ends ('' = it goes on)."""
        self.history.append(row)
        if stopped_by:
            self.done, self.stopped_by = True, stopped_by
        self.epoch, self.batch, self.elapsed_s = self.epoch + 1, 0, elapsed_s  # the next epoch, with fresh sums
        self.loss_sum, self.loss_n, self.skipped, self.samples, self.epoch_s = 0.0, 0, 0, 0, 0.0
        self.phase_s = dict.fromkeys(PHASES, 0.0)


def rng_state() -> dict:
    """Every generator the loop may draw from: torch CPU (+ CUDA), numpy, Python."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
        "python": random.getstate(),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])


def rng_neutral(batches):
    """The batches, the start of the iteration kept off torch's global generator: a DataLoader draws its base seed
    from it when an epoch starts, and a resumed epoch's extra start would shift every later dropout / noise draw."""
    it = iter(batches)
    with torch.random.fork_rng(devices=[]):
        first = next(it, None)
    if first is not None:
        yield first
        yield from it


class LastCheckpoint:
    """A run's last.pt (path None: none is kept) for the training state of s (the loop's Setup), and what the
    latest one holds, for messages."""

    def __init__(self, path: Path | None, every: int | None, s):  # every: optimizer steps (None: CHECKPOINT_EVERY)
        self.path, self.every, self.s = path, CHECKPOINT_EVERY if every is None else every, s
        self.saved: str | None = None  # "end of epoch 2", "epoch 3, after batch 18"

    def due(self, opt_step: int) -> bool:  # a mid-epoch checkpoint after this optimizer step
        return self.path is not None and self.every > 0 and opt_step % self.every == 0

    def save(self, p: Progress, best_state: dict | None, where: str) -> None:
        """Write last.pt (rank 0, atomically) with every rank's generators; tensors and plain values only (it loads
        with weights_only)."""
        if self.path is None:
            return
        s, progress = self.s, asdict(p)
        # the epoch's loss so far, summed over the ranks (a resume restores it on rank 0)
        progress["loss_sum"], progress["loss_n"] = sum_over_ranks(p.loss_sum, p.loss_n, s.dist, s.device)
        ckpt = {
            "format": 1,
            "config": s.cfg.to_dict(),
            **{k: getattr(s, k).state_dict() for k in ("model", "optimizer", "scaler")},
            "plateau": dict(vars(s.plateau)),
            "progress": progress,
            "best_state": best_state,
            "rng": gather_objects(rng_state(), s.dist),
            "ema": s.ema.state_dict() if s.ema is not None else None,
        }
        if s.dist.main:
            records.save_torch(self.path, ckpt)
        self.saved = where

    def kept(self, run_dir: Path) -> str:
        """What a run that fails now leaves behind to go on from (for its error message)."""
        got = f"the last good checkpoint is {run_dir}/last.pt ({self.saved})" if self.saved else "no checkpoint yet"
        return f"{got}; history of the finished epochs in {run_dir}/history.csv"

    def restore(self, run_dir: Path) -> tuple[Progress, dict | None] | None:
        """Restore run_dir/last.pt in place: (progress, best weights so far), or None (start over) without one."""
        s, path = self.s, run_dir / "last.pt"
        if s.optimizer is None or not path.exists():
            if (run_dir / "metrics.json").exists():
                raise ValueError(
                    f"cannot resume {run_dir}: it finished without a training checkpoint (last.pt): nothing to continue"
                )
            if s.optimizer is not None and s.dist.main:
                print(
                    f"note: {path} not found (the run stopped before its first checkpoint): training from the start",
                    file=sys.stderr,
                )
            return None
        ckpt = records.load_torch(path, s.device)
        for k in ("model", "ema", "optimizer", "scaler"):
            if getattr(s, k) is not None:
                getattr(s, k).load_state_dict(ckpt[k])
        vars(s.plateau).update(ckpt["plateau"])
        if s.dist.rank < len(ckpt["rng"]):  # a resume on more ranks than saved keeps the new ranks' seeded generators
            set_rng_state(ckpt["rng"][s.dist.rank])
        saved = ckpt["progress"]
        saved.pop("stale", None)  # checkpoints before 2026-12-04 kept early stopping's count, now read from the history
        p = Progress(**saved)
        if s.dist.rank:  # the saved epoch sums are over all ranks: count them once
            p.loss_sum, p.loss_n = 0.0, 0
        self.saved = f"epoch {p.epoch}, after batch {p.batch}" if p.batch else f"start of epoch {p.epoch}"
        return p, ckpt["best_state"]


def resume_config(run_dir: str | Path, cfg: RunConfig | None = None) -> RunConfig:
    """The config saved in a run directory; a given cfg may differ only in how it runs (RESUMABLE_CHANGES)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        what = "does not exist" if not Path(run_dir).exists() else "is not a run directory (no config.yaml)"
        raise FileNotFoundError(f"cannot resume {run_dir}: it {what}")
    saved = build_run_config(yaml.safe_load(path.read_text()) or {}, str(path))
    if cfg is None:
        return saved
    a, b = saved.dotted(), build_run_config(absolute_paths(cfg.to_dict())).dotted()
    diff = [f"{k}: {a[k]!r} -> {b.get(k)!r}" for k in a if a[k] != b.get(k) and k not in RESUMABLE_CHANGES]
    if diff:
        raise ConfigError(
            f"cannot resume {run_dir} with a different config ({'; '.join(diff)}): "
            "a resumed run continues with the config it started with"
        )
    return cfg


def absolute_paths(tree: dict) -> dict:
    """A config tree whose data.path / data.edges are absolute (relative ones against the current directory), so
    that a run's record resolves the same from any directory."""
    data = dict(tree.get("data") or {})
    for key in ("path", "edges"):
        if data.get(key):
            data[key] = str(Path(data[key]).expanduser().absolute())
    return {**tree, "data": data}


def check_data(run_dir: Path, ds: Dataset, new_data: bool = False) -> None:
    """Refuse a run's data when it differs from what the run trained on (its data.json), saying what differs; with
    new_data only the sensors must be the same (a trained model on this week's readings)."""
    path = Path(run_dir) / "data.json"
    if not path.is_file():  # a record from before data.json
        return
    recorded, now = json.loads(path.read_text()), ds.fingerprint
    changes = data_changes(recorded, now)
    same_sensors = (
        recorded["shape"][1:] == now["shape"][1:] and recorded["sensor_ids_sha256"] == now["sensor_ids_sha256"]
    )
    if changes and (not new_data or not same_sensors):
        why = "; ".join(c for c in changes if not new_data or c.startswith(("shape", "sensor ids")))
        hint = "" if new_data else " (to forecast on new readings of the same sensors on purpose: --new-data)"
        raise ValueError(f"{run_dir}: the data differs from what the run trained on: {why}{hint}")


def open_run_dir(
    cfg: RunConfig, resume, out_root, dist: Dist, device, held: ExitStack, ds: Dataset
) -> tuple[Path, Path]:
    """(run directory, outputs root): the resumed one (on the data it trained on), or a new one that rank 0 creates
    with config, env and the data's fingerprint; rank 0 holds its lock until fit() ends, so a run cannot be resumed
    while it still runs."""
    if resume is not None:
        run_dir = Path(resume).resolve()
        check_data(run_dir, ds)
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
        records.write_config(run_dir / "config.yaml", absolute_paths(cfg.to_dict()))
        records.write_json(run_dir / "env.json", records.environment(device))
        records.write_json(run_dir / "data.json", ds.fingerprint)
    return broadcast_object(run_dir, dist), out_root


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
    def from_dir(cls, run_dir: Path, dataset: Dataset | None = None, device: str = "cpu", new_data=False) -> Run:
        """A finished run read back from its record, with its best weights loaded, on the data it trained on (or,
        with new_data, on other readings of the same sensors)."""
        rec = records.read_run(run_dir)
        cfg = build_run_config(rec["config"], str(run_dir / "config.yaml"))
        ds = dataset if dataset is not None else from_config(cfg.data)
        check_data(run_dir, ds, new_data)
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


def write_results(cfg: RunConfig, run_dir: Path, out_root: Path, hist: pd.DataFrame, metrics: dict) -> None:
    """metrics.json and the run's ledger row (one row, also when the run was resumed)."""
    if hist.empty:
        records.write_csv(run_dir / "history.csv", pd.DataFrame(columns=["epoch", "train_loss", "val_mae"]))
    records.write_json(run_dir / "metrics.json", metrics)
    test, h = metrics["test"], metrics["test"]["by_horizon"]
    records.append_ledger(
        {
            "run_id": run_dir.name,
            **{k: getattr(cfg, k) for k in ("stage", "name", "profile")},
            **{k: metrics[k] for k in ("model", "dataset", "seed", "params", "best_epoch", "epochs_run", "device")},
            "train_seconds": round(metrics["train_seconds"], 2),
            "seconds_per_epoch": round(metrics["seconds_per_epoch"], 3),
            "val_mae": round(metrics["val"]["mae"], 4),
            **{f"test_{k}": round(test[k], 4) for k in ("mae", "rmse", "mape")},
            **{f"mae_h{k}": round(h[k]["mae"], 4) for k in ("3", "6", "12")},
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            "run_dir": str(run_dir),
        },
        out_root,
    )
