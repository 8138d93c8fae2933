"""The restoration op family shared by the deraining and fusion search spaces.

``RESTORATION_OPS`` maps a primitive name to a factory ``(C_in, C_out, stride=1, affine=True)
-> nn.Module`` (the signature of ``nas.ops.OPS``, so ``nas.mixed_op.MixedOp`` and
``nas.chain`` accept it). Every op maps ``[N, C, H, W] -> [N, C, H, W]``; only ``stride = 1``
and ``C_in == C_out`` exist in this family (``ValueError`` otherwise); ``affine`` is accepted for
signature compatibility and ignored. No op has a normalisation layer (restoration networks work
on small batches of crops and are run tile by tile; batch statistics would couple them).

The list follows the public op tables of the TMIC / TMICS video deraining and HAF / TIM fusion
code (``operations.py``: ``Residualblocks``, ``Denseblocks``, ``ECAattention``, ``SPAattention``,
``DilConv``, ``SepConv`` named ``<op>_<kernel>_<dilation>``, PReLU activations, no bias
restrictions), written here as:

================== ===========================================================================
name               definition (``act`` = PReLU with one slope)
================== ===========================================================================
skip_connect       identity
conv_3x3/5x5       ``act(conv_k(x))``
dil_conv_3x3/5x5   ``act(conv_k,d=2(x))``
sep_conv_3x3/5x5   ``act(pointwise(depthwise_k(x)))``
res_block_K[_d2]   ``x + conv_k,d(act(conv_k,d(x)))`` for K in 3x3 / 5x5, dilation 1 or 2
dense_block_3x3    three 3x3 convs, each on the concatenation of the input and all previous
                   outputs (``C, 2C, 3C -> C``, act after each), ``x + x3 / 3`` (TMIC's scaling)
eca_attention      ``act(x + eca(conv3(act(conv3(x)))))``, ``eca`` = ``timm.layers.EcaModule``
                   (1D conv of kernel 3 over the pooled channel descriptor, sigmoid gate)
spatial_attention  ``act(x + sa(conv3(act(conv3(x)))))``, ``sa`` = timm's CBAM ``SpatialAttn``
                   (mean and max over channels -> 3x3 conv -> sigmoid gate) with a biased conv
                   in place of its conv + BatchNorm
================== ===========================================================================

TMIC's attention blocks add the first conv's output rather than the block input; here the
block input is added, so that every op with a residual keeps the cell's signal path. The
channel attention pools over the whole image: a network using it is not exactly tile-invariant
(``restoration.tiling``).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

__all__ = [
    "RESTORATION_OPS",
    "RESTORATION_PRIMITIVES",
    "DenseBlock",
    "ResBlock",
    "AttentionBlock",
    "conv",
]

OpFactory = Callable[..., nn.Module]


def conv(C_in: int, C_out: int, kernel_size: int, dilation: int = 1, groups: int = 1) -> nn.Conv2d:
    """Size-preserving conv with bias: ``[N, C_in, H, W] -> [N, C_out, H, W]``."""
    return nn.Conv2d(C_in, C_out, kernel_size, padding=dilation * (kernel_size - 1) // 2,
                     dilation=dilation, groups=groups, bias=True)


class ResBlock(nn.Module):
    """``x + conv(act(conv(x)))``: ``[N, C, H, W] -> [N, C, H, W]``."""

    def __init__(self, C: int, kernel_size: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = conv(C, C, kernel_size, dilation)
        self.act = nn.PReLU()
        self.conv2 = conv(C, C, kernel_size, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class DenseBlock(nn.Module):
    """Three densely connected convs, ``x + x3 / 3``: ``[N, C, H, W] -> [N, C, H, W]``."""

    def __init__(self, C: int, kernel_size: int = 3, dilation: int = 1) -> None:
        super().__init__()
        self.convs = nn.ModuleList(conv((k + 1) * C, C, kernel_size, dilation) for k in range(3))
        self.acts = nn.ModuleList(nn.PReLU() for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for cv, act in zip(self.convs, self.acts):
            feats.append(act(cv(torch.cat(feats, dim=1))))
        return x + feats[-1] / 3.0


class AttentionBlock(nn.Module):
    """``act(x + attn(conv(act(conv(x)))))`` with an attention gate ``attn``.

    ``[N, C, H, W] -> [N, C, H, W]``.
    """

    def __init__(self, C: int, attn: nn.Module, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv1 = conv(C, C, kernel_size)
        self.act1 = nn.PReLU()
        self.conv2 = conv(C, C, kernel_size)
        self.attn = attn
        self.act2 = nn.PReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act2(x + self.attn(self.conv2(self.act1(self.conv1(x)))))


def eca_gate(C: int, kernel_size: int = 3) -> nn.Module:
    """timm's ECA channel attention: ``x * sigmoid(conv1d(mean_hw(x)))`` over channels, ``[N, C, H, W]``."""
    from timm.layers import EcaModule  # deferred: importing timm takes seconds

    return EcaModule(C, kernel_size=kernel_size)


def spatial_gate(kernel_size: int = 3) -> nn.Module:
    """timm's CBAM spatial attention with a biased conv and no BatchNorm.

    ``[N, C, H, W] -> [N, C, H, W]``: ``x * sigmoid(conv([mean_c(x), max_c(x)]))``.
    """
    from timm.layers import ConvNormAct  # deferred: importing timm takes seconds (torchvision models)
    from timm.layers.cbam import SpatialAttn

    sa = SpatialAttn(kernel_size)
    sa.conv = ConvNormAct(2, 1, kernel_size, bias=True, apply_norm=False, apply_act=False)
    return sa


def _check(name: str, C_in: int, C_out: int, stride: int) -> None:
    if stride != 1:
        raise ValueError(f"restoration op '{name}' supports stride 1 only, got {stride}")
    if C_in != C_out:
        raise ValueError(f"restoration op '{name}' needs C_in == C_out, got {C_in} and {C_out}")


def _factory(name: str, build: Callable[[int], nn.Module]) -> OpFactory:
    def factory(C_in: int, C_out: int, stride: int = 1, affine: bool = True) -> nn.Module:
        _check(name, C_in, C_out, stride)
        return build(C_in)

    factory.__name__ = name
    return factory


def _plain(k: int, d: int) -> Callable[[int], nn.Module]:
    return lambda C: nn.Sequential(conv(C, C, k, d), nn.PReLU())


def _sep(k: int) -> Callable[[int], nn.Module]:
    return lambda C: nn.Sequential(conv(C, C, k, groups=C), conv(C, C, 1), nn.PReLU())


RESTORATION_OPS: dict[str, OpFactory] = {
    "skip_connect": _factory("skip_connect", lambda C: nn.Identity()),
    "conv_3x3": _factory("conv_3x3", _plain(3, 1)),
    "conv_5x5": _factory("conv_5x5", _plain(5, 1)),
    "dil_conv_3x3": _factory("dil_conv_3x3", _plain(3, 2)),
    "dil_conv_5x5": _factory("dil_conv_5x5", _plain(5, 2)),
    "sep_conv_3x3": _factory("sep_conv_3x3", _sep(3)),
    "sep_conv_5x5": _factory("sep_conv_5x5", _sep(5)),
    "res_block_3x3": _factory("res_block_3x3", lambda C: ResBlock(C, 3, 1)),
    "res_block_5x5": _factory("res_block_5x5", lambda C: ResBlock(C, 5, 1)),
    "res_block_3x3_d2": _factory("res_block_3x3_d2", lambda C: ResBlock(C, 3, 2)),
    "res_block_5x5_d2": _factory("res_block_5x5_d2", lambda C: ResBlock(C, 5, 2)),
    "dense_block_3x3": _factory("dense_block_3x3", lambda C: DenseBlock(C, 3, 1)),
    "eca_attention": _factory("eca_attention", lambda C: AttentionBlock(C, eca_gate(C))),
    "spatial_attention": _factory("spatial_attention", lambda C: AttentionBlock(C, spatial_gate(3))),
}

#: Every primitive of the family, in the order of the mixing weights.
RESTORATION_PRIMITIVES: list[str] = list(RESTORATION_OPS)
