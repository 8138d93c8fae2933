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
from typing import Any, Iterable, Iterator


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


def until_stopped(batches: Iterable[Any], stop: Stopper) -> Iterator[Any]:
    """``batches`` until exhausted; a loader whose worker processes died with the stop signal
    (SIGTERM reaches the whole process group) ends the iteration instead of the run, so that the
    command still writes its checkpoint at the last completed step."""
    it = iter(batches)
    while True:
        try:
            item = next(it)
        except StopIteration:
            return
        except RuntimeError:
            if stop.requested:
                return
            raise
        yield item


#: A run projected to last longer than this (seconds) is announced with ``Forecast``.
LONG_RUN_S = 3600.0


class Forecast:
    """One line, once, when a run looks long: after ``after`` timed steps (the first step, which
    pays for warm-up, is not timed), the seconds per step times the steps left; printed only when
    that exceeds ``LONG_RUN_S``, with ``--device cuda`` suggested on a CPU."""

    def __init__(self, total: int, done: int, device: str, after: int = 1) -> None:
        self.total, self.device, self.after = total, device, after
        self.first = done + 1  # the timing starts once this step has run
        self.start: float | None = None
        self.said = False

    def message(self, step: int, now: float | None = None) -> str | None:
        """Call after each step (``step``: steps run so far); the line to print, at most once."""
        now = time.monotonic() if now is None else now
        if self.said or step < self.first:
            return None
        if self.start is None:
            self.start = now
            return None
        timed = step - self.first
        if timed < self.after:
            return None
        self.said = True
        per_step = (now - self.start) / timed
        left = per_step * (self.total - step)
        if left <= LONG_RUN_S:
            return None
        hours = left / 3600.0
        line = (f"about {hours:.1f} hours to go at {per_step:.2f} s/step ({self.total - step:,} steps left) "
                f"on {self.device}")
        if self.device == "cpu":
            line += ("; on a machine with an NVIDIA GPU pass --device cuda (or lower --epochs / --max-steps "
                     "for a trial run)")
        return line
