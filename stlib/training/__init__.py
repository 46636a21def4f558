"""Training: from a RunConfig to a trained, scored and recorded run.

    python -m stlib.train --params params/default.yaml [--preset stid] [--set train.epochs=5 ...]
    run = fit(cfg)                       # the same loop from Python; a Run (history, metrics, best model)

The package owns everything between a validated config and a run record, one concern a module, read
in this order:

- loop        fit(): set up, train one epoch (train_step: one batch, one optimizer step), validate, test; the
              loop a newcomer reads first
- schedule    the learning rate: one pure function for warmup, multistep, cosine and the plateau rule
- scoring     the masked training loss, the masked metrics of a split, the weight average (train.ema)
- checkpoint  last.pt (the whole training state), exact resume, the run directory a run writes to
- distributed torchrun: the process group, each rank's slice of a batch, sums over the ranks
- device      the device, the autocast dtype, torch.compile, seeds, peak memory
- timing      seconds per step phase, training time against train.time_budget_s
- progress    what a run shows while it trains (a bar, epoch lines, TensorBoard)
- run         Run (a finished run, also read back from its record) and the files that close a run

It writes run records through stlib.reporting.records and never reads the reporting side (stlib.reporting.results).
"""

from .checkpoint import CHECKPOINT_EVERY, resume_config
from .device import amp_dtype, pick_device
from .distributed import Dist
from .loop import fit
from .run import Run
from .schedule import Plateau, cosine_factor, learning_rate, warmup_factor
from .scoring import compute_loss, ema_model, evaluate

__all__ = [
    "CHECKPOINT_EVERY",
    "Dist",
    "Plateau",
    "Run",
    "amp_dtype",
    "compute_loss",
    "cosine_factor",
    "ema_model",
    "evaluate",
    "fit",
    "learning_rate",
    "pick_device",
    "resume_config",
    "warmup_factor",
]
