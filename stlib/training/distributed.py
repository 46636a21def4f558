"""torchrun: DistributedDataParallel, each rank on its slice of every global batch. In one process (rank 0 of a
world of 1) every helper here is the identity, so the loop reads the same with or without torchrun."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as td
from torch.nn.parallel import DistributedDataParallel


@dataclass
class Dist:
    """This process's place in a torchrun job (rank 0 of 1 without one)."""

    rank: int = 0
    world: int = 1
    owned: bool = False  # fit() started the process group, so fit() ends it

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: torch.device) -> tuple[Dist, torch.device]:
    """Join the torchrun process group if there is one (NCCL, one GPU per rank; gloo on CPU); the rank's device."""
    if not td.is_available() or (not td.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) <= 1):
        return Dist(), device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    owned = not td.is_initialized()
    if owned:
        td.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(td.get_rank(), td.get_world_size(), owned), device


def end_distributed(dist: Dist) -> None:
    if dist.owned:
        td.destroy_process_group()


def wrap_model(model: torch.nn.Module, dist: Dist, device: torch.device) -> torch.nn.Module:
    """The model a training step runs: DDP over the ranks (gradients all-reduced), or the model itself."""
    if dist.world == 1:
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def rank_slice(x: torch.Tensor, y: torch.Tensor, dist: Dist) -> tuple[torch.Tensor, torch.Tensor, float]:
    """This rank's contiguous slices (B, ...) -> (about B / world, ...) of a global batch and the weight of their mean
    loss: DDP averages the ranks' gradients, so a slice weighs len(slice) * world / B (1.0 in one process)."""
    if dist.world > 1:
        x, y, n = x.tensor_split(dist.world)[dist.rank], y.tensor_split(dist.world)[dist.rank], len(x)
        return x, y, len(x) * dist.world / n
    return x, y, 1.0


def all_reduce_sum(values: torch.Tensor, dist: Dist, device) -> torch.Tensor:
    """Element-wise sum over the ranks (through the device for NCCL)."""
    if dist.world == 1:
        return values
    t = values.to(device) if td.get_backend() == "nccl" else values.clone()
    td.all_reduce(t)
    return t.to(values.device)


def sum_over_ranks(loss_sum: float, count: int, dist: Dist, device) -> tuple[float, int]:
    """A running (sum, count) added up over the ranks: the whole batch's, not this rank's slice."""
    total = all_reduce_sum(torch.tensor([loss_sum, count], dtype=torch.float64), dist, device).tolist()
    return total[0], int(total[1])


def any_rank(flag: bool, dist: Dist, device) -> bool:
    """True on every rank when it is true on one (the ranks' clocks differ a little: all stop together)."""
    return bool(all_reduce_sum(torch.tensor([float(flag)]), dist, device).item() > 0)


def gather_objects(obj, dist: Dist) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every rank."""
    out = [obj] * dist.world
    if dist.world > 1:
        td.all_gather_object(out, obj)
    return out


def broadcast_object(obj, dist: Dist):
    """Rank 0's obj, on every rank."""
    box = [obj]
    if dist.world > 1:
        td.broadcast_object_list(box, src=0)
    return box[0]
