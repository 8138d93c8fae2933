"""Qabf (Xydeas & Petrovic edge-preservation index) as the MMIF-CDDFuse ``Evaluator`` computes it.

Conventions (all of them visible in the values; state them when reporting):

* Sobel responses by true 2-D convolution with zero padding (``same`` size):
  ``Sx = img * [[-1,0,1],[-2,0,2],[-1,0,1]]``, ``Sy = img * [[1,2,1],[0,0,0],[-1,-2,-1]]``;
  strength ``g = sqrt(Sx^2 + Sy^2)``, orientation ``a = atan(Sy / Sx)``, and ``a = pi/2`` where
  ``Sx == 0``.
* Relative strength ``G_AF = g_F / g_A`` where ``g_A > g_F``, ``g_A / g_F`` where ``g_A < g_F``, and
  ``g_F`` itself where ``g_A == g_F`` (the reference's rule: 0 on flat areas, ``g`` on equal edges
  rather than 1); relative orientation ``A_AF = 1 - |a_A - a_F| / (pi/2)``.
* Sigmoids with ``Tg = 0.9994, kg = -15, Dg = 0.5`` and ``Ta = 0.9879, ka = -22, Da = 0.8``:
  ``Q_AF = Tg / (1 + exp(kg (G_AF - Dg))) * Ta / (1 + exp(ka (A_AF - Da)))``; weights ``L = 1``, so
  ``Qabf = sum(Q_AF g_A + Q_BF g_B) / sum(g_A + g_B)``.
* Images on ``[0, 255]``; computed in float64 (the reference computes Sobel and sigmoids in
  float32: differences stay below 1e-6 relative). Higher is better, at most about 0.987.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["QABF_CONSTANTS", "qabf", "sobel_strength_orientation", "edge_preservation"]

#: (Tg, kg, Dg, Ta, ka, Da) of the reference implementation.
QABF_CONSTANTS: tuple[float, float, float, float, float, float] = (0.9994, -15.0, 0.5, 0.9879, -22.0, 0.8)


def _sobel(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Sx, Sy)``: the module docstring's Sobel kernels by true convolution, zero padding, same size,
    ``[N, H, W] -> [N, H, W]`` x2. Separable: a difference across the kernel's axis, ``[1, 2, 1]``
    along the other (integer images give exact integers, as the 2-D convolution does)."""
    h, w = img.shape[-2:]
    p = F.pad(img.unsqueeze(1), (1, 1, 1, 1)).squeeze(1)
    dx = p[:, :, :w] - p[:, :, 2:]          # [N, H+2, W]: the flipped kernel's -1/+1 columns
    sx = dx[:, :h] + 2.0 * dx[:, 1:h + 1] + dx[:, 2:]
    dy = p[:, 2:, :] - p[:, :h, :]          # [N, H, W+2]
    sy = dy[:, :, :w] + 2.0 * dy[:, :, 1:w + 1] + dy[:, :, 2:]
    return sx, sy


def sobel_strength_orientation(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Edge strength and orientation: ``[N, H, W]`` -> (``g`` ``[N, H, W]``, ``a`` ``[N, H, W]``)."""
    sx, sy = _sobel(img)
    g = torch.sqrt(sx * sx + sy * sy)
    zero_x = sx == 0
    a = torch.where(zero_x, torch.full_like(sx, math.pi / 2), torch.atan(sy / torch.where(zero_x, torch.ones_like(sx), sx)))
    return g, a


def edge_preservation(g_src: torch.Tensor, a_src: torch.Tensor, g_f: torch.Tensor, a_f: torch.Tensor) -> torch.Tensor:
    """Per-pixel edge preservation ``Q_XF`` of a source in the fused image, ``[N, H, W]``."""
    tg, kg, dg, ta, ka, da = QABF_CONSTANTS
    one = torch.ones_like(g_src)
    ratio_f = g_f / torch.where(g_src > g_f, g_src, one)      # used where g_src > g_f
    ratio_s = g_src / torch.where(g_src < g_f, g_f, one)      # used where g_src < g_f
    rel_g = torch.where(g_src > g_f, ratio_f, torch.where(g_src == g_f, g_f, ratio_s))
    rel_a = 1.0 - torch.abs(a_src - a_f) / (math.pi / 2)
    q_g = tg / (1.0 + torch.exp(kg * (rel_g - dg)))
    q_a = ta / (1.0 + torch.exp(ka * (rel_a - da)))
    return q_g * q_a


def qabf(fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Qabf of ``fused`` from sources ``a``, ``b``: ``[N, H, W]`` x3 on ``[0, 255]`` -> ``[N]`` float64."""
    fused, a, b = fused.double(), a.double(), b.double()
    n = fused.shape[0]
    g, ang = sobel_strength_orientation(torch.cat([a, b, fused]))  # [3N, H, W]: A, B, F
    g_src, g_f = g[:2 * n], g[2 * n:].repeat(2, 1, 1)
    q = edge_preservation(g_src, ang[:2 * n], g_f, ang[2 * n:].repeat(2, 1, 1))  # Q_AF, Q_BF
    num = (q * g_src).flatten(1).sum(1)
    den = g_src.flatten(1).sum(1)
    return (num[:n] + num[n:]) / (den[:n] + den[n:])
