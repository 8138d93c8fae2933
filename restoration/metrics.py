"""Full-reference image-quality metrics, one value per image, computed with kornia.

Inputs are ``[B, C, H, W]`` in ``[0, data_range]``; outputs ``[B]``.

* ``psnr``: ``10 log10(data_range^2 / MSE)`` over all channels and pixels of each image
  (``inf`` for identical images), as ``skimage.metrics.peak_signal_noise_ratio``.
* ``ssim``: Gaussian-window SSIM (11x11, sigma 1.5, K1 = 0.01, K2 = 0.03) averaged over the
  channels and the VALID window positions (no padding), which is what
  ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, channel_axis=...)`` computes. Images need ``H, W >= 11``.
* ``psnr_y`` / ``ssim_y``: the same on the luma channel of RGB inputs (``kornia.color.rgb_to_ycbcr``,
  full-range BT.601: ``Y = 0.299 R + 0.587 G + 0.114 B``). ``studio_swing=True`` maps Y to
  ``16/255 + 219/255 * Y`` like MATLAB's ``rgb2ycbcr``, which deraining papers report
  (their PSNR is about ``20 log10(255/219) = 1.32`` dB higher than full-range Y).
  ``quantize=True`` adds the rounding of MATLAB's 8-bit path (``imread`` -> ``rgb2ycbcr`` on
  ``uint8`` -> ``double``), which the deraining evaluation scripts use: the RGB input is rounded
  to 8 bits (as saving the result to PNG would), then Y (on the 0..255 scale) is rounded half
  away from zero to an integer. ``Y_MATLAB`` holds these keyword arguments
  (``studio_swing=True, quantize=True``): Y in ``[16, 235] / 255``, PSNR with peak 255 and SSIM
  with ``L = 255`` on that scale equal the values of the MATLAB scripts.

Direction: higher is better for every metric here.
"""

from __future__ import annotations

import torch
from kornia.color import rgb_to_ycbcr
from kornia.metrics import psnr as _kornia_psnr
from kornia.metrics import ssim as _kornia_ssim

__all__ = ["psnr", "ssim", "psnr_y", "ssim_y", "rgb_to_luma", "Y_MATLAB"]

SSIM_WINDOW = 11
#: Keyword arguments of ``psnr_y`` / ``ssim_y`` for the MATLAB ``rgb2ycbcr`` 8-bit convention.
Y_MATLAB: dict[str, bool] = {"studio_swing": True, "quantize": True}


def _check(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.ndim != 4 or x.shape != y.shape:
        raise ValueError(
            f"expected two [B, C, H, W] tensors of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB. ``[B, C, H, W]`` x2 -> ``[B]``."""
    _check(x, y)
    return torch.stack([_kornia_psnr(a, b, data_range) for a, b in zip(x, y)])


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Structural similarity (Gaussian window, valid region). ``[B, C, H, W]`` x2 -> ``[B]``."""
    _check(x, y)
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(
            f"ssim needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {tuple(x.shape[-2:])}"
        )
    smap = _kornia_ssim(x, y, SSIM_WINDOW, max_val=data_range, padding="valid")
    return smap.flatten(1).mean(1)


def _round8(x: torch.Tensor) -> torch.Tensor:
    """Round a ``[0, 1]`` value to the nearest 8-bit level, halves away from zero (MATLAB)."""
    return torch.floor(x.clamp(0.0, 1.0) * 255.0 + 0.5) / 255.0


def rgb_to_luma(x: torch.Tensor, studio_swing: bool = False, quantize: bool = False) -> torch.Tensor:
    """Luma of an RGB image in ``[0, 1]``: ``[B, 3, H, W]`` -> ``[B, 1, H, W]`` (see module doc)."""
    if quantize:
        x = _round8(x)
    lum = rgb_to_ycbcr(x)[:, :1]
    if studio_swing:
        lum = lum * (219.0 / 255.0) + 16.0 / 255.0
    return _round8(lum) if quantize else lum


def psnr_y(x: torch.Tensor, y: torch.Tensor, studio_swing: bool = False, quantize: bool = False) -> torch.Tensor:
    """PSNR on the Y channel of RGB images in ``[0, 1]``. ``[B, 3, H, W]`` x2 -> ``[B]``."""
    return psnr(rgb_to_luma(x, studio_swing, quantize), rgb_to_luma(y, studio_swing, quantize), 1.0)


def ssim_y(x: torch.Tensor, y: torch.Tensor, studio_swing: bool = False, quantize: bool = False) -> torch.Tensor:
    """SSIM on the Y channel of RGB images in ``[0, 1]``. ``[B, 3, H, W]`` x2 -> ``[B]``."""
    return ssim(rgb_to_luma(x, studio_swing, quantize), rgb_to_luma(y, studio_swing, quantize), 1.0)
