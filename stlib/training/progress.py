"""Watching a run, on stderr (results stay on stdout): a bar over each epoch's batches, epoch lines, TensorBoard.

    +scheduler s1 ep 3/20  loss 0.4987  val MAE 18.234 (best 18.102 @ ep 2)  6.1 s  ETA 1 min 44 s

Modes: `bar` on a terminal; `lines` where stderr is no terminal (a log, papermill, an ablation worker), so no bar
fragments end up in files: at most one line every LINE_EVERY_S seconds besides the first and the last; `off`.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import yaml

from ..config import ConfigError

try:
    from tqdm import tqdm  # plain text bars: readable in terminals

    HAVE_TQDM = True
except ImportError:  # a bare GPU machine (torch, numpy, pandas, pyyaml only) still trains and benches
    HAVE_TQDM = False

    class tqdm:  # noqa: N801  (a stand-in for tqdm.tqdm: iterates, shows nothing)
        def __init__(self, iterable=(), **_):
            self.iterable = iterable

        __iter__ = lambda self: iter(self.iterable)
        update = set_postfix = set_postfix_str = close = lambda self, *_, **__: None
        write = staticmethod(lambda msg, file=None: print(msg, file=file or sys.stdout, flush=True))


MODES = ("auto", "bar", "lines", "off")
LINE_EVERY_S = 20.0  # lines mode: seconds between epoch lines (the first and the last epoch always get one)
LOSS_EVERY_S = 0.5  # bar mode: seconds between readings of the running loss (each one syncs a GPU)


def duration(seconds: float) -> str:
    """Seconds as a person reads them: 12.3 -> '12 s', 185 -> '3 min 05 s', 4000 -> '1 h 06 min'."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def on_terminal() -> bool:
    """Whether stderr is an interactive terminal; False for files, pipes, notebooks."""
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def pick_mode(requested: str, quiet: bool, main: bool = True) -> str:
    """The progress mode a run uses: off when quiet or not rank 0; auto -> bar on a terminal, else lines."""
    if requested not in MODES:
        raise ConfigError(f"progress must be one of {', '.join(MODES)}, got {requested!r}")
    if quiet or not main:
        return "off"
    if requested == "auto":
        requested = "bar" if on_terminal() else "lines"
    return "lines" if requested == "bar" and not HAVE_TQDM else requested


class TrainProgress:
    """What one run shows while it trains (see the module doc); every method is a no-op in mode off."""

    def __init__(self, mode: str, label: str, epochs: int, batches: int):
        self.mode, self.label, self.epochs, self.batches = mode, label, epochs, batches
        self.bar = None
        self.epoch_seconds: list[float] = []  # this session's finished epochs, for the run's ETA
        self.last_line = self.loss_shown = -math.inf

    def start_epoch(self, epoch: int, done: int = 0) -> None:
        """A bar over the epoch's batches (bar mode), from `done` in a resumed epoch."""
        if self.mode == "bar":
            desc, kw = f"{self.label} ep {epoch}/{self.epochs}", dict(unit="batch", leave=False, dynamic_ncols=True)
            self.bar = tqdm(total=self.batches, initial=done, desc=desc, file=sys.stderr, **kw)

    def step(self, running_loss: Callable[[], float]) -> None:
        """One batch done; running_loss() (a GPU sync) is called only when the bar shows a new value: at most every
        LOSS_EVERY_S seconds, and at the epoch's last batch."""
        if self.bar is None:
            return
        now = time.monotonic()
        if now - self.loss_shown >= LOSS_EVERY_S or self.bar.n + 1 >= self.batches:
            self.loss_shown = now
            self.bar.set_postfix_str(f"loss {running_loss():.4f}", refresh=False)
        self.bar.update(1)

    def validating(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"{self.bar.postfix or ''}, validating".lstrip(", "))

    def end_epoch(self, row: dict, best: float, best_epoch: int, last: bool, budget_left: float | None = None) -> None:
        """Close the epoch's bar and write its line (lines mode: only if LINE_EVERY_S passed, or first or last)."""
        self.close()
        self.epoch_seconds.append(row["seconds"])
        now = time.monotonic()
        if self.mode == "bar" or (self.mode == "lines" and (last or now - self.last_line >= LINE_EVERY_S)):
            self.last_line = now
            self.write(self.epoch_line(row, best, best_epoch, last, budget_left))

    def epoch_line(self, row: dict, best: float, best_epoch: int, last: bool, budget_left: float | None) -> str:
        """'+scheduler s1 ep 3/20  loss 0.4987  val MAE 18.234 (best 18.102 @ ep 2)  6.1 s  ETA 1 min 44 s'."""
        epoch, val = row["epoch"], row["val_mae"]
        val_text = "val -" if math.isnan(val) else f"val MAE {val:.3f} (best {best:.3f} @ ep {best_epoch})"
        left = statistics.median(self.epoch_seconds) * (self.epochs - epoch)
        if budget_left is not None:
            left = min(left, max(budget_left, 0.0))
        took = f"{row['seconds']:.1f} s  " + ("done" if last else f"ETA {duration(left)}")
        return f"{self.label} ep {epoch}/{self.epochs}  loss {row['train_loss']:.4f}  {val_text}  {took}"

    def write(self, msg: str) -> None:  # one line to stderr, below the bar if one is shown
        if self.mode == "bar":
            tqdm.write(msg, file=sys.stderr)
        elif self.mode == "lines":
            print(msg, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def require_tensorboard():
    """torch's SummaryWriter class, or a ConfigError saying how to install the tensorboard package."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch.utils.tensorboard needs the tensorboard package
        raise ConfigError(
            "train.tensorboard is on but the tensorboard package is not installed: "
            "pip install tensorboard (or set train.tensorboard=false)"
        ) from None
    return SummaryWriter


class TensorBoardLog:
    """A run's scalars under <run_dir>/tensorboard/ (run_dir None: off): step/* (loss, lr), epoch/* (train_loss,
    val_mae, lr, seconds), test/* and val/* (the best weights' metrics). A resumed run adds an events file."""

    def __init__(self, run_dir: Path | None, config: dict):
        self.writer = None if run_dir is None else require_tensorboard()(log_dir=str(Path(run_dir) / "tensorboard"))
        if self.writer is not None:
            self.writer.add_text("config", "```\n" + yaml.safe_dump(config, sort_keys=False) + "```")

    def step(self, opt_step: int, loss: torch.Tensor, lr: float) -> None:
        """The step's last micro-batch loss (read here: a GPU sync per optimizer step, with TensorBoard only)."""
        if self.writer is not None:
            self.writer.add_scalar("step/loss", float(loss), opt_step)
            self.writer.add_scalar("step/lr", lr, opt_step)

    def epoch(self, row: dict) -> None:
        """One history row, flushed: a TensorBoard open on the folder sees it now."""
        if self.writer is None:
            return
        for key in ("train_loss", "val_mae", "lr", "seconds"):
            if not math.isnan(row[key]):  # val_mae is NaN on epochs without validation
                self.writer.add_scalar(f"epoch/{key}", row[key], row["epoch"])
        self.writer.flush()

    def final(self, metrics: dict, step: int) -> None:
        """The run's test and validation metrics (overall and at horizons 3, 6, 12)."""
        if self.writer is None:
            return
        for split, m in ((k, metrics[k]) for k in ("test", "val")):
            by_h = {f"mae_h{h}": m["by_horizon"][h]["mae"] for h in ("3", "6", "12") if h in m.get("by_horizon", {})}
            for key, value in {**{k: m[k] for k in ("mae", "rmse", "mape")}, **by_h}.items():
                self.writer.add_scalar(f"{split}/{key}", value, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class RunningLoss:
    """An epoch's training-loss sum on the device: a step adds to it without a host sync, read() syncs once where it
    is shown or saved. Summed in float64 in step order: the same number as adding up loss.item() on the host. It
    also keeps the first non-finite loss and its step, for the error."""

    def __init__(self, device: torch.device):
        self.device = torch.device("cpu") if device.type == "mps" else device  # MPS has no float64

    def start(self, loss_sum: float) -> None:
        """From the epoch's sum so far (0, or a resumed epoch's)."""
        self.sum = torch.tensor(loss_sum, dtype=torch.float64, device=self.device)
        self.bad = torch.tensor([-1.0, 0.0], dtype=torch.float64, device=self.device)  # (step, loss)

    def add(self, loss: torch.Tensor, step: int, n: int) -> None:
        """A micro-batch's mean loss over its n samples (step: the batch's index in the epoch)."""
        self.last = v = loss.detach().to(self.device, torch.float64)
        first = (self.bad[0] < 0) & ~torch.isfinite(v)
        self.bad = torch.where(first, torch.stack([torch.full_like(v, step), v]), self.bad)
        self.sum += v * n

    def read(self) -> tuple[float, tuple[int, float] | None]:
        """(the sum, (step, loss) of the first non-finite loss since start() or None)."""
        total, step, value = torch.cat([self.sum.view(1), self.bad]).tolist()
        return total, (int(step), value) if step >= 0 else None
