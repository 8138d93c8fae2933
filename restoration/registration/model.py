"""The registration network: a small U-Net predicting a stationary velocity field (integrated by
scaling and squaring into a diffeomorphic displacement) or a plain displacement, for 2D or 3D,
with optional searched AutoReg cells; plus the search supernet and the discrete network.

``RegUNet(dims, channels, ...)`` on ``moving`` and ``fixed`` ``[N, C, *S]`` (``len(S) == dims``):

* encoder: ``block(2C -> c0)`` at full resolution, then ``block(c_{k-1} -> c_k, stride 2)`` for
  ``k = 1 .. L-1`` (``L = len(channels)``); ``block`` = conv 3 + LeakyReLU(0.2);
* the ``"coarse"`` cell (if any) on the bottleneck (width ``c_{L-1}``);
* decoder: upsample x2, concatenate the encoder features of that level, ``block(-> c_k)``;
* the ``"fine"`` cell (if any) on the full-resolution features (width ``c0``);
* head: conv 3 to ``dims`` channels, weights ~ N(0, 1e-5), bias 0 (starts near identity).

Inputs of any size: padded (zeros) to a multiple of ``2^(L-1)`` and the field cropped back.
``forward(moving, fixed) -> {"flow": [N, dims, *S] displacement in pixels (channel i = axis i),
"velocity": [N, dims, *S] (only when integrating), "warped": [N, C, *S] moving warped by flow}``.

Cells are ``nas.chain`` chains of 3 edges (edge ``i`` reads node ``i``, output the last node, the
cell input added: ``residual=True``); they are dims-generic because no 1x1 fusion conv is needed.
AutoReg's own searched edges change width (33 -> 48 -> 32 -> 16); here the cells keep the width of
the U-Net level they sit in. 6 searched edges in all, as AutoReg's ``alphas`` ``[6, 8]``.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nas.chain import ChainCell, ChainSearchCell
from nas.genotype import Genotype, derive_chain
from restoration.registration.genotype import CELL_NAMES, CONCAT, EDGE_INPUTS, SPACE, check_genotype
from restoration.registration.ops import AUTOREG_PRIMITIVES, NEGATIVE_SLOPE, autoreg_ops, conv_nd
from restoration.registration.warp import INT_STEPS, integrate_velocity, warp

__all__ = ["CELL_NAMES", "CONCAT", "EDGE_INPUTS", "SPACE", "RegNet", "RegSearchNet", "RegUNet",
           "count_macs", "count_parameters"]

DEFAULT_CHANNELS: tuple[int, ...] = (16, 32, 32, 32)


def _block(dims: int, c_in: int, c_out: int, stride: int = 1) -> nn.Module:
    cls = nn.Conv2d if dims == 2 else nn.Conv3d
    return nn.Sequential(cls(c_in, c_out, 3, stride=stride, padding=1), nn.LeakyReLU(NEGATIVE_SLOPE))


class RegUNet(nn.Module):
    """See the module docstring. ``cells``: optional ``{"coarse": module, "fine": module}``;
    search cells take ``weights[name]`` ``[3, n_ops]`` in ``forward``."""

    def __init__(self, dims: int = 2, channels: Sequence[int] = DEFAULT_CHANNELS, in_channels: int = 1,
                 velocity: bool = True, int_steps: int = INT_STEPS,
                 cells: Optional[Mapping[str, nn.Module]] = None) -> None:
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {dims}")
        if len(channels) < 2:
            raise ValueError(f"channels needs at least 2 levels, got {list(channels)}")
        unknown = set(cells or {}) - set(CELL_NAMES)
        if unknown:
            raise ValueError(f"unknown cell name(s) {sorted(unknown)}; known: {list(CELL_NAMES)}")
        self.dims, self.channels, self.velocity, self.int_steps = dims, tuple(channels), velocity, int_steps
        c = self.channels
        self.enc = nn.ModuleList([_block(dims, 2 * in_channels, c[0])] +
                                 [_block(dims, c[k - 1], c[k], 2) for k in range(1, len(c))])
        self.dec = nn.ModuleList(_block(dims, c[k + 1] + c[k], c[k]) for k in range(len(c) - 2, -1, -1))
        self.cells = nn.ModuleDict(dict(cells or {}))
        self.head = conv_nd(dims, c[0], dims, 3)
        nn.init.normal_(self.head.weight, 0.0, 1e-5)
        nn.init.zeros_(self.head.bias)

    def _cell(self, name: str, h: torch.Tensor, weights: Optional[Mapping[str, torch.Tensor]]) -> torch.Tensor:
        if name not in self.cells:
            return h
        cell = self.cells[name]
        return cell(h, weights[name]) if isinstance(cell, ChainSearchCell) else cell(h)

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor,
                weights: Optional[Mapping[str, torch.Tensor]] = None) -> dict[str, torch.Tensor]:
        if moving.shape != fixed.shape or moving.dim() != self.dims + 2:
            raise ValueError(f"moving {list(moving.shape)} and fixed {list(fixed.shape)} must be equal "
                             f"[N, C, *S] with {self.dims} spatial axes")
        size = moving.shape[2:]
        m = 2 ** (len(self.channels) - 1)
        pad = []
        for s in reversed(size):
            pad += [0, (-s) % m]
        x = F.pad(torch.cat([moving, fixed], 1), pad)
        skips = []
        for k, enc in enumerate(self.enc):
            x = enc(x)
            skips.append(x)
        x = self._cell("coarse", skips.pop(), weights)
        for dec in self.dec:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[2:], mode="nearest")
            x = dec(torch.cat([x, skip], 1))
        x = self._cell("fine", x, weights)
        field = self.head(x)[(slice(None), slice(None)) + tuple(slice(0, s) for s in size)]
        out: dict[str, torch.Tensor] = {}
        if self.velocity:
            out["velocity"] = field
            field = integrate_velocity(field, self.int_steps)
        out["flow"] = field
        out["warped"] = warp(moving, field)
        return out


def RegNet(dims: int = 2, channels: Sequence[int] = DEFAULT_CHANNELS, genotype: Optional[Genotype] = None,
           in_channels: int = 1, velocity: bool = True, int_steps: int = INT_STEPS) -> RegUNet:
    """The discrete network: plain U-Net (``genotype=None``) or with the genotype's two cells."""
    cells = None
    if genotype is not None:
        check_genotype(genotype)
        ops = autoreg_ops(dims)
        width = {"coarse": channels[-1], "fine": channels[0]}
        cells = {name: ChainCell(genotype.cells[name], ops, width[name], CONCAT, residual=True)
                 for name in CELL_NAMES}
    return RegUNet(dims, channels, in_channels, velocity, int_steps, cells)


class RegSearchNet(nn.Module):
    """Supernet: a ``RegUNet`` with ``ChainSearchCell``s and ``alphas_coarse``/``alphas_fine``
    ``[3, n_ops]`` (init ``1e-3 * randn``; softmax per edge in ``forward``)."""

    def __init__(self, dims: int = 2, channels: Sequence[int] = DEFAULT_CHANNELS, in_channels: int = 1,
                 velocity: bool = True, int_steps: int = INT_STEPS,
                 primitives: Sequence[str] = AUTOREG_PRIMITIVES) -> None:
        super().__init__()
        self.primitives = tuple(primitives)
        ops = autoreg_ops(dims)
        width = {"coarse": channels[-1], "fine": channels[0]}
        cells = {name: ChainSearchCell(self.primitives, ops, width[name], EDGE_INPUTS, CONCAT, residual=True)
                 for name in CELL_NAMES}
        self.net = RegUNet(dims, channels, in_channels, velocity, int_steps, cells)
        self.alphas_coarse = nn.Parameter(1e-3 * torch.randn(len(EDGE_INPUTS), len(self.primitives)))
        self.alphas_fine = nn.Parameter(1e-3 * torch.randn(len(EDGE_INPUTS), len(self.primitives)))

    def alphas(self) -> dict[str, torch.Tensor]:
        return {"coarse": self.alphas_coarse, "fine": self.alphas_fine}

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> dict[str, torch.Tensor]:
        weights = {k: F.softmax(a, dim=-1) for k, a in self.alphas().items()}
        return self.net(moving, fixed, weights)

    def arch_parameters(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.named_parameters() if n.startswith("alphas_")}

    def weight_parameters(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.named_parameters() if not n.startswith("alphas_")}

    def genotype(self) -> Genotype:
        """Argmax op per edge (AutoReg's rule)."""
        return derive_chain(SPACE, {k: a.detach() for k, a in self.alphas().items()}, self.primitives,
                            EDGE_INPUTS, CONCAT)


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameter elements."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def count_macs(net: nn.Module, moving: torch.Tensor, fixed: torch.Tensor) -> int:
    """Multiply-accumulates of one forward (``torch.utils.flop_counter``: FLOPs / 2; convs,
    matmuls; ``grid_sample`` is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(moving, fixed)
    return counter.get_total_flops() // 2
