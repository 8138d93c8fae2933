"""Pieces of a run's state that both search and train save and restore."""
from __future__ import annotations

import math
import time
from typing import Any

import torch


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Averages:
    """Running means of per-step statistics over an epoch (saved with checkpoints)."""

    def __init__(self, state: dict[str, list[float]] | None = None) -> None:
        self.sums: dict[str, list[float]] = dict(state or {})
        self.start = time.perf_counter()

    def add(self, stats: dict[str, Any], suffix: str = "") -> None:
        for k, v in stats.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step" and math.isfinite(v):
                s = self.sums.setdefault(k + suffix, [0.0, 0])
                s[0] += float(v)
                s[1] += 1

    def means(self) -> dict[str, float]:
        return {k: s / n for k, (s, n) in self.sums.items() if n}

    def state(self) -> dict[str, list[float]]:
        return {k: list(v) for k, v in self.sums.items()}

    def elapsed(self) -> float:
        return time.perf_counter() - self.start
