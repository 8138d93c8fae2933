"""The discrete DARTS network for CIFAR, built from a genotype with ``nas.cells.Cell``."""

from __future__ import annotations

import torch
from torch import nn

from nas.cells import Cell, cell_stack
from nas.genotype import DARTS_V2, Genotype
from nas.ops import OPS

__all__ = ["AuxiliaryHeadCIFAR", "DartsNetwork", "count_parameters"]


class AuxiliaryHeadCIFAR(nn.Module):
    """DARTS's auxiliary classifier, for 8x8 inputs: ``[N, C, 8, 8] -> [N, num_classes]``."""

    def __init__(self, C: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),  # 8x8 -> 2x2
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=False),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=False),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class DartsNetwork(nn.Module):
    """DARTS evaluation network (``NetworkCIFAR``): stem of ``3*C`` channels, ``layers`` cells
    of the genotype (reductions at ``layers//3`` and ``2*layers//3``), pooling, classifier.

    ``forward(x)``: ``[N, in_channels, 32, 32]`` -> logits ``[N, num_classes]``; in training
    with ``auxiliary`` returns ``(logits, aux_logits)`` (the auxiliary head reads cell
    ``2*layers//3`` and expects 8x8 maps, i.e. 32x32 inputs). ``drop_path_prob`` is an
    attribute the training loop may change each epoch.
    """

    def __init__(
        self,
        C: int = 36,
        num_classes: int = 10,
        layers: int = 20,
        genotype: Genotype = DARTS_V2,
        auxiliary: bool = True,
        drop_path_prob: float = 0.0,
        stem_multiplier: int = 3,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        missing = {"normal", "reduce"} - set(genotype.cells)
        if missing:
            raise ValueError(f"genotype of space {genotype.space!r} lacks cell(s) {sorted(missing)}")
        self.layers = layers
        self.auxiliary = auxiliary
        self.drop_path_prob = drop_path_prob

        def make_cell(C_prev_prev: int, C_prev: int, C_cell: int, reduction: bool, reduction_prev: bool) -> Cell:
            kind = "reduce" if reduction else "normal"
            return Cell(genotype.cells[kind], genotype.concat[kind],
                        C_prev_prev, C_prev, C_cell, reduction, reduction_prev, OPS)

        self.stem, self.cells, channels = cell_stack(C, layers, stem_multiplier, in_channels, make_cell)
        C_aux = channels[2 * layers // 3 + 1] if layers else channels[0]  # the output of cell 2*layers//3
        self.auxiliary_head = AuxiliaryHeadCIFAR(C_aux, num_classes) if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        aux_logits = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == 2 * self.layers // 3 and self.auxiliary_head is not None and self.training:
                aux_logits = self.auxiliary_head(s1)
        logits = self.classifier(self.global_pooling(s1).flatten(1))
        if aux_logits is not None:
            return logits, aux_logits
        return logits


def count_parameters(model: nn.Module, exclude_auxiliary: bool = True) -> int:
    """Number of parameter elements; by default without those whose name contains
    ``"auxiliary"`` (as DARTS reports model size)."""
    return sum(
        p.numel()
        for name, p in model.named_parameters()
        if not (exclude_auxiliary and "auxiliary" in name)
    )
