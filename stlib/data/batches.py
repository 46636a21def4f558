"""Batches of windows, two ways: gathered on the device from one tensor, or a classic DataLoader.

Both yield x (B, in_steps, N, 3) float32 model inputs [z-scored value, time of day, day of week] and
y (B, out_steps, N, 1) targets in original units, already on the training device. The order of an
epoch is a pure function of (seed, epoch), so a run can be resumed mid-way.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from .core import Dataset


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool) -> torch.Tensor:
    """(n,) the order of an epoch's windows: a seeded permutation, or 0..n-1."""
    if not shuffle:
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=g)


def check_skip(skip: int, num_batches: int) -> None:
    """skip must be a batch count 0..num_batches (num_batches = the epoch is already done)."""
    if not 0 <= skip <= num_batches:
        raise ValueError(f"skip={skip} must be between 0 and the {num_batches} batches of an epoch")


class DeviceWindows:
    """All windows of a split gathered from one device-resident tensor by index arithmetic."""

    def __init__(self, ds: Dataset, split: str, batch_size: int, device, shuffle=False, seed=0, drop_last=False):
        self.device = torch.device(device)
        self.feats = torch.from_numpy(ds.features()).to(self.device)  # (T, N, 3)
        self.target = torch.from_numpy(ds.target.astype("float32")).to(self.device)  # (T, N)
        self.starts = torch.as_tensor(ds.splits[split], dtype=torch.long, device=self.device)  # (S,)
        self.in_off = torch.arange(ds.in_steps, device=self.device)  # (in,)
        self.out_off = torch.arange(ds.in_steps, ds.window, device=self.device)  # (out,)
        self.batch_size, self.shuffle, self.seed, self.drop_last = batch_size, shuffle, seed, drop_last

    def __len__(self) -> int:
        n, b = len(self.starts), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def num_samples(self) -> int:
        return len(self) * self.batch_size if self.drop_last else len(self.starts)

    def epoch(self, epoch: int = 0, skip: int = 0):
        """Iterate the batches of one epoch, starting after `skip` batches."""
        check_skip(skip, len(self))
        order = epoch_order(len(self.starts), self.seed, epoch, self.shuffle).to(self.device)
        for i in range(skip, len(self)):
            s = self.starts[order[i * self.batch_size : (i + 1) * self.batch_size]]  # (B,)
            x = self.feats[s[:, None] + self.in_off]  # (B, in, N, 3)
            y = self.target[s[:, None] + self.out_off].unsqueeze(-1)  # (B, out, N, 1)
            yield x, y

    __iter__ = epoch


class WindowDataset(TorchDataset):
    """One window per item, from host memory (the classic DataLoader path)."""

    def __init__(self, ds: Dataset, split: str):
        self.feats = torch.from_numpy(ds.features())  # (T, N, 3)
        self.target = torch.from_numpy(ds.target.astype("float32"))  # (T, N)
        self.starts = ds.splits[split]
        self.in_steps, self.window = ds.in_steps, ds.window

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i):
        s = int(self.starts[i])
        x = self.feats[s : s + self.in_steps]  # (in, N, 3)
        y = self.target[s + self.in_steps : s + self.window].unsqueeze(-1)  # (out, N, 1)
        return x, y


class _OrderSampler(torch.utils.data.Sampler):
    def __init__(self, order):
        self.order = order

    def __iter__(self):
        return iter(self.order.tolist())

    def __len__(self):
        return len(self.order)


class LoaderWindows:
    """torch DataLoader over WindowDataset with num_workers / pin_memory / prefetch_factor."""

    def __init__(
        self,
        ds: Dataset,
        split: str,
        batch_size: int,
        device,
        shuffle=False,
        seed=0,
        drop_last=False,
        num_workers=0,
        pin_memory=False,
        prefetch_factor=2,
    ):
        self.items = WindowDataset(ds, split)
        self.device = torch.device(device)
        self.batch_size, self.shuffle, self.seed, self.drop_last = batch_size, shuffle, seed, drop_last
        self.num_workers, self.prefetch_factor = num_workers, prefetch_factor
        self.pin_memory = pin_memory and self.device.type == "cuda"

    def __len__(self) -> int:
        n, b = len(self.items), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def num_samples(self) -> int:
        return len(self) * self.batch_size if self.drop_last else len(self.items)

    def epoch(self, epoch: int = 0, skip: int = 0):
        """Iterate the batches of one epoch, starting after `skip` batches."""
        check_skip(skip, len(self))
        order = epoch_order(len(self.items), self.seed, epoch, self.shuffle)[skip * self.batch_size :]
        loader = DataLoader(
            self.items,
            batch_size=self.batch_size,
            sampler=_OrderSampler(order),
            drop_last=self.drop_last,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            prefetch_factor=self.prefetch_factor if self.num_workers > 0 else None,
            persistent_workers=False,
            # its own seeded generator: starting an epoch draws nothing from the global RNG
            generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch),
        )
        for x, y in loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    __iter__ = epoch


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
    if loader == "device":
        return DeviceWindows(ds, split, batch_size, device, shuffle, seed, drop_last)
    if loader == "dataloader":
        return LoaderWindows(
            ds, split, batch_size, device, shuffle, seed, drop_last, num_workers, pin_memory, prefetch_factor
        )
    raise ValueError(f"loader must be 'device' or 'dataloader', got {loader!r}")
