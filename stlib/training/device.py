"""Where and how the work runs: the device, the autocast dtype, torch.compile, seeds, peak memory."""

from __future__ import annotations

import os
import random
import resource

import numpy as np
import torch

from ..config import ConfigError


def pick_device(name: str) -> torch.device:
    """train.device as a torch.device: auto picks cuda, then mps, then cpu."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
        return torch.device("mps" if mps else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device: unknown device {name!r} (use auto, cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is 'cuda' but no CUDA device is available (use train.device=auto)")
    return dev


def amp_dtype(amp: str, device: torch.device):
    """The autocast dtype for train.amp, or None for full precision. 'auto' picks bf16 where supported."""
    if amp != "auto":
        return {"off": None, "fp16": torch.float16, "bf16": torch.bfloat16}[amp]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    bf16 = torch.backends.mkldnn.is_available() and getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    return torch.bfloat16 if device.type == "cpu" and bf16 else None


def compile_model(model: torch.nn.Module, mode: str) -> torch.nn.Module:
    """train.compile: off (the model itself), default, reduce-overhead (CUDA graphs) or max-autotune."""
    return model if mode == "off" else torch.compile(model, mode=None if mode == "default" else mode)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory: allocated on CUDA since the last reset, else the process's peak RSS (over its whole life)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def resident_mb() -> float:
    """The process's resident memory now (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def reset_peak_resident() -> bool:
    """Reset the kernel's peak-resident counter (VmHWM) for peak_resident_mb; False where the kernel forbids it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_resident_mb() -> float:
    """The process's peak resident memory since the last reset_peak_resident (VmHWM), else over its life."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
