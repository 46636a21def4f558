"""Data layer: `load_dataset(name, **options)` -> Dataset, and batches for training.

Names: "synthetic" (embedded default), "pems08-tail" (the benchmark protocol), "PEMS03/04/07/08" (public files in
the data directory), "METR-LA" / "PEMS-BAY" (DCRNN's files in the data directory), "file" (your own data).
"""

from __future__ import annotations

from functools import partial

from ..config import DATASET_OPTIONS, DCRNN_NAMES, LABEL_OPTIONS, PEMS_NAMES, check_applies, dataset_kind
from .batches import DeviceWindows, WindowDataset, make_batches
from .core import Dataset, chronological_splits
from .sources import download, load_dcrnn, load_file, load_pems, load_pems08_tail, load_synthetic

DATASETS = ("synthetic", "pems08-tail", *PEMS_NAMES, *DCRNN_NAMES, "file")


def load_dataset(name: str = "synthetic", **options) -> Dataset:
    """Load a dataset by name with the options its kind takes (config.DATASET_OPTIONS); another is an error."""
    kind = dataset_kind(name)
    if kind is None:
        raise ValueError(f"unknown dataset '{name}' (known: {', '.join(DATASETS)})")
    check_applies("data", name, options, "load_dataset")
    labels = {k: options.pop(k) for k in LABEL_OPTIONS if k in options}
    train_days, lags = options.pop("train_days", None), options.pop("lags", None)
    loaders = {"synthetic": load_synthetic, "pems08-tail": load_pems08_tail, "file": load_file}
    loaders |= {"PEMS": partial(load_pems, name.upper()), "DCRNN": partial(load_dcrnn, name.upper())}
    ds = loaders[kind](**options)
    for key, value in labels.items():
        if value is not None:
            setattr(ds, key, value)
    ds = ds if train_days is None else ds.last_training_days(train_days)
    return ds.with_lags(lags) if lags else ds


def from_config(cfg) -> Dataset:
    """Load the dataset a DataConfig describes, with the options its kind takes."""
    kind = dataset_kind(cfg.name)
    opts = {k: getattr(cfg, k) for k in DATASET_OPTIONS[kind]} if kind else {}
    return load_dataset(cfg.name, **opts)


__all__ = ["Dataset", "DeviceWindows", "WindowDataset", "make_batches", "load_dataset", "from_config", "download"]
__all__ += ["chronological_splits", "DATASETS"]
