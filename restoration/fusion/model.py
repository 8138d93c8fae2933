"""The multi-scale fusion search space after HAF (ACM MM 2021) and TIMFusion (TPAMI 2023).

Network (gray inputs; colour is handled outside by ``restoration.fusion.color.fuse_color``)::

    ir, vi  [N, 1, H, W]
      -> optional guided-filter decomposition of each source into base (self-guided
         kornia.filters.guided_blur) and detail (source - base): 4 input channels, else 2
      -> 3x3 conv stem to C channels, LeakyReLU
      -> three branches: full, 1/2 and 1/4 scale (2x2 average pooling, ceil mode), each a
         searched chain cell (nas.chain: edges read nodes EDGE_INPUTS, nodes CONCAT fused by a
         1x1 conv, plus the cell input), coarse branches upsampled back (bilinear)
      -> selective-kernel fusion of the three branches (SKNet: global pooling, bottleneck FC,
         per-branch channel logits, softmax across branches)
      -> 3x3 conv to 1 channel, sigmoid -> fused [N, 1, H, W] in [0, 1]

Ops come from the caller: ``ops`` maps a name to a factory ``(C_in, C_out, stride, affine) ->
nn.Module`` preserving ``[N, C, H, W]``, ``primitives`` lists the candidate names. The supernet puts a
``MixedOp`` on every edge (architecture weights ``alphas.<cell>`` ``[len(EDGE_INPUTS),
len(primitives)]``); ``FusionNet`` builds one op per gene of a ``Genotype`` of space ``"fusion"``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from kornia.filters import guided_blur
from torch import nn

from nas.chain import ChainCell, ChainSearchCell
from nas.genotype import Genotype, GenotypeError, derive_chain
from nas.ops import OpFactory

__all__ = ["SPACE", "CELL_NAMES", "EDGE_INPUTS", "CONCAT", "SelectiveKernelFusion", "FusionSearchNet",
           "FusionNet", "check_fusion_genotype", "decompose"]

SPACE = "fusion"
#: One searched cell per scale: full (scale1), 1/2 (scale2), 1/4 (scale4).
CELL_NAMES: tuple[str, ...] = ("scale1", "scale2", "scale4")
#: Node read by each edge of a cell (a chain of 4 edges); node 0 is the cell input.
EDGE_INPUTS: tuple[int, ...] = (0, 1, 2, 3)
#: Nodes fused by the cell's 1x1 conv.
CONCAT: tuple[int, ...] = (1, 2, 3, 4)


def decompose(x: torch.Tensor, kernel_size: int = 7, eps: float = 1e-2) -> tuple[torch.Tensor, torch.Tensor]:
    """Base/detail layers by a self-guided filter: ``[N, C, H, W]`` -> (base, detail = x - base)."""
    base = guided_blur(x, x, kernel_size, eps, border_type="replicate")
    return base, x - base


class SelectiveKernelFusion(nn.Module):
    """SKNet-style fusion of ``branches`` feature maps ``[N, C, H, W]`` -> ``[N, C, H, W]``."""

    def __init__(self, C: int, branches: int = 3, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(C // reduction, 4)
        self.branches = branches
        self.squeeze = nn.Sequential(nn.Linear(C, hidden), nn.ReLU(inplace=True))
        self.select = nn.Linear(hidden, branches * C)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(feats) != self.branches:
            raise ValueError(f"expected {self.branches} branches, got {len(feats)}")
        stacked = torch.stack(list(feats), dim=1)                      # [N, B, C, H, W]
        z = self.squeeze(stacked.sum(1).mean((2, 3)))                  # [N, hidden]
        weights = self.select(z).view(z.shape[0], self.branches, -1).softmax(dim=1)
        return (stacked * weights[..., None, None]).sum(1)


class _FusionBody(nn.Module):
    """Stem, three scale branches (cells from ``make_cell``), SK fusion and head."""

    def __init__(self, C: int, use_decomposition: bool, gf_kernel: int, gf_eps: float) -> None:
        super().__init__()
        self.C = C
        self.use_decomposition = use_decomposition
        self.gf_kernel, self.gf_eps = gf_kernel, gf_eps
        self.stem = nn.Sequential(nn.Conv2d(4 if use_decomposition else 2, C, 3, padding=1), nn.LeakyReLU(0.1))
        self.fuse = SelectiveKernelFusion(C, len(CELL_NAMES))
        self.head = nn.Conv2d(C, 1, 3, padding=1)

    def _inputs(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        if ir.ndim != 4 or ir.shape[1] != 1 or vi.shape != ir.shape:
            raise ValueError(f"expected infrared and visible luma [N, 1, H, W] of equal shape, "
                             f"got {tuple(ir.shape)} and {tuple(vi.shape)}")
        if not self.use_decomposition:
            return torch.cat([ir, vi], dim=1)
        return torch.cat([*decompose(ir, self.gf_kernel, self.gf_eps), *decompose(vi, self.gf_kernel, self.gf_eps)], 1)

    def _forward(self, ir: torch.Tensor, vi: torch.Tensor, run_cell) -> torch.Tensor:
        x = self.stem(self._inputs(ir, vi))
        H, W = x.shape[-2:]
        feats = []
        for level, name in enumerate(CELL_NAMES):
            h = x
            for _ in range(level):
                h = F.avg_pool2d(h, 2, ceil_mode=True)
            h = run_cell(name, h)
            if level:
                h = F.interpolate(h, size=(H, W), mode="bilinear", align_corners=False)
            feats.append(h)
        return torch.sigmoid(self.head(self.fuse(feats)))


class FusionSearchNet(_FusionBody):
    """The supernet. ``forward(ir, vi)``: ``[N, 1, H, W]`` x2 -> fused ``[N, 1, H, W]``.

    Args:
        ops: name -> op factory; primitives: candidate names (all in ``ops``).
        C: feature channels; use_decomposition: guided-filter base/detail inputs;
        gf_kernel, gf_eps: guided filter window and regulariser; partial_k: PC-DARTS channel share.
    """

    def __init__(self, ops: Mapping[str, OpFactory], primitives: Sequence[str], C: int = 16,
                 use_decomposition: bool = False, gf_kernel: int = 7, gf_eps: float = 1e-2,
                 partial_k: int = 1) -> None:
        super().__init__(C, use_decomposition, gf_kernel, gf_eps)
        missing = [p for p in primitives if p not in ops]
        if missing or not primitives:
            raise ValueError(f"primitives {missing or list(primitives)} are not in the op dict ({sorted(ops)})")
        self.primitives = tuple(primitives)
        self.cells = nn.ModuleDict({
            name: ChainSearchCell(self.primitives, ops, C, EDGE_INPUTS, CONCAT, residual=True,
                                  act=nn.LeakyReLU(0.1), partial_k=partial_k)
            for name in CELL_NAMES})
        self.alphas = nn.ParameterDict({
            name: nn.Parameter(1e-3 * torch.randn(len(EDGE_INPUTS), len(self.primitives))) for name in CELL_NAMES})

    def forward(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        return self._forward(ir, vi, lambda name, h: self.cells[name](h, F.softmax(self.alphas[name], dim=-1)))

    def arch_parameters(self) -> dict[str, nn.Parameter]:
        """``{"alphas.scale1": ..., "alphas.scale2": ..., "alphas.scale4": ...}`` (names as in named_parameters)."""
        return {n: p for n, p in self.named_parameters() if n.startswith("alphas.")}

    def weight_parameters(self) -> dict[str, nn.Parameter]:
        """Every parameter that is not an architecture weight."""
        return {n: p for n, p in self.named_parameters() if not n.startswith("alphas.")}

    def edge_weights(self) -> dict[str, torch.Tensor]:
        """Softmax of each cell's alphas, ``[len(EDGE_INPUTS), len(primitives)]`` (differentiable)."""
        return {name: F.softmax(self.alphas[name], dim=-1) for name in CELL_NAMES}

    def genotype(self) -> Genotype:
        """Argmax op per edge (``none`` excluded) of every cell."""
        return derive_chain(SPACE, {n: self.alphas[n] for n in CELL_NAMES}, self.primitives, EDGE_INPUTS, CONCAT)


def check_fusion_genotype(genotype: Genotype, ops: Mapping[str, OpFactory], source: str = "") -> None:
    """Raise a one-line ``GenotypeError`` unless ``genotype`` fits this space and ``ops``."""
    where = f" {source}" if source else ""
    if genotype.space != SPACE:
        raise GenotypeError(f"genotype{where} is of space {genotype.space!r}; the fusion network needs {SPACE!r}")
    for name in CELL_NAMES:
        if name not in genotype.cells:
            raise GenotypeError(f"genotype{where} lacks cell {name!r} (needs {list(CELL_NAMES)})")
        genes = genotype.cells[name]
        if tuple(i for _, i in genes) != EDGE_INPUTS or tuple(genotype.concat[name]) != CONCAT:
            raise GenotypeError(f"genotype{where} cell {name!r} must read nodes {list(EDGE_INPUTS)} and concat {list(CONCAT)}")
        unknown = sorted({op for op, _ in genes if op not in ops})
        if unknown:
            raise GenotypeError(f"genotype{where} cell {name!r} uses unknown op(s) {unknown}; known: {sorted(ops)}")


class FusionNet(_FusionBody):
    """The discrete network of a ``Genotype`` (space ``"fusion"``), built by the same cell code.

    ``forward(ir, vi)``: ``[N, 1, H, W]`` x2 -> fused ``[N, 1, H, W]``. Other arguments as ``FusionSearchNet``.
    """

    def __init__(self, genotype: Genotype, ops: Mapping[str, OpFactory], C: int = 16,
                 use_decomposition: bool = False, gf_kernel: int = 7, gf_eps: float = 1e-2) -> None:
        check_fusion_genotype(genotype, ops)
        super().__init__(C, use_decomposition, gf_kernel, gf_eps)
        self.genotype = genotype
        self.cells = nn.ModuleDict({
            name: ChainCell(genotype.cells[name], ops, C, CONCAT, residual=True, act=nn.LeakyReLU(0.1))
            for name in CELL_NAMES})

    def forward(self, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        return self._forward(ir, vi, lambda name, h: self.cells[name](h))
