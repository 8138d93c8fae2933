"""Deraining losses: a pixel term (Charbonnier or L1) plus ``1 - SSIM`` (kornia), batch-size
independent (means over the batch).

* ``charbonnier(x, y, eps) = mean(sqrt((x - y)^2 + eps^2))`` (eps 1e-3, as the deraining
  literature after Restormer/MPRNet);
* ``l1(x, y) = mean(|x - y|)``;
* ``ssim_loss(x, y) = 1 - mean(SSIM map)`` with kornia's Gaussian 11x11 window (sigma 1.5) and
  ``padding="same"`` (the image reflected at its borders without repeating the edge pixel, so
  every pixel counts; crops of at least 6x6); RGB in [0, 1];
* ``derain_loss(out, target, weights)`` = ``weights[0] * pixel + weights[1] * (1 - SSIM)``;
  ``weights`` may be a tensor (learnable loss weights as upper variables) or floats.

Written out with elementary ops so that every hypergradient method, forward mode included,
can differentiate them twice.
"""

from __future__ import annotations

from typing import Sequence, Union

import torch
from kornia.metrics import ssim as kornia_ssim

__all__ = ["charbonnier", "l1", "ssim_loss", "derain_loss", "PIXEL_LOSSES"]

SSIM_WINDOW = 11


def charbonnier(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """``mean(sqrt((x - y)^2 + eps^2))``; equal shapes -> scalar."""
    return torch.sqrt((x - y).pow(2) + eps * eps).mean()


def l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``mean(|x - y|)``; equal shapes -> scalar."""
    return (x - y).abs().mean()


PIXEL_LOSSES = {"charbonnier": charbonnier, "l1": l1}


def ssim_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``1 - mean SSIM`` of ``[B, C, H, W]`` images in ``[0, 1]`` -> scalar."""
    return 1.0 - kornia_ssim(x, y, SSIM_WINDOW, max_val=1.0, padding="same").mean()


def derain_loss(out: torch.Tensor, target: torch.Tensor,
                weights: Union[torch.Tensor, Sequence[float]] = (1.0, 0.2), pixel: str = "charbonnier") -> torch.Tensor:
    """``weights[0] * pixel(out, target) + weights[1] * (1 - SSIM(out, target))`` -> scalar.

    ``out``, ``target``: ``[B, 3, H, W]``; ``weights``: 2 numbers or a ``[2]`` tensor.
    """
    if pixel not in PIXEL_LOSSES:
        raise ValueError(f"pixel loss must be one of {sorted(PIXEL_LOSSES)}, got {pixel!r}")
    return weights[0] * PIXEL_LOSSES[pixel](out, target) + weights[1] * ssim_loss(out, target)

