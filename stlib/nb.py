"""Small helpers the notebooks share: load the profile, find the output folders, save figures.

Where a notebook writes: run by the pipeline (`make run`, `python -m stlib.pipeline`, which sets STLIB_BATCH=1)
into outputs/<profile>/; run any other way (JupyterLab, nbval, papermill by hand) into
outputs/<profile>-interactive/, so that a notebook run by hand never overwrites the batch run's figures and
report. Run records (outputs/runs/) are shared: a configuration already trained is read back, not retrained.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .config import Profile, RunConfig, load_profile
from .paths import output_dir, resolve_params


@dataclass
class Context:
    """What a stage notebook needs: its profile, the base run config and where to write."""

    profile: Profile
    config: RunConfig
    stage: str
    out: Path  # outputs/<profile>/ (outputs/<profile>-interactive/ when run by hand)
    figures: Path  # <out>/figures/

    def figure_path(self, name: str) -> Path:
        return self.figures / f"{self.stage}_{name}.png"

    def save(self, fig, name: str, dpi: int = 110) -> Path:
        """Save a matplotlib figure as <out>/figures/<stage>_<name>.png."""
        path = self.figure_path(name)
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        return path


BATCH_ENV = "STLIB_BATCH"
INTERACTIVE_SUFFIX = "-interactive"


def batch() -> bool:
    """Whether this notebook runs under the pipeline (STLIB_BATCH=1) rather than by hand."""
    return os.environ.get(BATCH_ENV, "") == "1"


def profile_out(profile_name: str) -> Path:
    """The folder a stage notebook writes to: outputs/<profile>/ in a batch run, else outputs/<profile>-interactive/."""
    return output_dir() / (profile_name if batch() else profile_name + INTERACTIVE_SUFFIX)


PARAMS_ENV = "STLIB_PARAMS"


def setup(params_file: str, stage: str, overrides=()) -> Context:
    """Load and validate a params file for one stage notebook; create its output folders (profile_out).

    STLIB_PARAMS, when set, replaces params_file: `make test` runs nbval over the notebooks on the tiny smoke
    profile this way, with every other parameter as the notebook holds it."""
    if os.environ.get(PARAMS_ENV):
        params_file = os.environ[PARAMS_ENV]
        print(f"params file from {PARAMS_ENV}: {params_file}")
    profile = load_profile(resolve_params(params_file))
    config = profile.run_config(overrides=overrides, stage=stage)
    out = profile_out(profile.name)
    if not batch():
        print(f"run by hand: writing to {out} (the pipeline writes to {output_dir() / profile.name})")
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    return Context(profile, config, stage, out, figures)
