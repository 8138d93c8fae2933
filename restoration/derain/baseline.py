"""Classical deraining baselines (no learning), for the comparison table.

* ``median_derain(x, k)``: per-channel ``k x k`` median filter (``kornia.filters.median_blur`` on
  the image reflected at its borders, so the border pixels are not pulled towards the zero
  padding); thin bright streaks narrower than ``k / 2`` are removed, with the fine texture.
* ``guided_derain(x, radius, eps)``: the base layer of a self-guided filter
  (``kornia.filters.guided_blur`` with the image as its own guide), the rain-free "low frequency"
  layer of the decomposition used by the fusion/deraining papers.
* ``temporal_median(frames)``: per-pixel median over a frame window ``[B, T, 3, H, W]``
  (moving streaks are outliers in time).

All map ``[B, 3, H, W]`` in ``[0, 1]`` to ``[B, 3, H, W]``.
"""

from __future__ import annotations

import torch
from kornia.filters import guided_blur, median_blur

__all__ = ["guided_derain", "median_derain", "temporal_median"]


def median_derain(x: torch.Tensor, kernel_size: int = 5) -> torch.Tensor:
    """``k x k`` median filter of each channel (reflected border, kornia)."""
    r = kernel_size // 2
    padded = torch.nn.functional.pad(x, (r, r, r, r), mode="reflect")
    return median_blur(padded, kernel_size)[..., r : r + x.shape[-2], r : r + x.shape[-1]]


def guided_derain(x: torch.Tensor, radius: int = 3, eps: float = 0.01) -> torch.Tensor:
    """Self-guided filter base layer, window ``2 radius + 1``, regularisation ``eps``."""
    k = 2 * radius + 1
    return guided_blur(x, x, (k, k), eps)


def temporal_median(frames: torch.Tensor) -> torch.Tensor:
    """Median over the window: ``[B, T, 3, H, W] -> [B, 3, H, W]``."""
    return frames.median(dim=1).values

