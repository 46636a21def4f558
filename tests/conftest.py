"""Shared fixtures: small datasets and configs that train in well under a second per epoch."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from stlib.config import RunConfig, build_run_config, replace
from stlib.data import Dataset, chronological_splits
from stlib.data.synthetic import generate

torch.set_num_threads(1)  # tiny models: one thread is as fast and immune to oversubscription

SHARED_DATA = Path(os.environ.get("STLIB_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
HAVE_PEMS08 = (SHARED_DATA / "pems08_tail" / "PEMS08_flow_tail.npz").exists()
needs_pems08 = pytest.mark.skipif(
    not HAVE_PEMS08,
    reason=f"pems08_tail not found under {SHARED_DATA} (set STLIB_DATA_DIR to the folder holding pems08_tail/)",
)


@pytest.fixture(autouse=True)
def _isolated_outputs(tmp_path, monkeypatch):
    """Every test writes its runs and ledger into its own temp folder."""
    monkeypatch.setenv("STLIB_OUTPUT_DIR", str(tmp_path / "outputs"))


def tiny_dataset(num_sensors=6, num_days=3, seed=0, missing_share=0.005) -> Dataset:
    """A small synthetic dataset built directly (missing share selectable)."""
    series, start, edges = generate(num_sensors=num_sensors, num_days=num_days, seed=seed, missing_share=missing_share)
    splits = chronological_splits(series.shape[0], 24)
    return Dataset("tiny", series, start, 5, edges, splits)


@pytest.fixture(scope="session")
def tiny() -> Dataset:
    return tiny_dataset()


@pytest.fixture(scope="session")
def tiny_full() -> Dataset:
    """No missing values, and a train split of exactly 8 x 64 windows (for exact-equality tests)."""
    ds = tiny_dataset(missing_share=0.0)
    ds.splits = {"train": np.arange(512), "val": np.arange(512, 600), "test": np.arange(600, 700)}
    return ds


def tiny_config(**dotted) -> RunConfig:
    """A fast config: small encoder-decoder, 2 epochs, quiet, no checkpoint file."""
    tree = {
        "stage": "test",
        "data": {"name": "synthetic", "num_sensors": 6, "num_days": 3},
        "model": {
            "name": "encdec",
            "d_model": 16,
            "n_heads": 2,
            "encoder_depth": 1,
            "decoder_depth": 1,
            "dropout": 0.0,
            "use_denoising": False,
        },
        "train": {"epochs": 2, "batch_size": 64, "lr": 0.003, "quiet": True, "save_checkpoint": False},
    }
    # the overrides as a layer on top: a model switched to (model__name) keeps the small sizes it takes
    return replace(build_run_config(tree), **{k.replace("__", "."): v for k, v in dotted.items()})


def assert_frame_close(a: pd.DataFrame, b: pd.DataFrame, cols) -> None:
    for c in cols:
        np.testing.assert_allclose(a[c].to_numpy(), b[c].to_numpy(), rtol=1e-6, err_msg=c)
