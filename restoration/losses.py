"""Losses shared by the restoration applications (pure functions plus thin modules).

All losses return a scalar that is a MEAN over the batch, so their value does not depend on the
batch size.

``edge_aware_smoothness`` is the illumination prior of RUAS (Liu et al., CVPR 2021; public code
``KarelZhang/RUAS``, ``model.py``: ``SmoothLoss``). For every pixel ``i`` and every neighbour
``j != i`` of its ``window x window`` neighbourhood::

    w_ij = exp(-sigma_coeff * ||g_i - g_j||^2)       (norm over the guide's channels)
    L    = sum over the (window^2 - 1) offsets d of  mean_{b, c, i}  w_i,i+d * |t_i - t_{i+d}|

where the mean runs over the pixel pairs that lie inside the image. Facts from the RUAS code:
``sigma = 0.1`` and the exponent factor is ``-1/2 * sigma * sigma = -0.005``; the guide is in the
``[0, 1]`` scale (images from ``ToTensor``; the YCbCr bias is ``16/255``), so with the default
coefficient the weights lie in ``[exp(-0.015), 1]`` and the prior acts almost like a plain
L1 total variation over the 5x5 window (pass ``sigma_coeff = 0.005 * 255**2`` for weights on a
0..255 scale); the penalty is the absolute difference (``p = 1``), not squared; each unordered
pair is counted twice (both offsets ``d`` and ``-d``), the 24 terms are summed, not averaged.
Deviations, on purpose: RUAS multiplies each weight MAP by the GLOBAL mean of ``|t_i - t_j|``
(its ``norm`` helper reduces before the product) and its YCbCr conversion reshapes the tensor as
if it were channel-last and batch 1; here the product is per pixel and any batch size works.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "edge_aware_smoothness",
    "EdgeAwareSmoothness",
    "fidelity",
    "tv_l2",
    "window_offsets",
]


def window_offsets(window: int) -> list[tuple[int, int]]:
    """All ``(dy, dx)`` offsets of a ``window x window`` neighbourhood except ``(0, 0)``."""
    if window < 3 or window % 2 == 0:
        raise ValueError(f"window must be odd and >= 3, got {window}")
    r = window // 2
    return [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1) if (dy, dx) != (0, 0)]


def _pair_views(x: torch.Tensor, dy: int, dx: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Views ``(x_i, x_{i+d})`` over the pixels ``i`` whose neighbour ``i + (dy, dx)`` is inside."""
    H, W = x.shape[-2:]
    ys, yd = slice(max(0, -dy), H - max(0, dy)), slice(max(0, dy), H - max(0, -dy))
    xs, xd = slice(max(0, -dx), W - max(0, dx)), slice(max(0, dx), W - max(0, -dx))
    return x[..., ys, xs], x[..., yd, xd]


def edge_aware_smoothness(
    t: torch.Tensor, guide: torch.Tensor, window: int = 5, sigma_coeff: float = 0.005
) -> torch.Tensor:
    """Edge-aware smoothness of ``t`` guided by ``guide`` (RUAS; see the module docstring).

    Args:
        t: ``[B, C, H, W]`` map to smooth (the illumination).
        guide: ``[B, C_g, H, W]`` image whose edges are preserved (the low-light input,
            RUAS's training code converts it to YCbCr first); no gradient flows into it.
        window: odd neighbourhood size (RUAS: 5).
        sigma_coeff: ``c`` in ``w = exp(-c * ||g_i - g_j||^2)`` (RUAS: 0.005).

    Returns:
        Scalar tensor.
    """
    if t.ndim != 4 or guide.ndim != 4 or t.shape[0] != guide.shape[0] or t.shape[-2:] != guide.shape[-2:]:
        raise ValueError(f"t {tuple(t.shape)} and guide {tuple(guide.shape)} must be [B, *, H, W] alike")
    guide = guide.detach()
    total = t.new_zeros(())
    for dy, dx in window_offsets(window):
        if abs(dy) >= t.shape[-2] or abs(dx) >= t.shape[-1]:
            continue
        g0, g1 = _pair_views(guide, dy, dx)
        t0, t1 = _pair_views(t, dy, dx)
        w = torch.exp(-sigma_coeff * (g0 - g1).pow(2).sum(1, keepdim=True))
        total = total + (w * (t0 - t1).abs()).mean()
    return total


class EdgeAwareSmoothness(nn.Module):
    """Module form of ``edge_aware_smoothness``: ``forward(t, guide) -> scalar``."""

    def __init__(self, window: int = 5, sigma_coeff: float = 0.005) -> None:
        super().__init__()
        self.window = window
        self.sigma_coeff = sigma_coeff

    def forward(self, t: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        return edge_aware_smoothness(t, guide, self.window, self.sigma_coeff)

    def extra_repr(self) -> str:
        return f"window={self.window}, sigma_coeff={self.sigma_coeff}"


def fidelity(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``0.5 * MSE(x, y)`` (mean over all elements). Any equal shapes -> scalar.

    Written out rather than ``F.mse_loss``, whose derivative has no forward-mode formula in
    second order, which the ``fad`` hypergradient needs."""
    return 0.5 * ((x - y) ** 2).mean()


def tv_l2(x: torch.Tensor) -> torch.Tensor:
    """Squared total variation as in RUAS's ``TVLoss``: ``2 * (mean(dx^2) + mean(dy^2))``.

    ``[B, C, H, W]`` -> scalar; the means run over batch, channels and the valid differences,
    which equals RUAS's per-image normalisation divided by the batch size.
    """
    dh = x[..., 1:, :] - x[..., :-1, :]
    dw = x[..., :, 1:] - x[..., :, :-1]
    return 2.0 * (dh.pow(2).mean() + dw.pow(2).mean())
