"""The RUAS search cell: a distillation block of 7 searched edges (RUAS ``model_search.py``,
``SearchBlock``; after the information multi-distillation block of IMDN).

Topology, with ``act = LeakyReLU(0.05)`` and every edge ``C -> C`` channels::

    d1 = act(e0(x))     r1 = act(e1(x)  + x)
    d2 = act(e2(r1))    r2 = act(e3(r1) + r1)
    d3 = act(e4(r2))    r3 = act(e5(r2) + r2)
    d4 = act(e6(r3))
    out = conv1x1(cat[d1, d2, d3, d4])            (4C -> C, with bias, no activation)

Edges ``e0, e2, e4`` are the distilled branches, ``e1, e3, e5`` the remaining (refined) ones and
``e6`` the last refinement. ``RUASSearchCell`` puts a ``nas.mixed_op.MixedOp`` over
``RUAS_PRIMITIVES`` on every edge (``forward(x, weights)`` with ``weights`` ``[7, n_ops]``, rows
already softmax-normalised); ``RUASCell`` has one named op per edge (``forward(x)``). Both map
``[N, C, H, W] -> [N, C, H, W]``. The node loop is ``nas.chain.chain_forward`` (the chain cells of the
other restoration spaces run it too) over the wiring ``EDGES`` / ``EDGE_RESIDUAL`` / ``CONCAT``; the
modules (and so their initialisation and state-dict names) are RUAS's.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from nas.chain import chain_forward
from nas.mixed_op import MixedOp
from restoration.lowlight.ops import RUAS_OPS, RUAS_PRIMITIVES, ruas_conv

__all__ = ["NUM_EDGES", "RUASCell", "RUASSearchCell", "check_op_names"]

NUM_EDGES = 7
NEGATIVE_SLOPE = 0.05
#: The block as a ``nas.chain`` chain: node read by each edge, residual edges, fused nodes
#: (node 0 = x, node 1 = d1, 2 = r1, 3 = d2, 4 = r2, 5 = d3, 6 = r3, 7 = d4).
EDGES: tuple[int, ...] = (0, 0, 2, 2, 4, 4, 6)
EDGE_RESIDUAL: tuple[bool, ...] = (False, True, False, True, False, True, False)
CONCAT: tuple[int, ...] = (1, 3, 5, 7)


def check_op_names(ops: Sequence[str], what: str = "cell") -> list[str]:
    """Validate a list of 7 RUAS primitive names (raises ``ValueError`` naming the problem)."""
    ops = list(ops)
    if len(ops) != NUM_EDGES:
        raise ValueError(f"{what} genotype needs {NUM_EDGES} op names, got {len(ops)}: {ops}")
    unknown = [o for o in ops if o not in RUAS_OPS]
    if unknown:
        raise ValueError(f"{what} genotype has unknown op(s) {unknown}; known: {RUAS_PRIMITIVES}")
    return ops


def _distill(
    x: torch.Tensor,
    edge: Callable[[int, torch.Tensor], torch.Tensor],
    act: nn.Module,
    fuse: nn.Module,
) -> torch.Tensor:
    """The distillation topology as a ``nas.chain`` chain; ``edge(k, h)`` applies edge ``k`` to ``h``."""
    return chain_forward(x, edge, EDGES, CONCAT, fuse, EDGE_RESIDUAL, act)


class RUASSearchCell(nn.Module):
    """Search form: a mixed op on each of the 7 edges.

    Args:
        C: channels in, inside and out.
        primitives: candidate op names (columns of ``weights``).
    """

    def __init__(self, C: int, primitives: Sequence[str] = RUAS_PRIMITIVES) -> None:
        super().__init__()
        self.primitives = list(primitives)
        self.edges = nn.ModuleList(MixedOp(self.primitives, C, 1, ops=RUAS_OPS) for _ in range(NUM_EDGES))
        self.act = nn.LeakyReLU(NEGATIVE_SLOPE)
        self.fuse = ruas_conv(4 * C, C, 1)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``x`` ``[N, C, H, W]``, ``weights`` ``[7, len(primitives)]`` -> ``[N, C, H, W]``."""
        if weights.shape != (NUM_EDGES, len(self.primitives)):
            raise ValueError(
                f"weights must be ({NUM_EDGES}, {len(self.primitives)}), got {tuple(weights.shape)}"
            )
        return _distill(x, lambda k, h: self.edges[k](h, weights[k]), self.act, self.fuse)


class RUASCell(nn.Module):
    """Discrete form: ``ops[k]`` on edge ``k``.

    Args:
        C: channels in, inside and out.
        ops: 7 names from ``RUAS_PRIMITIVES`` (e.g. a ``genotype_lists()`` entry).
    """

    def __init__(self, C: int, ops: Sequence[str]) -> None:
        super().__init__()
        self.ops = check_op_names(ops)
        self.edges = nn.ModuleList(RUAS_OPS[name](C, C, 1, True) for name in self.ops)
        self.act = nn.LeakyReLU(NEGATIVE_SLOPE)
        self.fuse = ruas_conv(4 * C, C, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, C, H, W] -> [N, C, H, W]``."""
        return _distill(x, lambda k, h: self.edges[k](h), self.act, self.fuse)
