"""Unsupervised fusion losses (no reference image), after HAF / TIMFusion and their lineage.

With fused ``F``, infrared ``A`` and visible ``B`` (all ``[N, 1, H, W]`` in ``[0, 1]``; for colour
inputs the visible luma):

* ``intensity_loss``: ``mean |F - max(A, B)|`` (keep the brighter, usually warmer, source);
* ``gradient_loss``: ``mean |S(F) - max(S(A), S(B))|`` with ``S`` the Sobel magnitude
  ``sqrt(gx^2 + gy^2 + 1e-6)`` of the un-normalised 3x3 Sobel kernels, replicate padding
  (``kornia.filters.sobel(normalized=False)``);
* ``ssim_loss``: ``(1 - SSIM(F, A)) / 2 + (1 - SSIM(F, B)) / 2`` with kornia's Gaussian SSIM
  (11x11, sigma 1.5, range 1, valid windows; images need ``H, W >= 11``).

``fusion_loss`` returns ``w_int * intensity + w_grad * gradient + w_ssim * ssim`` and the terms;
the weights may be plain floats or tensors (e.g. the upper variables of ``--learn-loss-weights``:
gradients flow to them). ``FusionLoss`` is the module form.
"""

from __future__ import annotations

from typing import Mapping, Union

import torch
from kornia.filters import sobel
from kornia.metrics import ssim as kornia_ssim
from torch import nn

__all__ = ["LOSS_TERMS", "DEFAULT_LOSS_WEIGHTS", "intensity_loss", "gradient_loss", "ssim_loss",
           "sobel_magnitude", "fusion_loss", "FusionLoss"]

LOSS_TERMS: tuple[str, ...] = ("intensity", "gradient", "ssim")
DEFAULT_LOSS_WEIGHTS: dict[str, float] = {"intensity": 1.0, "gradient": 1.0, "ssim": 1.0}
SSIM_WINDOW = 11
Weight = Union[float, torch.Tensor]


def _check(*xs: torch.Tensor) -> None:
    shape = xs[0].shape
    if any(x.ndim != 4 or x.shape != shape or x.shape[1] != 1 for x in xs):
        raise ValueError(f"fusion losses take [N, 1, H, W] images of equal shape, got {[tuple(x.shape) for x in xs]}")


def intensity_loss(fused: torch.Tensor, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
    """L1 to the element-wise maximum of the sources. ``[N, 1, H, W]`` x3 -> scalar."""
    _check(fused, ir, vi)
    return (fused - torch.maximum(ir, vi)).abs().mean()


def sobel_magnitude(x: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude ``[N, C, H, W] -> [N, C, H, W]`` (kornia, un-normalised kernels)."""
    return sobel(x, normalized=False)


def gradient_loss(fused: torch.Tensor, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
    """L1 between the fused Sobel magnitude and the larger source magnitude. ``[N, 1, H, W]`` x3 -> scalar."""
    _check(fused, ir, vi)
    target = torch.maximum(sobel_magnitude(ir), sobel_magnitude(vi))
    return (sobel_magnitude(fused) - target).abs().mean()


def ssim_loss(fused: torch.Tensor, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
    """``(1 - SSIM(F, A)) / 2 + (1 - SSIM(F, B)) / 2`` (kornia, valid windows). ``[N, 1, H, W]`` x3 -> scalar."""
    _check(fused, ir, vi)
    if min(fused.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"the SSIM loss needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {tuple(fused.shape[-2:])}")
    s_a = kornia_ssim(fused, ir, SSIM_WINDOW, padding="valid").mean()
    s_b = kornia_ssim(fused, vi, SSIM_WINDOW, padding="valid").mean()
    return 0.5 * (1.0 - s_a) + 0.5 * (1.0 - s_b)


_TERMS = {"intensity": intensity_loss, "gradient": gradient_loss, "ssim": ssim_loss}


def fusion_loss(
    fused: torch.Tensor,
    ir: torch.Tensor,
    vi: torch.Tensor,
    weights: Union[Mapping[str, Weight], torch.Tensor, None] = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted sum of the three terms.

    Args:
        fused, ir, vi: ``[N, 1, H, W]`` in ``[0, 1]``.
        weights: name -> weight (float or tensor; missing names use ``DEFAULT_LOSS_WEIGHTS``), or a
            tensor ``[3]`` in ``LOSS_TERMS`` order; a zero float weight skips its term.

    Returns:
        (total loss, name -> unweighted term, detached).
    """
    if isinstance(weights, torch.Tensor):
        if weights.shape != (len(LOSS_TERMS),):
            raise ValueError(f"a weight tensor must have shape [{len(LOSS_TERMS)}] ({', '.join(LOSS_TERMS)}), got {tuple(weights.shape)}")
        w: dict[str, Weight] = {name: weights[i] for i, name in enumerate(LOSS_TERMS)}
    else:
        unknown = sorted(set(weights or {}) - set(LOSS_TERMS))
        if unknown:
            raise ValueError(f"unknown loss term(s) {unknown}; known: {list(LOSS_TERMS)}")
        w = {**DEFAULT_LOSS_WEIGHTS, **(weights or {})}
    total = fused.new_zeros(())
    terms = {}
    for name in LOSS_TERMS:
        if not isinstance(w[name], torch.Tensor) and w[name] == 0:
            continue
        value = _TERMS[name](fused, ir, vi)
        terms[name] = value.detach()
        total = total + w[name] * value
    return total, terms


class FusionLoss(nn.Module):
    """Module form of ``fusion_loss`` with fixed float weights; ``forward`` returns the total only."""

    def __init__(self, weights: Mapping[str, float] | None = None) -> None:
        super().__init__()
        self.weights = dict(weights or {})

    def forward(self, fused: torch.Tensor, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
        return fusion_loss(fused, ir, vi, self.weights)[0]
