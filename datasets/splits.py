"""Deterministic train/validation splits of one folder (validation never reads test files)."""

from __future__ import annotations

import numpy as np

from datasets.errors import DataError

__all__ = ["split_train_val"]


def split_train_val(n: int, fraction: float = 0.1, seed: int = 0) -> tuple[list[int], list[int]]:
    """Seeded split of ``range(n)``: ``(train indices, val indices)``, each sorted.

    ``max(1, round(n * fraction))`` indices (at most ``n - 1``) go to validation, chosen by a
    permutation from ``numpy.random.default_rng(seed)``; the rest to training; ``fraction`` 0 keeps
    everything for training. Same ``(n, fraction, seed)``, same split on every machine.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    if fraction == 0.0:
        return list(range(n)), []
    if n < 2:
        raise DataError(f"need at least 2 items to split off a validation set, found {n}; add items")
    n_val = min(n - 1, max(1, round(n * fraction)))
    perm = np.random.default_rng(seed).permutation(n)
    return sorted(perm[n_val:].tolist()), sorted(perm[:n_val].tolist())
