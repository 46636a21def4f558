"""Training: from a RunConfig to a trained, scored and recorded run (`run = fit(cfg)`, `python -m stlib.train`).

One concern a module: loop (fit, read it first), schedule (the learning rate), scoring (loss, metrics, the weight
average), checkpoint (the run directory: last.pt, exact resume, Run), distributed (torchrun), device, timing and
progress. It writes run records through stlib.reporting.records.
"""

from .checkpoint import CHECKPOINT_EVERY, Run, resume_config
from .device import amp_dtype, pick_device
from .distributed import Dist
from .loop import fit
from .schedule import Plateau, cosine_factor, learning_rate, warmup_factor
from .scoring import compute_loss, ema_model, evaluate

__all__ = ["CHECKPOINT_EVERY", "Dist", "Plateau", "Run", "amp_dtype", "compute_loss", "cosine_factor", "ema_model"]
__all__ += ["evaluate", "fit", "learning_rate", "pick_device", "resume_config", "warmup_factor"]
