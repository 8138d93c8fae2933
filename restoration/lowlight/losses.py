"""RUAS training losses (public code ``KarelZhang/RUAS``, ``model.py``: ``LossFunction``,
``DenoiseLossFunction``, ``TVLoss``), batch-size independent.

* IEM (enhancement): ``0.5 * MSE(t, y) + smooth_weight * edge_aware_smoothness(t, guide(y))`` on
  the LAST stage's illumination ``t``, smoothing weight 1 and a 5x5 window with coefficient 0.005
  as RUAS. The guide is the input in YCbCr (RUAS's training code; its search code used RGB, also
  available); here via ``kornia.color.rgb_to_ycbcr`` (full-range BT.601) where RUAS used a
  studio-range matrix.
* NRM (denoising): ``1e-7 * MSE(out, u) + tv_l2(out)``: the denoised output ``out = u - n`` is
  kept close to the IEM output ``u`` only by a tiny fidelity weight and otherwise made smooth by
  the squared total variation ``2 * (mean(dx^2) + mean(dy^2))``.

In RUAS's cooperative search, the IEM architecture is updated on IEM + NRM losses, the NRM
architecture on the NRM loss alone, and the NRM less often (every 10th step).

The squared errors are written out (``(a - b).pow(2).mean()``) rather than ``F.mse_loss``: the
same values, but ``F.mse_loss``'s double backward fails under forward-mode AD (``torch.func.jvp``
over ``grad``: "ZeroTensors are immutable"), which the ``fad`` hypergradient method uses.
"""

from __future__ import annotations

import torch
from kornia.color import rgb_to_ycbcr

from restoration.losses import edge_aware_smoothness, tv_l2

__all__ = ["iem_loss", "nrm_loss", "ruas_losses"]

NRM_FIDELITY_WEIGHT = 1e-7


def _mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error (``F.mse_loss`` without its forward-mode AD failure)."""
    return (a - b).pow(2).mean()


def iem_loss(
    t: torch.Tensor, y: torch.Tensor, smooth_weight: float = 1.0, guide: str = "ycbcr"
) -> torch.Tensor:
    """Illumination loss. ``t``, ``y``: ``[B, 3, H, W]`` (``y`` the low-light input) -> scalar.

    ``guide``: ``"ycbcr"`` (RUAS training code) or ``"rgb"`` (RUAS search code).
    """
    if guide not in ("ycbcr", "rgb"):
        raise ValueError(f"guide must be 'ycbcr' or 'rgb', got {guide!r}")
    g = rgb_to_ycbcr(y) if guide == "ycbcr" else y
    return 0.5 * _mse(t, y) + smooth_weight * edge_aware_smoothness(t, g)


def nrm_loss(
    out: torch.Tensor, u: torch.Tensor, fidelity_weight: float = NRM_FIDELITY_WEIGHT, tv_weight: float = 1.0
) -> torch.Tensor:
    """Denoising loss. ``out`` (NRM output), ``u`` (IEM output): ``[B, 3, H, W]`` -> scalar."""
    return fidelity_weight * _mse(out, u) + tv_weight * tv_l2(out)


def ruas_losses(outputs: dict[str, torch.Tensor], y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Both losses from a ``RUASSearch``/``RUASNet`` output dict and the input ``y``.

    Returns ``{"iem": scalar, "nrm": scalar}``.
    """
    return {"iem": iem_loss(outputs["t"], y), "nrm": nrm_loss(outputs["out"], outputs["u"])}
