"""Chain cells for restoration search spaces, in a search and a discrete form.

The cell input is node 0; edge ``i`` reads node ``edges[i]`` and produces node ``i + 1``
(optionally plus its input, then an activation); the output is one node, or a 1x1 conv
fusion of several, optionally plus the cell input. ``ChainSearchCell`` puts a ``MixedOp`` on
every edge, ``ChainCell`` one op per gene of a genotype cell; both share the node loop.
Example, a RUAS-like distillation block: ``edges=[0, 0, 2, 2, 4, 4, 6]``,
``concat=[1, 3, 5, 7]``, ``edge_residual=[0, 1, 0, 1, 0, 1, 0]``, ``act=nn.LeakyReLU(0.05)``.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from nas.mixed_op import MixedOp
from nas.ops import OpFactory

__all__ = ["ChainSearchCell", "ChainCell", "chain_forward", "check_genes"]


def check_genes(genes: Sequence[tuple[str, int]], ops: Mapping[str, OpFactory]) -> None:
    """Raise ``ValueError`` naming any gene op missing from ``ops``."""
    unknown = sorted({name for name, _ in genes if name not in ops})
    if unknown:
        raise ValueError(f"unknown op(s) {unknown} in genes; known: {sorted(ops)}")


def chain_forward(
    x: torch.Tensor,
    edge: Callable[[int, torch.Tensor], torch.Tensor],
    edges: Sequence[int],
    concat: Sequence[int],
    fuse: nn.Module | None,
    edge_residual: Sequence[bool] | None = None,
    act: nn.Module | None = None,
    residual: bool = False,
) -> torch.Tensor:
    """The node loop of every chain cell: node 0 is ``x``; edge ``i`` maps node ``edges[i]`` through
    ``edge(i, h)`` (plus ``h`` when ``edge_residual[i]``, then ``act``) to node ``i + 1``; the output
    is ``fuse(cat(nodes[concat]))`` (or node ``concat[0]`` when ``fuse`` is None), plus ``x`` when
    ``residual``. ``[N, C, H, W] -> [N, C, H, W]``."""
    nodes = [x]
    for i, src in enumerate(edges):
        h = nodes[src]
        y = edge(i, h)
        if edge_residual is not None and edge_residual[i]:
            y = y + h
        if act is not None:
            y = act(y)
        nodes.append(y)
    out = nodes[concat[0]] if fuse is None else fuse(torch.cat([nodes[j] for j in concat], dim=1))
    return out + x if residual else out


class _ChainCell(nn.Module):
    """Node loop shared by ``ChainSearchCell`` and ``ChainCell``.

    ``[N, C, H, W] -> [N, C, H, W]``. Node 0 is the input; edge ``i`` maps node ``edges[i]``
    to node ``i + 1``, plus that input when ``edge_residual[i]``, then ``act``. The output is
    node ``concat[0]`` when ``concat`` has one entry, else a 1x1 conv (with bias) of the
    concatenated nodes back to ``C`` channels; ``residual`` adds the cell input.
    """

    def __init__(
        self,
        C: int,
        edges: Sequence[int],
        concat: Sequence[int] | None,
        residual: bool,
        edge_residual: Sequence[bool] | None,
        act: nn.Module | None,
    ) -> None:
        super().__init__()
        if not edges or any(not 0 <= src <= i for i, src in enumerate(edges)):
            raise ValueError(f"edge i must read a node in 0..i; got edges {list(edges)}")
        n = len(edges)
        concat = (n,) if concat is None else tuple(concat)
        if not concat or any(not 0 <= j <= n for j in concat):
            raise ValueError(f"concat {list(concat)} must name nodes 0..{n}")
        if edge_residual is not None and len(edge_residual) != n:
            raise ValueError(f"edge_residual needs {n} entries, got {len(edge_residual)}")
        self.edges = tuple(edges)
        self.concat = concat
        self.residual = residual
        self.edge_residual = tuple(edge_residual) if edge_residual is not None else (False,) * n
        self.act = act
        self.fuse = nn.Conv2d(len(concat) * C, C, 1) if len(concat) > 1 else None

    def _run(self, x: torch.Tensor, edge: Callable[[int, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        return chain_forward(x, edge, self.edges, self.concat, self.fuse, self.edge_residual, self.act, self.residual)


class ChainSearchCell(_ChainCell):
    """Chain cell in search mode: every edge is a ``MixedOp`` over ``primitives``.

    ``forward(x, weights)``: ``x`` ``[N, C, H, W]``, ``weights`` ``[len(edges),
    len(primitives)]`` normalised -> ``[N, C, H, W]``.
    """

    def __init__(
        self,
        primitives: Sequence[str],
        ops: Mapping[str, OpFactory],
        C: int,
        edges: Sequence[int],
        concat: Sequence[int] | None = None,
        residual: bool = False,
        edge_residual: Sequence[bool] | None = None,
        act: nn.Module | None = None,
        partial_k: int = 1,
    ) -> None:
        super().__init__(C, edges, concat, residual, edge_residual, act)
        self.primitives = tuple(primitives)
        self._ops = nn.ModuleList(MixedOp(primitives, C, 1, ops, partial_k) for _ in edges)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if weights.shape != (len(self.edges), len(self.primitives)):
            raise ValueError(
                f"weights must be [{len(self.edges)}, {len(self.primitives)}], got {list(weights.shape)}"
            )
        return self._run(x, lambda i, h: self._ops[i](h, weights[i]))


class ChainCell(_ChainCell):
    """Discrete chain cell from a genotype cell: gene ``i = (op, input)`` is edge ``i``.

    Ops are built with ``ops[op](C, C, 1, True)``. ``[N, C, H, W] -> [N, C, H, W]``.
    """

    def __init__(
        self,
        genes: Sequence[tuple[str, int]],
        ops: Mapping[str, OpFactory],
        C: int,
        concat: Sequence[int] | None = None,
        residual: bool = False,
        edge_residual: Sequence[bool] | None = None,
        act: nn.Module | None = None,
    ) -> None:
        check_genes(genes, ops)
        super().__init__(C, [index for _, index in genes], concat, residual, edge_residual, act)
        self._ops = nn.ModuleList(ops[name](C, C, 1, True) for name, _ in genes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, lambda i, h: self._ops[i](h))
