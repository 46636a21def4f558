"""Ctrl-C (SIGINT) and SIGTERM during training: the loop stops after the optimizer step in progress, writes last.pt
and raises Interrupted, whose one line says where the run stopped and the exact command that continues it. A second
Ctrl-C stops at once. Under torchrun the signals keep their default action (the ranks must stop together)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}  # 128 + the signal's number, as a shell reports it


class Interrupted(Exception):
    """Training stopped by a signal at a safe point (its last.pt written, when the run keeps one)."""

    def __init__(self, signame: str, run_dir: Path, where: str, saved: bool):
        self.signame, self.run_dir, self.exit_code = signame, run_dir, EXIT_CODES.get(signame, 1)
        then = (
            f"{run_dir / 'last.pt'} holds it; continue with: python -m stlib.train --resume {run_dir}"
            if saved
            else "the run keeps no checkpoint (train.save_checkpoint=false): nothing to resume"
        )
        super().__init__(f"{signame}: training stopped at {where}; {then}")


class StopRequest:
    """While entered (in the main thread of a single-process run), SIGINT and SIGTERM set `signame` for the loop."""

    def __init__(self, enabled: bool = True):
        self.signame: str | None = None
        self.enabled, self.before = enabled and threading.current_thread() is threading.main_thread(), {}

    def __enter__(self) -> StopRequest:
        if self.enabled:
            self.before = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum, frame) -> None:
        if self.signame is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: at once
        self.signame = signal.Signals(signum).name

    def __exit__(self, *exc) -> None:
        for sig, handler in self.before.items():
            signal.signal(sig, handler)
