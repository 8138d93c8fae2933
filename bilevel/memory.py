"""Measuring what a computation keeps for backward: the memory the theory of each method speaks of."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


class SavedBytes:
    """Bytes of tensors the autograd graph saved for backward while the context was open."""

    def __init__(self) -> None:
        self.total = 0


@contextmanager
def saved_tensor_bytes() -> Iterator[SavedBytes]:
    """Count the bytes of every tensor autograd saves for backward inside the block (the memory a
    method's graph holds: the trajectory of ``rad``, nothing per iteration for ``cg``). Same on CPU
    and GPU; storage shared by several saves is counted each time it is saved."""
    meter = SavedBytes()

    def pack(t: torch.Tensor) -> torch.Tensor:
        meter.total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield meter
