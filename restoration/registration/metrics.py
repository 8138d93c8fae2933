"""Registration metrics: per-pair values ``[N]`` (or ``[N, L]`` per label), each with a direction.

* ``dice``: mean Dice over the labels present (hard label maps). ``labels`` defaults to every
  non-zero label found in the fixed or warped-moving maps of the batch (0 is background); for
  each pair the labels absent from both of its maps are left out (``dice_per_label`` gives
  ``NaN`` there). ``dice_l = 2 |A_l & B_l| / (|A_l| + |B_l|)``. Higher is better.
* ``folding_pct``: percentage of pixels/voxels with ``det(I + grad u) <= 0`` (central
  differences, ``jacobian.py``). Lower is better.
* ``jacobian_std``: standard deviation (population, ``ddof = 0``) of ``det(I + grad u)`` over the
  pixels/voxels. Lower is better (1 = volume-preserving everywhere gives 0).
* ``unregistered_dice``: ``dice`` of one pair's label maps as given (before registration).

The warped label map is the moving map warped with ``mode="nearest"``.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from restoration.registration.jacobian import jacobian_determinant

__all__ = ["METRIC_DIRECTIONS", "dice_per_label", "folding_pct", "jacobian_std", "labels_present",
           "mean_dice", "registration_metrics", "unregistered_dice"]

#: metric -> "higher" or "lower" (which is better). ``dice`` selects the model.
METRIC_DIRECTIONS: dict[str, str] = {"dice": "higher", "folding_pct": "lower", "jacobian_std": "lower"}


def labels_present(*segs: torch.Tensor) -> list[int]:
    """Sorted non-zero labels found in any of the integer maps."""
    found = torch.unique(torch.cat([s.flatten() for s in segs]))
    return [int(v) for v in found.tolist() if v != 0]


def dice_per_label(warped_seg: torch.Tensor, fixed_seg: torch.Tensor,
                   labels: Sequence[int]) -> torch.Tensor:
    """Hard Dice ``[N, L]`` of integer maps ``[N, 1, *S]``; ``NaN`` where label absent from both."""
    if warped_seg.shape != fixed_seg.shape:
        raise ValueError(f"dice: shapes differ, {list(warped_seg.shape)} vs {list(fixed_seg.shape)}")
    out = []
    for lab in labels:
        a = (warped_seg == lab).flatten(1)
        b = (fixed_seg == lab).flatten(1)
        inter = (a & b).sum(1).double()
        denom = (a.sum(1) + b.sum(1)).double()
        out.append(torch.where(denom > 0, 2 * inter / denom.clamp_min(1), torch.full_like(denom, float("nan"))))
    if not out:
        return torch.empty(warped_seg.shape[0], 0, dtype=torch.float64, device=warped_seg.device)
    return torch.stack(out, 1)


def mean_dice(warped_seg: torch.Tensor, fixed_seg: torch.Tensor,
              labels: Optional[Sequence[int]] = None) -> torch.Tensor:
    """Mean over present labels of ``dice_per_label`` ``[N]`` (``NaN`` for a pair with no label)."""
    labels = labels_present(warped_seg, fixed_seg) if labels is None else labels
    return torch.nanmean(dice_per_label(warped_seg, fixed_seg, labels), dim=1)


def folding_pct(flow: torch.Tensor) -> torch.Tensor:
    """Percent ``[N]`` of positions with ``det J <= 0`` of a displacement ``[N, dims, *S]``."""
    det = jacobian_determinant(flow)
    return 100.0 * (det <= 0).flatten(1).double().mean(1)


def jacobian_std(flow: torch.Tensor) -> torch.Tensor:
    """Std ``[N]`` (``ddof = 0``) of ``det J`` over positions of ``[N, dims, *S]``."""
    return jacobian_determinant(flow).flatten(1).double().std(1, correction=0)


def registration_metrics(warped_seg: torch.Tensor, fixed_seg: torch.Tensor, flow: torch.Tensor,
                         labels: Optional[Sequence[int]] = None) -> dict[str, torch.Tensor]:
    """``{"dice", "folding_pct", "jacobian_std"}``, each ``[N]`` float64."""
    return {
        "dice": mean_dice(warped_seg, fixed_seg, labels),
        "folding_pct": folding_pct(flow),
        "jacobian_std": jacobian_std(flow),
    }


def unregistered_dice(moving_seg: torch.Tensor, fixed_seg: torch.Tensor, size: Sequence[int]) -> float:
    """``mean_dice`` of one pair's integer maps ``[1, *S]`` as given, cropped to ``size`` (its first
    ``size[i]`` positions along spatial axis ``i``)."""
    crop = (slice(None),) + tuple(slice(0, int(v)) for v in size)
    return float(mean_dice(moving_seg[crop][None], fixed_seg[crop][None])[0])
