"""Print-ready size of a fusion network: parameter count and multiply-accumulates per image."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_parameters", "count_macs", "format_count"]


def count_parameters(model: nn.Module, include_arch: bool = False) -> int:
    """Number of trainable parameters (architecture weights ``alphas.*`` excluded unless asked)."""
    return sum(p.numel() for n, p in model.named_parameters()
               if p.requires_grad and (include_arch or not n.startswith("alphas.")))


@torch.no_grad()
def count_macs(model: nn.Module, height: int = 256, width: int = 256) -> int:
    """MACs of one forward pass on a ``[1, 1, height, width]`` infrared/visible pair (FLOPs / 2,
    counted by ``torch.utils.flop_counter.FlopCounterMode``: convolutions and matrix products)."""
    p = next(model.parameters())
    x = torch.rand(1, 1, height, width, device=p.device, dtype=p.dtype)
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            model(x, x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def format_count(n: int) -> str:
    """``1234 -> '1.23K'``, ``3.4e6 -> '3.40M'``, ``5e9 -> '5.00G'``."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)
