"""The loop's clocks: seconds per phase of a training step, and training time against train.time_budget_s."""

from __future__ import annotations

import time

import torch

PHASES = ("data", "forward", "backward", "optimizer")


class Timer:
    """Wall time per phase of a step. enabled (train.time_phases): on CUDA each lap synchronises the GPU so its work
    counts in its phase: four host syncs a step, which stall the CPU's queueing ahead of the GPU (a few % to tens of
    % of step time for small models); off, the laps are host time only. On the CPU the laps are exact either way."""

    def __init__(self, device: torch.device, enabled: bool = True, totals: dict | None = None):
        self.sync = torch.cuda.synchronize if device.type == "cuda" and enabled else (lambda: None)
        self.totals = totals if totals is not None else dict.fromkeys(PHASES, 0.0)
        self.t = time.perf_counter()

    def lap(self, phase: str) -> None:
        self.sync()
        now = time.perf_counter()
        self.totals[phase] += now - self.t
        self.t = now

    def restart(self) -> None:
        """Restart the lap clock: time since the last lap (a checkpoint write) counts in no phase."""
        self.sync()
        self.t = time.perf_counter()


class Budget:
    """Training seconds over every session of a run (validation included), against a budget (0 = none)."""

    def __init__(self, budget_s: float, spent_before: float = 0.0):
        self.budget_s, self.before, self.start = budget_s, spent_before, time.perf_counter()

    def spent(self) -> float:  # earlier sessions of a resumed run included
        return self.before + time.perf_counter() - self.start

    def fraction(self) -> float:  # the share spent (0 without a budget): what a budgeted cosine schedule follows
        return self.spent() / self.budget_s if self.budget_s else 0.0

    def over(self) -> bool:
        return bool(self.budget_s) and self.spent() >= self.budget_s

    def left(self) -> float | None:
        return self.budget_s - self.spent() if self.budget_s else None
