"""The trainer's command line (the loop itself is stlib.training).

    python -m stlib.train --params params/default.yaml [--preset stid] [--set train.epochs=5 ...]
    python -m stlib.train --resume outputs/runs/<stage>/<run-id>      # continue a killed run exactly
    torchrun --nproc_per_node=K -m stlib.train --params ...            # K processes, one model (DDP)

A run trains on the train split, validates every `validate_every` epochs, keeps the best validation
weights, scores them on test and writes a run record (stlib.reporting.records). With train.save_checkpoint the
record also holds last.pt, the whole training state, written at every epoch end and every
`checkpoint_every` optimizer steps: a run killed at any moment resumes and ends with the same numbers.
While it trains a run shows a bar over each epoch's batches on a terminal, or one line per epoch at most
in logs, notebooks and ablation workers, or nothing with train.quiet; train.tensorboard adds TensorBoard
scalars under <run_dir>/tensorboard/.

The names of stlib.training are importable from here too (`from stlib.train import fit, Run`).
"""

from __future__ import annotations

import argparse
import os
import sys

from .config import ConfigError, load_profile
from .paths import resolve_params

# the names the library, notebooks and tests import from here (stlib.training is their home)
from .training import *  # noqa: F403
from .training import CHECKPOINT_EVERY, fit, resume_config
from .training import __all__ as _training_names
from .training.interrupt import Interrupted

__all__ = [*_training_names, "main"]


def main(argv=None) -> int:
    """python -m stlib.train: train one run (or --resume one); exit 0, or 2 / 3 / 4 with one error line."""
    ap = argparse.ArgumentParser(
        prog="python -m stlib.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--params", default="params/default.yaml", help="params profile (YAML)")
    ap.add_argument("--preset", help="a named preset of the params file (e.g. stid)")
    ap.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dotted override, e.g. --set model.name=stid --set train.epochs=5",
    )
    ap.add_argument("--stage", help="record under outputs/runs/<stage>/ (default: the params' stage)")
    ap.add_argument("--quiet", action="store_true", help="no progress output (bar or epoch lines)")
    ap.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run from its last.pt, in the same record")
    ap.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="N",
        help=f"write last.pt every N optimizer steps too (default {CHECKPOINT_EVERY}; 0 = epoch ends only)",
    )
    args = ap.parse_args(argv)
    try:
        if args.resume:
            if args.preset or args.overrides or args.stage:
                raise ConfigError(
                    "--resume continues a run with the config it started with: drop --preset, --set and --stage"
                )
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
    except Interrupted as e:  # Ctrl-C / SIGTERM: last.pt written, the resume command in the line
        return _fail(e, e.exit_code)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 prints
        t = run.metrics["test"]
        print(
            f"test MAE {t['mae']:.3f}  RMSE {t['rmse']:.3f}  MAPE {t['mape']:.2f}%  "
            f"(best epoch {run.metrics['best_epoch']}, {run.metrics['train_seconds']:.0f} s)"
        )
        print(run.dir)
    return 0


def _fail(e: Exception, code: int) -> int:
    """Print one clear error line (naming the rank under torchrun); return the exit code."""
    rank = f"[rank {os.environ['RANK']}] " if int(os.environ.get("WORLD_SIZE", "1")) > 1 else ""
    print(f"{rank}error: {e}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
