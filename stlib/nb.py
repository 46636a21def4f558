"""Small helpers the notebooks share: load the profile, find the output folders, save figures."""

from __future__ import annotations

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
    out: Path  # outputs/<profile>/
    figures: Path  # outputs/<profile>/figures/

    def figure_path(self, name: str) -> Path:
        return self.figures / f"{self.stage}_{name}.png"

    def save(self, fig, name: str, dpi: int = 110) -> Path:
        """Save a matplotlib figure as outputs/<profile>/figures/<stage>_<name>.png."""
        path = self.figure_path(name)
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        return path


def setup(params_file: str, stage: str, overrides=()) -> Context:
    """Load and validate a params file for one stage notebook; create its output folders."""
    profile = load_profile(resolve_params(params_file))
    config = profile.run_config(overrides=overrides, stage=stage)
    out = output_dir() / profile.name
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    return Context(profile, config, stage, out, figures)
