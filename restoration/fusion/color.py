"""Fusion on the luma channel with the colour put back: RGB visible images are fused on Y and the
result gets the visible image's Cb and Cr back (``kornia.color``, full-range BT.601:
``Y = 0.299 R + 0.587 G + 0.114 B``). Gray visible images are fused directly.
"""

from __future__ import annotations

from typing import Callable

import torch
from kornia.color import rgb_to_ycbcr, ycbcr_to_rgb

__all__ = ["split_luma", "merge_luma", "fuse_color"]


def split_luma(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[N, 3, H, W]`` RGB in ``[0, 1]`` -> (Y ``[N, 1, H, W]``, CbCr ``[N, 2, H, W]``)."""
    ycc = rgb_to_ycbcr(rgb)
    return ycc[:, :1], ycc[:, 1:]


def merge_luma(y: torch.Tensor, cbcr: torch.Tensor) -> torch.Tensor:
    """(Y ``[N, 1, H, W]``, CbCr ``[N, 2, H, W]``) -> RGB ``[N, 3, H, W]`` clamped to ``[0, 1]``."""
    return ycbcr_to_rgb(torch.cat([y, cbcr], dim=1)).clamp(0.0, 1.0)


def fuse_color(fuse: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], ir: torch.Tensor,
               vi: torch.Tensor) -> torch.Tensor:
    """Apply a gray fusion ``fuse(ir [N,1,H,W], vi_y [N,1,H,W]) -> [N,1,H,W]`` to gray or RGB visible input.

    Returns ``[N, 1, H, W]`` for a gray ``vi`` and ``[N, 3, H, W]`` (fused Y + the visible CbCr) for RGB.
    """
    if vi.shape[1] == 1:
        return fuse(ir, vi)
    if vi.shape[1] != 3:
        raise ValueError(f"visible images must have 1 or 3 channels, got {tuple(vi.shape)}")
    y, cbcr = split_luma(vi)
    return merge_luma(fuse(ir, y), cbcr)
