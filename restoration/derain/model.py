"""Deraining networks: the search supernet ``DerainSearch`` and the discrete ``DerainNet``.

Macro structure (after the TMIC / TMICS line of work)::

    x      = the input frames stacked on channels ([B, T, 3, H, W] -> [B, 3T, H, W]; T = 1 for images)
    f      = PReLU(conv3x3(x))                               3T -> C   (shallow features)
    f      = cell_n(... cell_1(f))                           N chain cells, C -> C, input added
    rain   = conv3x3(f)                                      C -> 3    (predicted rain layer)
    out    = middle frame - rain

Every cell is a ``nas.chain`` chain of ``steps`` edges over ``restoration.ops`` (edge ``i`` reads
node ``i``), with the cell input added to the last node (TMICS's ``Cell_Fusion``). All cells
share ONE architecture (``alphas_cell`` ``[steps, n_ops]``, TMICS shares one genotype over its 8
cells) and have their own weights. Nothing downsamples: any ``H, W`` works.
``forward(x)`` returns ``{"rain": [B, 3, H, W], "out": [B, 3, H, W]}`` (``out`` not clamped).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nas.chain import ChainCell, ChainSearchCell
from nas.genotype import Genotype
from restoration.derain.genotype import chain_edges, derive_derain, genotype_ops
from restoration.ops import RESTORATION_OPS, RESTORATION_PRIMITIVES, conv

__all__ = ["DerainNet", "DerainSearch", "network_input", "split_frames"]


def split_frames(x: torch.Tensor, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(stacked [B, 3T, H, W], middle frame [B, 3, H, W])`` from ``[B, T, 3, H, W]`` or, for
    ``frames == 1``, ``[B, 3, H, W]``; ``ValueError`` when ``T != frames``."""
    if x.ndim == 4 and frames == 1:
        return x, x
    if x.ndim != 5 or x.shape[1] != frames or x.shape[2] != 3:
        raise ValueError(f"expected frames [B, {frames}, 3, H, W], got {tuple(x.shape)}")
    return x.flatten(1, 2), x[:, frames // 2]


def network_input(batch: dict) -> torch.Tensor:
    """What the network takes from a batch: ``batch["frames"]`` when present, else ``batch["input"]``."""
    return batch["frames"] if "frames" in batch else batch["input"]


class _Derain(nn.Module):
    def __init__(self, channels: int, cells: Sequence[nn.Module], frames: int) -> None:
        super().__init__()
        if frames < 1 or frames % 2 == 0:
            raise ValueError(f"frames must be a positive odd number, got {frames}")
        self.frames = frames
        self.stem = nn.Sequential(conv(3 * frames, channels, 3), nn.PReLU())
        self.cells = nn.ModuleList(cells)
        self.head = conv(channels, 3, 3)

    def _run(self, x: torch.Tensor, weights: Optional[torch.Tensor]) -> dict[str, torch.Tensor]:
        stacked, middle = split_frames(x, self.frames)
        f = self.stem(stacked)
        for cell in self.cells:
            f = cell(f) if weights is None else cell(f, weights)
        rain = self.head(f)
        return {"rain": rain, "out": middle - rain}


class DerainSearch(_Derain):
    """Supernet: every edge a ``MixedOp`` over ``primitives``; upper variable ``alphas_cell``.

    Args:
        channels, cells, steps: width, number of cells, edges per cell.
        frames: odd input window (1 for single images).
        primitives: candidate op names from ``restoration.ops.RESTORATION_OPS``.
        alpha_std: alphas start as ``alpha_std * randn`` (torch's global generator).
    """

    def __init__(self, channels: int = 16, cells: int = 3, steps: int = 4, frames: int = 1,
                 primitives: Sequence[str] = RESTORATION_PRIMITIVES, alpha_std: float = 1e-3) -> None:
        self.primitives = list(primitives)
        built = [ChainSearchCell(self.primitives, RESTORATION_OPS, channels, chain_edges(steps), residual=True)
                 for _ in range(cells)]
        super().__init__(channels, built, frames)
        self.alphas_cell = nn.Parameter(alpha_std * torch.randn(steps, len(self.primitives)))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self._run(x, F.softmax(self.alphas_cell, dim=-1))

    def arch_parameters(self) -> dict[str, nn.Parameter]:
        """``{"alphas_cell": [steps, n_ops]}``."""
        return {n: p for n, p in self.named_parameters() if n.startswith("alphas_")}

    def weight_parameters(self) -> dict[str, nn.Parameter]:
        """Every network weight by its ``named_parameters()`` name."""
        return {n: p for n, p in self.named_parameters() if not n.startswith("alphas_")}

    def genotype(self) -> Genotype:
        """Argmax op per edge."""
        return derive_derain(self.alphas_cell, self.primitives)


class DerainNet(_Derain):
    """Discrete network from a ``"derain"`` genotype (e.g. ``reference_genotype()``).

    Args:
        genotype: one chain cell, shared by all cells.
        channels, cells, frames: as ``DerainSearch`` (TMICS: 96, 8, 5).
    """

    def __init__(self, genotype: Genotype, channels: int = 16, cells: int = 3, frames: int = 1) -> None:
        self.ops = genotype_ops(genotype)
        self.genotype_ = genotype
        built = [ChainCell(list(genotype.cells["cell"]), RESTORATION_OPS, channels, residual=True)
                 for _ in range(cells)]
        super().__init__(channels, built, frames)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self._run(x, None)

    def genotype(self) -> Genotype:
        return self.genotype_
