"""Where things live: the repo, the data directory and the outputs directory."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The data directory: $STLIB_DATA_DIR, else a user cache directory outside the repo."""
    env = os.environ.get("STLIB_DATA_DIR")
    if env:
        return Path(env).expanduser().resolve()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "stlib" / "data"


def output_dir() -> Path:
    """Where runs, figures and executed notebooks go: $STLIB_OUTPUT_DIR, else <repo>/outputs."""
    env = os.environ.get("STLIB_OUTPUT_DIR")
    return Path(env).expanduser().resolve() if env else REPO_ROOT / "outputs"


def resolve_params(path: str | os.PathLike) -> Path:
    """A params file path as given, else relative to the repo root (notebooks run from notebooks/)."""
    p = Path(path).expanduser()
    if p.exists() or p.is_absolute():
        return p
    return REPO_ROOT / p
