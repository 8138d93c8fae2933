"""Deterministic train/validation splits of one folder (validation never reads test files)."""
from __future__ import annotations

import torch

__all__ = ["split_indices"]


def split_indices(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices ``0..n-1`` cut into (train, validation): a seeded permutation, the first
    ``max(1, round(n * fraction))`` items (none when ``fraction`` is 0) go to validation. Both lists
    are sorted; the cut depends only on ``(n, fraction, seed)``."""
    k = 0 if fraction <= 0 or n < 2 else min(n - 1, max(1, round(n * fraction)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(order[k:]), sorted(order[:k])
