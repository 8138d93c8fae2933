"""The DARTS candidate operations and their building blocks.

``OPS`` maps a primitive name to a factory ``(C_in, C_out, stride, affine) -> nn.Module``.
Every operation maps ``[N, C_in, H, W]`` to ``[N, C_out, ceil(H/stride), ceil(W/stride)]``.
Channel-preserving primitives (``none``, the pools, ``skip_connect`` at stride 1) need
``C_in == C_out`` and raise ``ValueError`` otherwise.

Definitions follow DARTS (Liu et al., ICLR 2019). In the search supernet DARTS puts a
``BatchNorm2d(affine=False)`` after each pooling op; that is done by ``MixedOp``, not here.
Other spaces (restoration ops) provide their own dicts with the same factory signature.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

OpFactory = Callable[[int, int, int, bool], nn.Module]

__all__ = [
    "OPS",
    "DARTS_PRIMITIVES",
    "OpFactory",
    "Zero",
    "ReLUConvBN",
    "FactorizedReduce",
    "SepConv",
    "DilConv",
]


class Zero(nn.Module):
    """The ``none`` op: zeros of the (subsampled) input's shape.

    ``[N, C, H, W] -> [N, C, ceil(H/stride), ceil(W/stride)]``. Multiplying by zero (rather
    than allocating) keeps dtype, device and gradient flow identical to DARTS.
    """

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv2d(no bias) -> BatchNorm2d. ``[N, C_in, H, W] -> [N, C_out, H', W']``."""

    def __init__(
        self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int, affine: bool = True
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class FactorizedReduce(nn.Module):
    """Halve the resolution with two 1x1 stride-2 convs on pixel grids offset by one.

    ``[N, C_in, H, W] -> [N, C_out, ceil(H/2), ceil(W/2)]``. The second conv sees the input
    shifted by one pixel (DARTS); a zero row/column is appended to the shifted input so odd
    sizes also work (for even sizes the result is exactly DARTS's). An odd ``C_out`` is split
    ``C_out//2`` + ``C_out - C_out//2``.
    """

    def __init__(self, C_in: int, C_out: int, affine: bool = True) -> None:
        super().__init__()
        half = C_out // 2
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, half, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out - half, 1, stride=2, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


class DilConv(nn.Sequential):
    """ReLU -> depthwise (dilated) conv -> pointwise conv -> BN.

    ``[N, C_in, H, W] -> [N, C_out, ceil(H/stride), ceil(W/stride)]`` (with "same" padding).
    """

    def __init__(
        self,
        C_in: int,
        C_out: int,
        kernel_size: int,
        stride: int,
        padding: int,
        dilation: int,
        affine: bool = True,
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(
                C_in,
                C_in,
                kernel_size,
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=C_in,
                bias=False,
            ),
            nn.Conv2d(C_in, C_out, 1, padding=0, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked separable units (``DilConv`` with dilation 1); the first carries the stride.

    ``[N, C_in, H, W] -> [N, C_out, ceil(H/stride), ceil(W/stride)]``. The first unit keeps
    ``C_in`` channels, the second maps to ``C_out`` (DARTS).
    """

    def __init__(
        self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int, affine: bool = True
    ) -> None:
        super().__init__(
            DilConv(C_in, C_in, kernel_size, stride, padding, 1, affine=affine),
            DilConv(C_in, C_out, kernel_size, 1, padding, 1, affine=affine),
        )


def _same_channels(name: str, C_in: int, C_out: int) -> None:
    if C_in != C_out:
        raise ValueError(f"op {name!r} keeps the channel count; got C_in={C_in}, C_out={C_out}")


def _none(C_in: int, C_out: int, stride: int, affine: bool = True) -> nn.Module:
    _same_channels("none", C_in, C_out)
    return Zero(stride)


def _max_pool_3x3(C_in: int, C_out: int, stride: int, affine: bool = True) -> nn.Module:
    _same_channels("max_pool_3x3", C_in, C_out)
    return nn.MaxPool2d(3, stride=stride, padding=1)


def _avg_pool_3x3(C_in: int, C_out: int, stride: int, affine: bool = True) -> nn.Module:
    _same_channels("avg_pool_3x3", C_in, C_out)
    return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)


def _skip_connect(C_in: int, C_out: int, stride: int, affine: bool = True) -> nn.Module:
    if stride == 1:
        _same_channels("skip_connect", C_in, C_out)
        return nn.Identity()
    return FactorizedReduce(C_in, C_out, affine=affine)


def _sep_conv_3x3(C_in: int, C_out: int, stride: int, affine: bool = True) -> nn.Module:
    return SepConv(C_in, C_out, 3, stride, 1, affine=affine)


def _sep_conv_5x5(C_in: int, C_out: int, stride: int, affine: bool = True) -> nn.Module:
    return SepConv(C_in, C_out, 5, stride, 2, affine=affine)


def _dil_conv_3x3(C_in: int, C_out: int, stride: int, affine: bool = True) -> nn.Module:
    return DilConv(C_in, C_out, 3, stride, 2, 2, affine=affine)


def _dil_conv_5x5(C_in: int, C_out: int, stride: int, affine: bool = True) -> nn.Module:
    return DilConv(C_in, C_out, 5, stride, 4, 2, affine=affine)


OPS: dict[str, OpFactory] = {
    "none": _none,
    "max_pool_3x3": _max_pool_3x3,
    "avg_pool_3x3": _avg_pool_3x3,
    "skip_connect": _skip_connect,
    "sep_conv_3x3": _sep_conv_3x3,
    "sep_conv_5x5": _sep_conv_5x5,
    "dil_conv_3x3": _dil_conv_3x3,
    "dil_conv_5x5": _dil_conv_5x5,
}
"""DARTS primitive name -> factory ``(C_in, C_out, stride, affine) -> nn.Module``."""

DARTS_PRIMITIVES: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
"""The DARTS search space, in DARTS's order (the column order of the alphas)."""
