"""The RUAS candidate operations (Liu et al., "Retinex-inspired Unrolling with Cooperative Prior
Architecture Search for Low-light Image Enhancement", CVPR 2021).

``RUAS_OPS`` maps a primitive name to a factory ``(C_in, C_out, stride=1, affine=True) -> nn.Module``
(the signature of ``nas.ops.OPS``, so ``nas.mixed_op.MixedOp`` accepts it). As in the RUAS code
(``operations.py``): every conv has a bias, padding keeps the size, there is NO normalisation and
NO activation inside an op (the cell applies LeakyReLU), ``dil`` means dilation 2, and ``res``
adds the input (``conv(x) + x``). ``affine`` is accepted for signature compatibility and ignored;
only ``stride = 1`` exists in this space. Every op maps ``[N, C_in, H, W] -> [N, C_out, H, W]``;
``skip_connect`` and the residual ops need ``C_in == C_out``.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

__all__ = ["RUAS_OPS", "RUAS_PRIMITIVES", "ResConv", "ruas_conv"]

OpFactory = Callable[..., nn.Module]

#: The RUAS search space, in the order of the mixing weights (RUAS ``genotypes.PRIMITIVES``).
RUAS_PRIMITIVES: list[str] = [
    "skip_connect",
    "conv_1x1",
    "conv_3x3",
    "dilconv_3x3",
    "resconv_1x1",
    "resconv_3x3",
    "resdilconv_3x3",
]


def ruas_conv(C_in: int, C_out: int, kernel_size: int, dilation: int = 1) -> nn.Conv2d:
    """Size-preserving conv with bias: ``[N, C_in, H, W] -> [N, C_out, H, W]``."""
    padding = dilation * (kernel_size - 1) // 2
    return nn.Conv2d(C_in, C_out, kernel_size, padding=padding, dilation=dilation, bias=True)


class ResConv(nn.Module):
    """``conv(x) + x``: ``[N, C, H, W] -> [N, C, H, W]``."""

    def __init__(self, C: int, kernel_size: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv = ruas_conv(C, C, kernel_size, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + x


def _check(name: str, C_in: int, C_out: int, stride: int, same: bool) -> None:
    if stride != 1:
        raise ValueError(f"RUAS op '{name}' supports stride 1 only, got {stride}")
    if same and C_in != C_out:
        raise ValueError(f"RUAS op '{name}' needs C_in == C_out, got {C_in} and {C_out}")


def _skip(C_in: int, C_out: int, stride: int = 1, affine: bool = True) -> nn.Module:
    _check("skip_connect", C_in, C_out, stride, same=True)
    return nn.Identity()


def _conv_factory(name: str, kernel_size: int, dilation: int, residual: bool) -> OpFactory:
    def factory(C_in: int, C_out: int, stride: int = 1, affine: bool = True) -> nn.Module:
        _check(name, C_in, C_out, stride, same=residual)
        if residual:
            return ResConv(C_in, kernel_size, dilation)
        return ruas_conv(C_in, C_out, kernel_size, dilation)

    factory.__name__ = name
    return factory


RUAS_OPS: dict[str, OpFactory] = {
    "skip_connect": _skip,
    "conv_1x1": _conv_factory("conv_1x1", 1, 1, residual=False),
    "conv_3x3": _conv_factory("conv_3x3", 3, 1, residual=False),
    "dilconv_3x3": _conv_factory("dilconv_3x3", 3, 2, residual=False),
    "resconv_1x1": _conv_factory("resconv_1x1", 1, 1, residual=True),
    "resconv_3x3": _conv_factory("resconv_3x3", 3, 1, residual=True),
    "resdilconv_3x3": _conv_factory("resdilconv_3x3", 3, 2, residual=True),
}
