"""What a long-running command needs around its loop: periodic checkpoints and a clean stop.

``Stopper`` turns the first Ctrl-C or SIGTERM into a request that the loop honours at the next
step boundary (the command then writes its checkpoint and exits 130); a second Ctrl-C stops at
once. ``SaveClock`` says when a checkpoint is due: every ``every`` steps, or about every
``minutes`` of wall time when ``every`` is None.
"""
from __future__ import annotations

import signal
import sys
import time
from types import FrameType
from typing import Any


class Stopper:
    """Context manager: ``requested`` becomes True on SIGINT/SIGTERM (handlers restored on exit)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        name = signal.Signals(signum).name
        print(f"\n{name}: stopping after this step and writing the checkpoint (Ctrl-C again to quit at once)",
              file=sys.stderr, flush=True)

    def __enter__(self) -> "Stopper":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave the defaults
                pass
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class SaveClock:
    """``due(step)``: a checkpoint is due every ``every`` steps, or every ``minutes`` of wall time."""

    def __init__(self, every: int | None, minutes: float) -> None:
        self.every, self.seconds = every, minutes * 60.0
        self.last = time.monotonic()

    def due(self, step: int) -> bool:
        if self.every is not None:
            return step % self.every == 0
        return time.monotonic() - self.last >= self.seconds

    def saved(self) -> None:
        self.last = time.monotonic()
