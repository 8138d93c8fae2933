"""Measuring what a computation keeps for backward: the memory the theory of each method speaks of."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


class SavedBytes:
    """Bytes of tensors held by autograd graphs for backward: ``live`` now, ``peak`` at most,
    ``total`` ever saved while the meter was open."""

    def __init__(self) -> None:
        self.live = 0
        self.peak = 0
        self.total = 0


class _Held:
    """A saved tensor; its size leaves ``live`` when the graph that holds it is freed."""

    __slots__ = ("tensor", "size", "meter")

    def __init__(self, tensor: torch.Tensor, meter: SavedBytes) -> None:
        self.tensor, self.meter = tensor, meter
        self.size = tensor.numel() * tensor.element_size()
        meter.live += self.size
        meter.total += self.size
        meter.peak = max(meter.peak, meter.live)

    def __del__(self) -> None:
        self.meter.live -= self.size


@contextmanager
def saved_tensor_bytes() -> Iterator[SavedBytes]:
    """Meter the tensors autograd saves for backward inside the block: ``peak`` is the most the
    graphs held at once (the trajectory of ``rad``; one step for the untracked part of ``trad``;
    nothing per iteration for ``cg``). Same on CPU and GPU; storage shared by several saves is
    counted each time it is saved."""
    meter = SavedBytes()
    with torch.autograd.graph.saved_tensors_hooks(lambda t: _Held(t, meter), lambda h: h.tensor):
        yield meter
