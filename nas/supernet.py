"""The DARTS search network (supernet) for image classification.

Supernet API shared by every search space: ``weight_parameters()`` and
``arch_parameters()`` return dicts ``name -> Parameter`` whose names are those of
``named_parameters()`` and which partition it, so
``torch.func.functional_call(model, {**weights, **arch}, (x,))`` works; ``genotype()``
derives the discrete architecture. The loss is computed outside (the model returns logits).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nas.cells import SearchCell, cell_stack, num_dag_edges
from nas.genotype import Genotype, derive_darts
from nas.ops import DARTS_PRIMITIVES, OPS

__all__ = ["DartsSupernet"]


class DartsSupernet(nn.Module):
    """DARTS search network: stem, ``layers`` search cells (reductions at ``layers//3`` and
    ``2*layers//3``), global pooling, linear classifier.

    Arch parameters: ``alphas_normal`` and ``alphas_reduce`` ``[E, len(primitives)]``
    (``E = 14`` for 4 steps), init ``1e-3 * randn``; with ``edge_norm`` also PC-DARTS edge
    logits ``betas_normal``, ``betas_reduce`` ``[E]``.

    ``forward(x)``: ``[N, in_channels, H, W] -> [N, num_classes]`` logits.
    """

    ARCH_NAMES = ("alphas_normal", "alphas_reduce", "betas_normal", "betas_reduce")

    def __init__(
        self,
        C: int = 16,
        num_classes: int = 10,
        layers: int = 8,
        steps: int = 4,
        multiplier: int = 4,
        stem_multiplier: int = 3,
        primitives: Sequence[str] = DARTS_PRIMITIVES,
        partial_k: int = 1,
        edge_norm: bool = False,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.primitives = tuple(primitives)
        self.steps = steps
        self.multiplier = multiplier
        self.edge_norm = edge_norm

        def make_cell(C_prev_prev: int, C_prev: int, C_cell: int, reduction: bool, reduction_prev: bool) -> SearchCell:
            return SearchCell(steps, multiplier, C_prev_prev, C_prev, C_cell, reduction, reduction_prev,
                              self.primitives, OPS, partial_k, edge_norm)

        self.stem, self.cells, channels = cell_stack(C, layers, stem_multiplier, in_channels, make_cell)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels[-1], num_classes)

        E, P = num_dag_edges(steps), len(self.primitives)
        self.alphas_normal = nn.Parameter(1e-3 * torch.randn(E, P))
        self.alphas_reduce = nn.Parameter(1e-3 * torch.randn(E, P))
        if edge_norm:
            self.betas_normal = nn.Parameter(1e-3 * torch.randn(E))
            self.betas_reduce = nn.Parameter(1e-3 * torch.randn(E))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w_normal = F.softmax(self.alphas_normal, dim=-1)
        w_reduce = F.softmax(self.alphas_reduce, dim=-1)
        b_normal = self.betas_normal if self.edge_norm else None
        b_reduce = self.betas_reduce if self.edge_norm else None
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            if cell.reduction:
                s0, s1 = s1, cell(s0, s1, w_reduce, b_reduce)
            else:
                s0, s1 = s1, cell(s0, s1, w_normal, b_normal)
        return self.classifier(self.global_pooling(s1).flatten(1))

    def arch_parameters(self) -> dict[str, nn.Parameter]:
        """Upper-level variables: ``{"alphas_normal": ..., "alphas_reduce": ...[, betas_*]}``."""
        return {n: p for n, p in self.named_parameters() if n in self.ARCH_NAMES}

    def weight_parameters(self) -> dict[str, nn.Parameter]:
        """Lower-level variables: every other parameter, by its ``named_parameters()`` name."""
        return {n: p for n, p in self.named_parameters() if n not in self.ARCH_NAMES}

    def genotype(self) -> Genotype:
        """DARTS derivation from the current alphas (and betas with edge normalisation)."""
        return derive_darts(
            self.alphas_normal,
            self.alphas_reduce,
            self.primitives,
            self.steps,
            self.multiplier,
            self.betas_normal if self.edge_norm else None,
            self.betas_reduce if self.edge_norm else None,
        )
