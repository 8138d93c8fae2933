"""AutoReg's candidate operations, for 2D and 3D (Fan et al., "Automated Learning for Deformable
Medical Image Registration by Jointly Optimizing Network Architectures and Objective Functions",
TIP 2023; public code ``Alison-brie/AutoReg``, ``src_archi/genotypes.py`` ``PRIMITIVES``).

``autoreg_ops(dims)`` maps a primitive name to a factory ``(C_in, C_out, stride=1, affine=True)
-> nn.Module`` (the signature ``nas.mixed_op.MixedOp`` and ``nas.chain`` expect). Every op keeps
the spatial size, ends with ``LeakyReLU(0.2)`` (AutoReg's activation) and has no normalisation:

* ``conv_kxk``: a ``k^dims`` convolution (bias);
* ``sep_conv_kxk``: depthwise ``k^dims`` convolution then pointwise ``1^dims`` convolution;
* ``dil_conv_kxk``: a ``k^dims`` convolution with dilation 2 (receptive field ``2k - 1``).

``affine`` is accepted for signature compatibility and ignored; only ``stride = 1`` exists.
Maps ``[N, C_in, *S] -> [N, C_out, *S]`` with ``len(S) == dims``.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

__all__ = ["AUTOREG_PRIMITIVES", "NEGATIVE_SLOPE", "autoreg_ops", "conv_nd"]

OpFactory = Callable[..., nn.Module]
NEGATIVE_SLOPE = 0.2

#: The 8 AutoReg primitives, in the order of the mixing weights.
AUTOREG_PRIMITIVES: list[str] = [
    "conv_1x1",
    "conv_3x3",
    "conv_5x5",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "dil_conv_7x7",
]

#: name -> (kind, kernel size)
_SPECS: dict[str, tuple[str, int]] = {
    "conv_1x1": ("conv", 1), "conv_3x3": ("conv", 3), "conv_5x5": ("conv", 5),
    "sep_conv_3x3": ("sep", 3), "sep_conv_5x5": ("sep", 5),
    "dil_conv_3x3": ("dil", 3), "dil_conv_5x5": ("dil", 5), "dil_conv_7x7": ("dil", 7),
}


def conv_nd(dims: int, C_in: int, C_out: int, kernel_size: int, dilation: int = 1,
            groups: int = 1) -> nn.Module:
    """Size-preserving ``Conv2d``/``Conv3d`` with bias: ``[N, C_in, *S] -> [N, C_out, *S]``."""
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims}")
    cls = nn.Conv2d if dims == 2 else nn.Conv3d
    return cls(C_in, C_out, kernel_size, padding=dilation * (kernel_size - 1) // 2, dilation=dilation,
               groups=groups)


def _factory(dims: int, name: str) -> OpFactory:
    kind, k = _SPECS[name]

    def build(C_in: int, C_out: int, stride: int = 1, affine: bool = True) -> nn.Module:
        if stride != 1:
            raise ValueError(f"AutoReg op '{name}' supports stride 1 only, got {stride}")
        act = nn.LeakyReLU(NEGATIVE_SLOPE)
        if kind == "conv":
            return nn.Sequential(conv_nd(dims, C_in, C_out, k), act)
        if kind == "dil":
            return nn.Sequential(conv_nd(dims, C_in, C_out, k, dilation=2), act)
        return nn.Sequential(conv_nd(dims, C_in, C_in, k, groups=C_in), conv_nd(dims, C_in, C_out, 1), act)

    build.__name__ = f"{name}_{dims}d"
    return build


def autoreg_ops(dims: int) -> dict[str, OpFactory]:
    """The op dict for ``dims`` 2 or 3 (a new plain dict each call)."""
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims}")
    return {name: _factory(dims, name) for name in AUTOREG_PRIMITIVES}
