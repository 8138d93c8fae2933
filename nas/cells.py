"""DARTS DAG cells, in a search form (``SearchCell``) and a discrete form (``Cell``).

Both share one base class that owns preprocessing and the node loop; they differ only in
what sits on an edge (a ``MixedOp`` or one chosen op). Inputs ``s0`` (cell k-2) and ``s1``
(cell k-1) are states 0 and 1, node ``i`` (state ``2 + i``) sums its incoming edges, the
output concatenates some states. The chain cells of restoration spaces live in
``nas.chain`` and are re-exported here.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from nas.chain import ChainCell, ChainSearchCell, check_genes
from nas.mixed_op import MixedOp, edge_softmax
from nas.ops import DARTS_PRIMITIVES, OPS, FactorizedReduce, OpFactory, ReLUConvBN

__all__ = [
    "drop_path",
    "num_dag_edges",
    "cell_stack",
    "SearchCell",
    "Cell",
    "ChainSearchCell",
    "ChainCell",
]


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """timm's drop path (``timm.layers.drop_path``): zero whole samples with probability ``drop_prob``
    and rescale the rest by ``1 / (1 - drop_prob)``, as DARTS's ``utils.drop_path``.

    ``[N, ...] -> [N, ...]``. Call it only in training.
    """
    if drop_prob <= 0.0:
        return x
    from timm.layers import drop_path as timm_drop_path  # deferred: importing timm takes seconds

    return timm_drop_path(x, drop_prob, training=True)


def num_dag_edges(steps: int) -> int:
    """Edges of a DARTS cell with ``steps`` intermediate nodes (14 for 4)."""
    return sum(2 + i for i in range(steps))


class _DagCell(nn.Module):
    """Preprocessing and node loop shared by ``SearchCell`` and ``Cell``.

    ``s0`` ``[N, C_prev_prev, H0, W0]`` (``H0 = 2H`` when the previous cell reduced), ``s1``
    ``[N, C_prev, H, W]`` -> ``[N, len(concat) * C, H', W']``, ``H' = ceil(H/2)`` if this cell
    reduces, else ``H``.
    """

    def __init__(
        self,
        C_prev_prev: int,
        C_prev: int,
        C: int,
        reduction: bool,
        reduction_prev: bool,
        affine: bool,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        if reduction_prev:
            self.preprocess0: nn.Module = FactorizedReduce(C_prev_prev, C, affine=affine)
        else:
            self.preprocess0 = ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine=affine)
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0, affine=affine)
        self.steps = 0
        self.concat: tuple[int, ...] = ()

    @property
    def multiplier(self) -> int:
        """Output channels are ``multiplier * C``."""
        return len(self.concat)

    def _run(
        self,
        s0: torch.Tensor,
        s1: torch.Tensor,
        node: Callable[[int, list[torch.Tensor]], torch.Tensor],
    ) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(self.steps):
            states.append(node(i, states))
        return torch.cat([states[j] for j in self.concat], dim=1)


def cell_stack(
    C: int,
    layers: int,
    stem_multiplier: int,
    in_channels: int,
    make_cell: Callable[[int, int, int, bool, bool], _DagCell],
) -> tuple[nn.Sequential, nn.ModuleList, list[int]]:
    """DARTS's macro layout: a stem (3x3 conv + BN, ``in_channels -> stem_multiplier * C``), then
    ``layers`` cells with reductions (channels doubled) at ``layers//3`` and ``2*layers//3``.

    ``make_cell(C_prev_prev, C_prev, C_cell, reduction, reduction_prev)`` builds each cell (in
    order: parameters are initialised stem first, then cell by cell). Returns the stem, the
    cells, and ``channels``: ``channels[0]`` those of the stem's output, ``channels[i]`` those of
    cell ``i - 1``'s (``multiplier * C_cell``).
    """
    C_curr = stem_multiplier * C
    stem = nn.Sequential(nn.Conv2d(in_channels, C_curr, 3, padding=1, bias=False), nn.BatchNorm2d(C_curr))
    channels = [C_curr]
    C_prev_prev, C_prev, C_curr = C_curr, C_curr, C
    cells = nn.ModuleList()
    reduction_prev = False
    for i in range(layers):
        reduction = i in (layers // 3, 2 * layers // 3)
        if reduction:
            C_curr *= 2
        cell = make_cell(C_prev_prev, C_prev, C_curr, reduction, reduction_prev)
        cells.append(cell)
        reduction_prev = reduction
        C_prev_prev, C_prev = C_prev, cell.multiplier * C_curr
        channels.append(C_prev)
    return stem, cells, channels


class SearchCell(_DagCell):
    """DARTS search cell: every node mixes all earlier states through ``MixedOp`` edges.

    Edge order: node 0's two inputs, then node 1's three, ... (DARTS). Edges leaving the two
    cell inputs of a reduction cell have stride 2. The output concatenates the last
    ``multiplier`` states.

    ``forward(s0, s1, weights, betas=None)``: ``weights`` ``[E, len(primitives)]`` normalised
    op weights; ``betas`` ``[E]`` raw edge logits, required when ``edge_norm`` (normalised per
    node here, PC-DARTS).
    """

    def __init__(
        self,
        steps: int,
        multiplier: int,
        C_prev_prev: int,
        C_prev: int,
        C: int,
        reduction: bool,
        reduction_prev: bool,
        primitives: Sequence[str] = DARTS_PRIMITIVES,
        ops: Mapping[str, OpFactory] = OPS,
        partial_k: int = 1,
        edge_norm: bool = False,
    ) -> None:
        super().__init__(C_prev_prev, C_prev, C, reduction, reduction_prev, affine=False)
        if not 1 <= multiplier <= steps + 2:
            raise ValueError(f"multiplier={multiplier} must lie in [1, steps + 2={steps + 2}]")
        self.steps = steps
        self.concat = tuple(range(2 + steps - multiplier, 2 + steps))
        self.edge_norm = edge_norm
        self.num_edges = num_dag_edges(steps)
        self._ops = nn.ModuleList(
            MixedOp(primitives, C, 2 if reduction and j < 2 else 1, ops, partial_k)
            for i in range(steps)
            for j in range(2 + i)
        )

    def forward(
        self,
        s0: torch.Tensor,
        s1: torch.Tensor,
        weights: torch.Tensor,
        betas: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if weights.shape[0] != self.num_edges:
            raise ValueError(f"weights need {self.num_edges} rows, got {weights.shape[0]}")
        edge_w: torch.Tensor | None = None
        if self.edge_norm:
            if betas is None:
                raise ValueError("SearchCell built with edge_norm=True needs betas")
            edge_w = edge_softmax(betas, self.steps)
        offsets = [num_dag_edges(i) for i in range(self.steps)]

        def node(i: int, states: list[torch.Tensor]) -> torch.Tensor:
            out = 0
            for j, h in enumerate(states):
                e = offsets[i] + j
                y = self._ops[e](h, weights[e])
                out = out + (y if edge_w is None else edge_w[e] * y)
            return out  # type: ignore[return-value]

        return self._run(s0, s1, node)


class Cell(_DagCell):
    """Discrete DARTS cell from a genotype cell: two genes ``(op, input)`` per node.

    Gene ``2i`` and ``2i+1`` feed node ``i`` (state ``2 + i``); inputs number states as in
    DARTS. Ops are affine; edges from states 0/1 of a reduction cell have stride 2.
    ``forward(s0, s1, drop_prob=0.0)`` applies drop path (training only) on every non-identity
    edge.
    """

    def __init__(
        self,
        genes: Sequence[tuple[str, int]],
        concat: Sequence[int],
        C_prev_prev: int,
        C_prev: int,
        C: int,
        reduction: bool,
        reduction_prev: bool,
        ops: Mapping[str, OpFactory] = OPS,
    ) -> None:
        super().__init__(C_prev_prev, C_prev, C, reduction, reduction_prev, affine=True)
        if not genes or len(genes) % 2:
            raise ValueError(f"a DARTS cell needs two genes per node, got {len(genes)} genes")
        check_genes(genes, ops)
        self.steps = len(genes) // 2
        for k, (name, index) in enumerate(genes):
            if not 0 <= index < 2 + k // 2:
                raise ValueError(f"gene {k} ({name!r}, {index}) reads a state not yet computed")
        if not concat or any(not 0 <= j < 2 + self.steps for j in concat):
            raise ValueError(f"concat {list(concat)} must name states 0..{self.steps + 1}")
        self.concat = tuple(concat)
        self.indices = tuple(index for _, index in genes)
        self._ops = nn.ModuleList(
            ops[name](C, C, 2 if reduction and index < 2 else 1, True) for name, index in genes
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        def node(i: int, states: list[torch.Tensor]) -> torch.Tensor:
            out = 0
            for e in (2 * i, 2 * i + 1):
                op = self._ops[e]
                y = op(states[self.indices[e]])
                if self.training and drop_prob > 0.0 and not isinstance(op, nn.Identity):
                    y = drop_path(y, drop_prob)
                out = out + y
            return out  # type: ignore[return-value]

        return self._run(s0, s1, node)
