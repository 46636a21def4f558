"""Batches of windows, gathered on the device from one tensor or by a classic DataLoader: x (B, in_steps, N, 3)
float32 inputs [z-scored value, time of day, day of week] (input_steps with data.lags), y (B, out_steps, N, 1) targets in original units, on the
training device. An epoch's order is a pure function of (seed, epoch), so a run can resume mid-way.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from .core import Dataset


def _generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool) -> torch.Tensor:
    """(n,) the order of an epoch's windows: a seeded permutation, or 0..n-1."""
    return torch.randperm(n, generator=_generator(seed, epoch)) if shuffle else torch.arange(n)


class _Windows:
    """The batch count and the epoch order of one split's windows."""

    def __init__(self, ds: Dataset, split: str, batch_size: int, device, shuffle: bool, seed: int, drop_last: bool):
        self.device, self.num_windows = torch.device(device), len(ds.splits[split])
        self.batch_size, self.shuffle, self.seed, self.drop_last = batch_size, shuffle, seed, drop_last

    def __len__(self) -> int:
        n, b = self.num_windows, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def num_samples(self) -> int:
        return len(self) * self.batch_size if self.drop_last else self.num_windows

    def order(self, epoch: int, skip: int) -> torch.Tensor:
        """The epoch's window order; skip must be a batch count 0..len(self) (len = the epoch is already done)."""
        if not 0 <= skip <= len(self):
            raise ValueError(f"skip={skip} must be between 0 and the {len(self)} batches of an epoch")
        return epoch_order(self.num_windows, self.seed, epoch, self.shuffle)

    def __iter__(self):
        return self.epoch()


class DeviceWindows(_Windows):
    """All windows of a split gathered from one device-resident tensor by index arithmetic."""

    def __init__(self, ds: Dataset, split: str, batch_size: int, device, shuffle=False, seed=0, drop_last=False):
        super().__init__(ds, split, batch_size, device, shuffle, seed, drop_last)
        feats, pad = ds.padded_features()
        self.feats = torch.from_numpy(feats).to(self.device)  # (pad + T, N, 3): pad rows before row 0 (data.lags)
        self.target = torch.from_numpy(ds.target.astype("float32")).to(self.device)  # (T, N)
        self.starts = torch.as_tensor(ds.splits[split], dtype=torch.long, device=self.device)  # (S,)
        self.in_off = torch.as_tensor(ds.input_offsets() + pad, device=self.device)  # (input_steps,) into feats
        self.out_off = torch.arange(ds.in_steps, ds.window, device=self.device)  # (out,)

    def epoch(self, epoch: int = 0, skip: int = 0):
        """Iterate the batches of one epoch, starting after `skip` batches."""
        order = self.order(epoch, skip).to(self.device)
        for i in range(skip, len(self)):
            s = self.starts[order[i * self.batch_size : (i + 1) * self.batch_size]]  # (B,)
            yield self.feats[s[:, None] + self.in_off], self.target[s[:, None] + self.out_off].unsqueeze(-1)


class WindowDataset(TorchDataset):
    """One window per item, from host memory (the classic DataLoader path)."""

    def __init__(self, ds: Dataset, split: str):
        feats, pad = ds.padded_features()
        self.feats = torch.from_numpy(feats)  # (pad + T, N, 3)
        self.target = torch.from_numpy(ds.target.astype("float32"))  # (T, N)
        self.starts, self.in_off = ds.splits[split], torch.from_numpy(ds.input_offsets() + pad)
        self.in_steps, self.window = ds.in_steps, ds.window

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i):
        s = int(self.starts[i])  # x (in, N, 3), y (out, N, 1)
        return self.feats[s + self.in_off], self.target[s + self.in_steps : s + self.window].unsqueeze(-1)


class LoaderWindows(_Windows):
    """torch DataLoader over WindowDataset with num_workers / pin_memory / prefetch_factor."""

    def __init__(
        self, ds, split, batch_size, device, shuffle, seed, drop_last, num_workers, pin_memory, prefetch_factor
    ):
        super().__init__(ds, split, batch_size, device, shuffle, seed, drop_last)
        self.items, self.num_workers, self.prefetch_factor = WindowDataset(ds, split), num_workers, prefetch_factor
        self.pin_memory = pin_memory and self.device.type == "cuda"

    def epoch(self, epoch: int = 0, skip: int = 0):
        """Iterate the batches of one epoch, starting after `skip` batches."""
        order = self.order(epoch, skip)[skip * self.batch_size :]
        loader = DataLoader(
            self.items,
            batch_size=self.batch_size,
            sampler=order.tolist(),
            drop_last=self.drop_last,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            prefetch_factor=self.prefetch_factor if self.num_workers > 0 else None,
            persistent_workers=False,
            generator=_generator(self.seed, epoch),  # its own: starting an epoch draws nothing from the global RNG
        )
        for x, y in loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


def make_batches(
    ds: Dataset,
    split: str,
    batch_size: int,
    device="cpu",
    shuffle=False,
    seed=0,
    drop_last=False,
    loader="device",
    num_workers=0,
    pin_memory=False,
    prefetch_factor=2,
):
    """Batches of one split: loader="device" (index arithmetic on the device) or "dataloader"."""
    if split not in ds.splits:
        raise ValueError(f"unknown split '{split}' (have: {', '.join(ds.splits)})")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if loader not in ("device", "dataloader"):
        raise ValueError(f"loader must be 'device' or 'dataloader', got {loader!r}")
    if loader == "device":
        return DeviceWindows(ds, split, batch_size, device, shuffle, seed, drop_last)
    return LoaderWindows(
        ds, split, batch_size, device, shuffle, seed, drop_last, num_workers, pin_memory, prefetch_factor
    )
