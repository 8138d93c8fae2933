"""Print-ready network size: parameter count and multiply-accumulates (MACs) of one forward pass.

MACs come from ``torch.utils.flop_counter.FlopCounterMode`` (which counts 2 FLOPs per
multiply-accumulate of convolutions and matrix products; element-wise ops are not counted).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_parameters", "count_macs", "format_count", "describe_size"]


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameter elements."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def count_macs(module: nn.Module, *inputs: torch.Tensor) -> int:
    """MACs of ``module(*inputs)`` (convolutions and matrix products)."""
    with FlopCounterMode(display=False) as counter:
        module(*inputs)
    return counter.get_total_flops() // 2


def format_count(n: float) -> str:
    """``3438 -> '3.44K'``, ``3.3e6 -> '3.30M'``, ``1.2e9 -> '1.20G'``; below 1000 as is."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


def describe_size(module: nn.Module, example: torch.Tensor) -> str:
    """``"params 1.23M, MACs 4.56G at 1x3x256x256"`` for one example input."""
    macs = count_macs(module, example)
    shape = "x".join(str(s) for s in example.shape)
    return f"params {format_count(count_parameters(module))}, MACs {format_count(macs)} at {shape}"
