"""The Jacobian of a deformation ``phi(p) = p + u(p)`` by central differences.

``u`` is ``[N, dims, *S]`` in pixels (channel ``i`` = axis ``i``, see ``warp.py``). Derivatives
use ``torch.gradient`` with unit spacing: central differences inside, one-sided differences on
the first and last slice of each axis.
"""

from __future__ import annotations

import torch

__all__ = ["jacobian_matrix", "jacobian_determinant"]


def jacobian_matrix(flow: torch.Tensor) -> torch.Tensor:
    """``J[n, *p, i, j] = delta_ij + d u_i / d x_j``: ``[N, dims, *S] -> [N, *S, dims, dims]``."""
    dims = flow.shape[1]
    if dims not in (2, 3) or flow.dim() != dims + 2:
        raise ValueError(f"flow must be [N, dims, *spatial] with dims 2 or 3, got {list(flow.shape)}")
    if min(flow.shape[2:]) < 2:
        raise ValueError(f"flow needs at least 2 samples along every axis, got {list(flow.shape[2:])}")
    rows = []
    for i in range(dims):
        grads = torch.gradient(flow[:, i], dim=tuple(range(1, dims + 1)))
        rows.append(torch.stack(grads, dim=-1))
    jac = torch.stack(rows, dim=-2)
    return jac + torch.eye(dims, device=flow.device, dtype=flow.dtype)


def jacobian_determinant(flow: torch.Tensor) -> torch.Tensor:
    """``det(I + grad u)`` per pixel/voxel: ``[N, dims, *S] -> [N, *S]``."""
    jac = jacobian_matrix(flow)
    if flow.shape[1] == 2:
        return jac[..., 0, 0] * jac[..., 1, 1] - jac[..., 0, 1] * jac[..., 1, 0]
    a, b, c = jac[..., 0, 0], jac[..., 0, 1], jac[..., 0, 2]
    d, e, f = jac[..., 1, 0], jac[..., 1, 1], jac[..., 1, 2]
    g, h, i = jac[..., 2, 0], jac[..., 2, 1], jac[..., 2, 2]
    return a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
