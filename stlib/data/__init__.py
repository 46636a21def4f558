"""Data layer: `load_dataset(name, **options)` -> Dataset, and batches for training.

Names: "synthetic" (embedded default), "pems08-tail" (the benchmark protocol), "PEMS03/04/07/08"
(public files in the data directory), "METR-LA" / "PEMS-BAY" (DCRNN's files in the data directory),
"file" (your own data).
"""

from __future__ import annotations

from .batches import DeviceWindows, WindowDataset, make_batches
from .core import Dataset, chronological_splits
from .sources import (DCRNN_NAMES, PEMS_NAMES, download, load_dcrnn, load_file, load_pems, load_pems08_tail,
                      load_synthetic)

DATASETS = ("synthetic", "pems08-tail", *PEMS_NAMES, *DCRNN_NAMES, "file")
LABELS = ("value_name", "unit")  # options that only relabel the target, for every dataset


def load_dataset(name: str = "synthetic", **options) -> Dataset:
    """Load a dataset by name; options as in DataConfig (num_sensors, seed, path, edges, split, ...)."""
    labels = {k: options.pop(k) for k in LABELS if options.get(k) is not None}
    ds = _load(name, **options)
    for key, value in labels.items():
        setattr(ds, key, value)
    return ds


def _load(name: str, **options) -> Dataset:
    if name == "synthetic":
        return load_synthetic(**options)
    if name == "pems08-tail":
        return load_pems08_tail(**options)
    if name.upper() in PEMS_NAMES:
        return load_pems(name.upper(), **options)
    if name.upper() in DCRNN_NAMES:
        return load_dcrnn(name.upper(), **options)
    if name == "file":
        return load_file(**options)
    raise ValueError(f"unknown dataset '{name}' (known: {', '.join(DATASETS)})")


def from_config(cfg) -> Dataset:
    """Load the dataset a DataConfig describes."""
    opts = {k: v for k, v in vars(cfg).items() if k != "name"}
    return load_dataset(cfg.name, **opts)


__all__ = ["Dataset", "DeviceWindows", "WindowDataset", "make_batches", "load_dataset", "from_config",
           "download", "chronological_splits", "DATASETS"]
