"""Registration losses (pure functions, per-item values ``[N]``) and the two bilevel objectives.

Terms:

* ``local_ncc(fixed, warped, window=9)``: local normalised cross-correlation (VoxelMorph's form):
  over each ``window^dims`` neighbourhood (zero padding), ``cc = cross^2 / (var_f * var_w + 1e-5)``
  with ``cross = sum(f w) - sum(f) sum(w) / n``, ``var = sum(x^2) - sum(x)^2 / n``, ``n = window^dims``;
  the value is the mean of ``cc`` (in ``[0, 1]``, higher is more similar). The loss is ``-ncc``.
* ``mse(fixed, warped)``: mean squared difference.
* ``smoothness(field)``: L2 of the spatial gradient by forward differences,
  ``(1/dims) * sum_axes mean(d_axis u ^ 2)`` (VoxelMorph's ``Grad('l2')``), fields in pixels.
* ``jacobian_penalty(flow)``: ``mean(relu(-det J))`` with ``J`` by central differences (folding).
* ``soft_dice(pred, target)``: per-label soft Dice of one-hot maps ``[N, L, *S]``, averaged over
  the labels present in ``pred`` or ``target`` (a label absent in both is left out).

Bilevel objectives (scalars, means over the batch):

* ``lower_loss(out, batch, log_weights, similarity="ncc")`` =
  ``sim + exp(log_weights["log_smooth"]) * smoothness(raw field)
  [+ exp(log_weights["log_jacobian"]) * jacobian_penalty(flow)]``. The weights are given as
  LOG-weights (0-dim tensors) so a bilevel upper level can learn them unconstrained while they stay
  positive; the similarity weight is fixed to 1 (only ratios matter). The raw field is the
  network's velocity when it integrates one, else its displacement.
* ``upper_loss(out, batch, labels, folding_weight)`` = ``1 - soft Dice`` of the moving one-hot
  label maps warped by the flow against the fixed ones ``+ folding_weight * jacobian_penalty``.

``out`` is the network's output dict (``"flow"`` ``[N, dims, *S]``, optional ``"velocity"``,
``"warped"`` ``[N, C, *S]``); ``batch`` holds ``"fixed"`` ``[N, C, *S]``, ``"moving_seg"`` and
``"fixed_seg"`` ``[N, 1, *S]`` integer label maps.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

import torch
import torch.nn.functional as F

from restoration.registration.jacobian import jacobian_determinant
from restoration.registration.warp import warp

__all__ = [
    "SIMILARITIES",
    "initial_log_weights",
    "jacobian_penalty",
    "local_ncc",
    "lower_loss",
    "mse",
    "one_hot",
    "readable_weights",
    "smoothness",
    "soft_dice",
    "upper_loss",
]

NCC_EPS = 1e-5
DICE_EPS = 1e-6


def _conv(dims: int):
    return F.conv2d if dims == 2 else F.conv3d


def local_ncc(fixed: torch.Tensor, warped: torch.Tensor, window: int = 9) -> torch.Tensor:
    """Mean local NCC ``[N]`` of ``[N, C, *S]`` images (channels averaged). Higher is more similar."""
    if fixed.shape != warped.shape:
        raise ValueError(f"local_ncc: shapes differ, {list(fixed.shape)} vs {list(warped.shape)}")
    if window < 1 or window % 2 == 0:
        raise ValueError(f"local_ncc: window must be odd and >= 1, got {window}")
    dims, c = fixed.dim() - 2, fixed.shape[1]
    kernel = torch.ones((c, 1) + (window,) * dims, device=fixed.device, dtype=fixed.dtype)
    conv = _conv(dims)

    def box(x: torch.Tensor) -> torch.Tensor:
        return conv(x, kernel, padding=window // 2, groups=c)

    n = float(window ** dims)
    s_f, s_w = box(fixed), box(warped)
    cross = box(fixed * warped) - s_f * s_w / n
    var_f = box(fixed * fixed) - s_f * s_f / n
    var_w = box(warped * warped) - s_w * s_w / n
    cc = cross * cross / (var_f * var_w + NCC_EPS)
    return cc.flatten(1).mean(1)


def mse(fixed: torch.Tensor, warped: torch.Tensor) -> torch.Tensor:
    """Mean squared difference ``[N]`` of ``[N, C, *S]`` images."""
    return (fixed - warped).pow(2).flatten(1).mean(1)


def smoothness(field: torch.Tensor) -> torch.Tensor:
    """``(1/dims) * sum_axes mean((u[x+1] - u[x])^2)`` ``[N]`` of a field ``[N, dims, *S]``."""
    dims = field.dim() - 2
    total = 0.0
    for axis in range(2, dims + 2):
        d = field.diff(dim=axis)
        total = total + d.pow(2).flatten(1).mean(1)
    return total / dims


def jacobian_penalty(flow: torch.Tensor) -> torch.Tensor:
    """``mean(relu(-det(I + grad u)))`` ``[N]`` (central differences) of ``[N, dims, *S]``."""
    return F.relu(-jacobian_determinant(flow)).flatten(1).mean(1)


def one_hot(seg: torch.Tensor, labels: Sequence[int]) -> torch.Tensor:
    """``[N, 1, *S]`` integer map -> ``[N, L, *S]`` float indicators of ``labels`` (in that order)."""
    lab = torch.as_tensor(list(labels), device=seg.device, dtype=seg.dtype)
    shape = (1, -1) + (1,) * (seg.dim() - 2)
    return (seg == lab.view(shape)).to(torch.float32)


def soft_dice(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean soft Dice ``[N]`` over labels present, of ``[N, L, *S]`` maps in ``[0, 1]``.

    ``dice_l = 2 sum(p t) / (sum p + sum t)``; labels with ``sum p + sum t == 0`` are left out
    (an item with no label at all gives 1).
    """
    if pred.shape != target.shape:
        raise ValueError(f"soft_dice: shapes differ, {list(pred.shape)} vs {list(target.shape)}")
    inter = (pred * target).flatten(2).sum(2)
    denom = pred.flatten(2).sum(2) + target.flatten(2).sum(2)
    present = (denom > DICE_EPS).to(pred.dtype)
    dice = 2 * inter / denom.clamp_min(DICE_EPS)
    count = present.sum(1)
    return torch.where(count > 0, (dice * present).sum(1) / count.clamp_min(1), torch.ones_like(count))


#: similarity name -> per-item LOSS (lower is better).
SIMILARITIES = {
    "ncc": lambda fixed, warped, window: -local_ncc(fixed, warped, window),
    "mse": lambda fixed, warped, window: mse(fixed, warped),
}


def initial_log_weights(smooth: float = 1.0, jacobian: Optional[float] = None,
                        device=None) -> dict[str, torch.Tensor]:
    """Log-weights ``{"log_smooth": log(smooth)[, "log_jacobian": log(jacobian)]}``, 0-dim float32."""
    if smooth <= 0 or (jacobian is not None and jacobian <= 0):
        raise ValueError(f"loss weights must be > 0 (they are learned as logs), got {smooth}, {jacobian}")
    out = {"log_smooth": torch.tensor(math.log(smooth), device=device)}
    if jacobian is not None:
        out["log_jacobian"] = torch.tensor(math.log(jacobian), device=device)
    return out


def readable_weights(log_weights: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """``{"smooth": exp(log_smooth), ...}`` as floats, for the search result's JSON."""
    return {k.removeprefix("log_"): float(torch.exp(v.detach())) for k, v in log_weights.items()}


def lower_loss(out: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor],
               log_weights: Mapping[str, torch.Tensor], similarity: str = "ncc",
               window: int = 9) -> torch.Tensor:
    """The lower objective (scalar); see the module docstring."""
    if similarity not in SIMILARITIES:
        raise ValueError(f"unknown similarity {similarity!r}; known: {sorted(SIMILARITIES)}")
    unknown = set(log_weights) - {"log_smooth", "log_jacobian"}
    if unknown or "log_smooth" not in log_weights:
        raise ValueError(f"log_weights needs 'log_smooth' (and optionally 'log_jacobian'), got {sorted(log_weights)}")
    sim = SIMILARITIES[similarity](batch["fixed"], out["warped"], window)
    raw = out["velocity"] if out.get("velocity") is not None else out["flow"]
    total = sim + torch.exp(log_weights["log_smooth"]) * smoothness(raw)
    if "log_jacobian" in log_weights:
        total = total + torch.exp(log_weights["log_jacobian"]) * jacobian_penalty(out["flow"])
    return total.mean()


def upper_loss(out: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor],
               labels: Sequence[int], folding_weight: float = 1.0) -> torch.Tensor:
    """The upper (validation) objective (scalar): ``1 - soft Dice + folding_weight * penalty``."""
    flow = out["flow"]
    moving = one_hot(batch["moving_seg"], labels).to(flow.dtype)
    fixed = one_hot(batch["fixed_seg"], labels).to(flow.dtype)
    dice = soft_dice(warp(moving, flow), fixed)
    total = 1.0 - dice
    if folding_weight:
        total = total + folding_weight * jacobian_penalty(flow)
    return total.mean()
