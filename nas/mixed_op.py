"""The continuous relaxation of one edge: a weighted sum of candidate operations.

``MixedOp`` works with any ops dict whose factories have the signature
``(C_in, C_out, stride, affine) -> nn.Module`` (``nas.ops.OPS`` or a restoration space's).
Partial channels (PC-DARTS, Xu et al., ICLR 2020) are an option; edge normalisation (the
PC-DARTS beta weights) is applied by the cell, see ``nas.cells.edge_softmax``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nas.ops import OPS, OpFactory

__all__ = ["MixedOp", "channel_shuffle", "edge_softmax"]


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave ``groups`` channel groups (ShuffleNet). ``[N, C, H, W] -> [N, C, H, W]``."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class MixedOp(nn.Module):
    """Weighted sum of every candidate op on one edge.

    Args:
        primitives: names of the candidate ops, in the order of the mixing weights.
        C: channels in and out.
        stride: 1, or 2 on the reduction edges.
        ops: name -> factory ``(C_in, C_out, stride, affine)``; ops are built with
            ``affine=False`` as in DARTS's search.
        partial_k: PC-DARTS channel proportion; only ``C // partial_k`` channels go through the
            ops, the rest bypass (max-pooled at stride > 1), then the channels are shuffled.
        pool_bn: follow ops whose name contains ``"pool"`` with ``BatchNorm2d(affine=False)``
            (DARTS's search-time rule).

    ``forward(x, weights)``: ``x`` ``[N, C, H, W]``, ``weights`` ``[len(primitives)]`` (already
    normalised) -> ``[N, C, ceil(H/stride), ceil(W/stride)]``.
    """

    def __init__(
        self,
        primitives: Sequence[str],
        C: int,
        stride: int,
        ops: Mapping[str, OpFactory] = OPS,
        partial_k: int = 1,
        pool_bn: bool = True,
    ) -> None:
        super().__init__()
        if partial_k < 1 or C % partial_k != 0:
            raise ValueError(f"partial_k={partial_k} must be >= 1 and divide C={C}")
        unknown = [p for p in primitives if p not in ops]
        if unknown:
            raise ValueError(f"unknown primitive(s) {unknown}; known: {sorted(ops)}")
        self.primitives = tuple(primitives)
        self.stride = stride
        self.partial_k = partial_k
        c_op = C // partial_k
        self._ops = nn.ModuleList()
        for name in self.primitives:
            op = ops[name](c_op, c_op, stride, False)
            if pool_bn and "pool" in name:
                op = nn.Sequential(op, nn.BatchNorm2d(c_op, affine=False))
            self._ops.append(op)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if weights.shape != (len(self._ops),):
            raise ValueError(
                f"MixedOp expects weights of shape ({len(self._ops)},), got {tuple(weights.shape)}"
            )
        if self.partial_k == 1:
            return sum(w * op(x) for w, op in zip(weights, self._ops))
        c_op = x.shape[1] // self.partial_k
        x_op, x_bypass = x[:, :c_op], x[:, c_op:]
        out = sum(w * op(x_op) for w, op in zip(weights, self._ops))
        if self.stride > 1:
            x_bypass = F.max_pool2d(x_bypass, self.stride, self.stride, ceil_mode=True)
        return channel_shuffle(torch.cat([out, x_bypass], dim=1), self.partial_k)


def edge_softmax(betas: torch.Tensor, steps: int) -> torch.Tensor:
    """PC-DARTS edge normalisation: softmax of the edge logits over each node's inputs.

    ``betas`` ``[E]`` with ``E = sum(2 + i for i < steps)`` (node ``i`` has ``2 + i`` incoming
    edges, listed node by node) -> ``[E]``, each node's slice summing to one.
    """
    expected = sum(2 + i for i in range(steps))
    if betas.shape != (expected,):
        raise ValueError(f"edge logits must have shape ({expected},), got {tuple(betas.shape)}")
    parts, start = [], 0
    for i in range(steps):
        parts.append(F.softmax(betas[start : start + 2 + i], dim=-1))
        start += 2 + i
    return torch.cat(parts)
