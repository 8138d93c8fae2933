"""RUAS networks: the Illumination Estimation Module (IEM), the Noise Removal Module (NRM), the
search supernet ``RUASSearch`` and the discrete ``RUASNet`` (structure as RUAS's public
``model.py`` / ``model_search.py``).

Retinex model ``y = x * t`` (low-light image ``y``, illumination ``t``). The IEM unrolls
``stages`` steps, each with its OWN cell weights (the architecture is shared)::

    stage 0:  t_hat = localmax2x2(y)
    stage k:  t_hat = localmax2x2(u) - 0.5 * (u - y)
    t = clamp(sigmoid(cell_k(t_hat)), 0.001, 1);   u = clamp(y / t, 0, 1)

The IEM cells work directly on the 3 image channels (no stem). The NRM is a 3x3 stem conv
(3 -> C), ``cells`` cells of width C (own weights, one shared architecture), a 3x3 conv to the
noise ``n`` (C -> 3), output ``u - n`` (not clamped). ``forward(y)`` of both networks returns
``{"u": IEM output, "t": illumination, "n": noise, "out": u - n}``, all ``[B, 3, H, W]``.
RUAS publishes ``out`` for LOL and ``u`` (no denoising) for MIT-Adobe FiveK and DarkFace.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from restoration.lowlight.cell import NUM_EDGES, RUASCell, RUASSearchCell, check_op_names
from restoration.lowlight.ops import RUAS_PRIMITIVES, ruas_conv

__all__ = ["IEM", "NRM", "OUTPUT_KEYS", "RUASNet", "RUASSearch", "local_max_2x2"]

#: Network outputs that can be evaluated: ``out`` (IEM + NRM, RUAS's LOL results) or ``u`` (IEM only).
OUTPUT_KEYS = ("out", "u")

IMAGE_CHANNELS = 3
T_MIN = 0.001


def local_max_2x2(x: torch.Tensor) -> torch.Tensor:
    """Max over each pixel and its right, lower and lower-right neighbours (zeros past the
    bottom/right border, as RUAS). ``[B, C, H, W] -> [B, C, H, W]``.

    The same values two ways: when ``x`` takes part in autograd, ``max_pool2d`` (its gradient goes
    to one element of a tie, as in RUAS's code); otherwise (inference, and the input image, which
    is never differentiated) the maximum of four shifted views, 26x faster on a CPU than
    ``max_pool2d``, which also computes the argmax indices (12.7 vs 0.5 ms at 400x600, 1 thread:
    16% of an eager forward pass; ``benchmarks/lowlight_profile.py``)."""
    padded = F.pad(x, (0, 1, 0, 1))
    if x.requires_grad:
        return F.max_pool2d(padded, kernel_size=2, stride=1)
    top = torch.maximum(padded[..., :-1, :-1], padded[..., :-1, 1:])
    return torch.maximum(top, torch.maximum(padded[..., 1:, :-1], padded[..., 1:, 1:]))


def _apply(cell: nn.Module, x: torch.Tensor, weights: Optional[torch.Tensor]) -> torch.Tensor:
    return cell(x) if weights is None else cell(x, weights)


class IEM(nn.Module):
    """Illumination Estimation Module over given stage cells (``3 -> 3`` channels each).

    ``forward(y, weights=None)``: ``y`` ``[B, 3, H, W]`` in ``[0, 1]``; ``weights``
    ``[7, n_ops]`` for search cells, ``None`` for discrete ones. Returns ``(u_list, t_list)``,
    one ``[B, 3, H, W]`` per stage.
    """

    def __init__(self, cells: Sequence[nn.Module]) -> None:
        super().__init__()
        self.cells = nn.ModuleList(cells)

    def forward(
        self, y: torch.Tensor, weights: Optional[torch.Tensor] = None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        u_list: list[torch.Tensor] = []
        t_list: list[torch.Tensor] = []
        u = y
        for k, cell in enumerate(self.cells):
            t_hat = local_max_2x2(y) if k == 0 else local_max_2x2(u) - 0.5 * (u - y)
            t = torch.sigmoid(_apply(cell, t_hat, weights)).clamp(T_MIN, 1.0)
            u = (y / t).clamp(0.0, 1.0)
            u_list.append(u)
            t_list.append(t)
        return u_list, t_list


class NRM(nn.Module):
    """Noise Removal Module: stem 3x3 (3 -> C), the given cells (C -> C), head 3x3 (C -> 3).

    ``forward(u, weights=None) -> (u - n, n)``, all ``[B, 3, H, W]``.
    """

    def __init__(self, channels: int, cells: Sequence[nn.Module]) -> None:
        super().__init__()
        self.stem = ruas_conv(IMAGE_CHANNELS, channels, 3)
        self.cells = nn.ModuleList(cells)
        self.head = ruas_conv(channels, IMAGE_CHANNELS, 3)

    def forward(
        self, u: torch.Tensor, weights: Optional[torch.Tensor] = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.stem(u)
        for cell in self.cells:
            feat = _apply(cell, feat, weights)
        n = self.head(feat)
        return u - n, n


def _outputs(
    iem: IEM,
    nrm: NRM,
    y: torch.Tensor,
    w_iem: Optional[torch.Tensor] = None,
    w_nrm: Optional[torch.Tensor] = None,
) -> dict[str, torch.Tensor]:
    """Run IEM then NRM; see the module docstring for the keys."""
    u_list, t_list = iem(y, w_iem)
    out, n = nrm(u_list[-1], w_nrm)
    return {"u": u_list[-1], "t": t_list[-1], "n": n, "out": out}


class RUASSearch(nn.Module):
    """The RUAS supernet: IEM and NRM built from search cells, with one architecture per module.

    Args:
        iem_stages: unrolled IEM stages (RUAS: 3).
        nrm_cells: NRM cells (RUAS: 3).
        nrm_channels: NRM width (RUAS: 6). The IEM works on the 3 image channels.
        primitives: candidate ops (RUAS: ``RUAS_PRIMITIVES``).
        alpha_std: alphas start as ``alpha_std * randn`` (RUAS: 1e-3), from torch's global RNG.

    Upper variables ``alphas_iem`` and ``alphas_nrm``, each ``[7, len(primitives)]``, shared by
    all stages/cells of their module (RUAS searches one cell per module).
    ``forward(y)``: ``[B, 3, H, W]`` -> ``{"u", "t", "n", "out"}``, each ``[B, 3, H, W]``.
    """

    def __init__(
        self,
        iem_stages: int = 3,
        nrm_cells: int = 3,
        nrm_channels: int = 6,
        primitives: Sequence[str] = RUAS_PRIMITIVES,
        alpha_std: float = 1e-3,
    ) -> None:
        super().__init__()
        self.primitives = list(primitives)
        n_ops = len(self.primitives)
        self.iem = IEM([RUASSearchCell(IMAGE_CHANNELS, self.primitives) for _ in range(iem_stages)])
        cells = [RUASSearchCell(nrm_channels, self.primitives) for _ in range(nrm_cells)]
        self.nrm = NRM(nrm_channels, cells)
        self.alphas_iem = nn.Parameter(alpha_std * torch.randn(NUM_EDGES, n_ops))
        self.alphas_nrm = nn.Parameter(alpha_std * torch.randn(NUM_EDGES, n_ops))

    def forward(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return _outputs(
            self.iem, self.nrm, y, F.softmax(self.alphas_iem, dim=-1), F.softmax(self.alphas_nrm, dim=-1)
        )

    def arch_parameters(self, part: Optional[str] = None) -> dict[str, nn.Parameter]:
        """``{"alphas_iem": ..., "alphas_nrm": ...}`` (only one with ``part="iem"``/``"nrm"``)."""
        return {
            n: p
            for n, p in self.named_parameters()
            if n.startswith("alphas_") and (part is None or n == f"alphas_{part}")
        }

    def weight_parameters(self, part: Optional[str] = None) -> dict[str, nn.Parameter]:
        """Network weights by ``named_parameters()`` name (only the IEM's or NRM's with ``part``)."""
        return {
            n: p
            for n, p in self.named_parameters()
            if not n.startswith("alphas_") and (part is None or n.startswith(f"{part}."))
        }

    def genotype_lists(self) -> dict[str, list[str]]:
        """Strongest op per edge: ``{"iem": [7 names], "nrm": [7 names]}``."""
        def pick(alphas: torch.Tensor) -> list[str]:
            return [self.primitives[i] for i in alphas.detach().argmax(dim=-1).tolist()]

        return {"iem": pick(self.alphas_iem), "nrm": pick(self.alphas_nrm)}


class RUASNet(nn.Module):
    """The discrete RUAS network from one op list per module (e.g. ``reference.RUAS_GENOTYPE``).

    Args:
        iem_ops, nrm_ops: 7 primitive names each.
        iem_stages, nrm_cells, nrm_channels: as ``RUASSearch``.
        output: the output that is the enhanced image, one of ``OUTPUT_KEYS``.

    ``forward(y)``: ``[B, 3, H, W]`` -> ``{"u", "t", "n", "out"}``, each ``[B, 3, H, W]``.
    """

    def __init__(
        self,
        iem_ops: Sequence[str],
        nrm_ops: Sequence[str],
        iem_stages: int = 3,
        nrm_cells: int = 3,
        nrm_channels: int = 6,
        output: str = "out",
    ) -> None:
        super().__init__()
        if output not in OUTPUT_KEYS:
            raise ValueError(f"output must be one of {OUTPUT_KEYS}, got {output!r}")
        self.output = output
        self.iem_ops = check_op_names(iem_ops, "IEM")
        self.nrm_ops = check_op_names(nrm_ops, "NRM")
        self.iem = IEM([RUASCell(IMAGE_CHANNELS, self.iem_ops) for _ in range(iem_stages)])
        self.nrm = NRM(nrm_channels, [RUASCell(nrm_channels, self.nrm_ops) for _ in range(nrm_cells)])

    def forward(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return _outputs(self.iem, self.nrm, y)

    def genotype_lists(self) -> dict[str, list[str]]:
        """The op lists this network was built from."""
        return {"iem": list(self.iem_ops), "nrm": list(self.nrm_ops)}
