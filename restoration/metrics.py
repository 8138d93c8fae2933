"""Full-reference image-quality metrics, one value per image, computed with kornia.

Inputs are ``[B, C, H, W]`` in ``[0, data_range]``; outputs ``[B]``.

* ``psnr``: ``10 log10(data_range^2 / MSE)`` over all channels and pixels of each image
  (``inf`` for identical images), as ``skimage.metrics.peak_signal_noise_ratio``.
* ``ssim``: SSIM as Wang et al.'s reference ``ssim_index.m`` computes it: an 11x11 Gaussian window
  (sigma 1.5), K1 = 0.01, K2 = 0.03, L = ``data_range``, the map averaged over the channels and the
  VALID window positions (no padding). So do BasicSR's ``calculate_ssim``, the ``SSIM_index`` of
  the ``evaluate_PSNR_SSIM.m`` scripts of MPRNet and its successors, and
  ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False)``. Images need ``H, W >= 11``.
* ``ssim_matlab``: SSIM as MATLAB's built-in ``ssim`` computes it: the same Gaussian window over
  every pixel, the image extended by replicating its border, constants from ``dynamic_range``
  (MATLAB: the range of the input's class, 255 for ``uint8``, 1 for ``double``). PReNet's
  ``statistic/statistic_*.m`` (and the scripts copied from it) call ``ssim(Y*255, Yref*255)`` on
  doubles: ``dynamic_range = data_range / 255`` here (``SSIM_STATISTIC_M``).
* ``psnr_y`` / ``ssim_y``: the same on the luma channel of RGB inputs (``kornia.color.rgb_to_ycbcr``,
  full-range BT.601: ``Y = 0.299 R + 0.587 G + 0.114 B``). ``studio_swing=True`` maps Y to
  ``16/255 + 219/255 * Y``; with ``rgb8=True`` the RGB input is first rounded to 8 bits, as the
  PNG file a script reads holds it: together MATLAB's ``rgb2ycbcr(im2double(imread(file)))`` and
  BasicSR's ``to_y_channel``, Y not rounded (``Y_MATLAB``): the deraining papers' scripts; their PSNR
  is about ``20 log10(255/219) = 1.32`` dB higher than full-range Y. ``quantize=True`` is
  ``rgb2ycbcr`` on ``uint8`` images instead (``Y_MATLAB_UINT8``): Y on the 0..255 scale rounded half
  away from zero to an integer too.

Direction: higher is better for every metric here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia.color import rgb_to_ycbcr
from kornia.filters import get_gaussian_kernel2d
from kornia.metrics import psnr as _kornia_psnr
from kornia.metrics import ssim as _kornia_ssim

__all__ = ["psnr", "ssim", "ssim_matlab", "psnr_y", "ssim_y", "rgb_to_luma", "Y_MATLAB", "Y_MATLAB_UINT8",
           "SSIM_CONVENTIONS", "SSIM_STATISTIC_M"]

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
#: ``rgb2ycbcr(im2double(img))`` of an 8-bit file: studio-swing Y, not rounded (keyword arguments of
#: ``psnr_y``/``ssim_y``).
Y_MATLAB: dict[str, bool] = {"studio_swing": True, "rgb8": True}
#: ``rgb2ycbcr`` on ``uint8`` images: studio-swing Y rounded to integers.
Y_MATLAB_UINT8: dict[str, bool] = {"studio_swing": True, "quantize": True}
#: ``ssim_matlab``'s constants as PReNet's ``statistic_*.m`` get them (``ssim(Y*255, Yref*255)`` on doubles).
SSIM_STATISTIC_M = 1.0 / 255.0
#: SSIM conventions of ``ssim_y`` by name.
SSIM_CONVENTIONS = ("ssim_index", "matlab", "statistic_m")


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


def ssim_matlab(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0,
                dynamic_range: float | None = None) -> torch.Tensor:
    """MATLAB ``ssim``: Gaussian window over every pixel, border replicated, ``C = (K * dynamic_range)^2``
    (``None``: ``data_range``). ``[B, C, H, W]`` x2 -> ``[B]`` (mean over channels and pixels), computed in
    float64 as MATLAB does (the small constants of ``SSIM_STATISTIC_M`` leave float32 variances too coarse)."""
    _check(x, y)
    dtype = x.dtype
    x, y = x.double(), y.double()
    L = data_range if dynamic_range is None else dynamic_range
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    channels = x.shape[1]
    sigma = torch.tensor([[SSIM_SIGMA, SSIM_SIGMA]], dtype=x.dtype, device=x.device)
    kernel = get_gaussian_kernel2d((SSIM_WINDOW, SSIM_WINDOW), sigma, device=x.device, dtype=x.dtype)
    kernel = kernel.expand(channels, 1, SSIM_WINDOW, SSIM_WINDOW)
    pad = SSIM_WINDOW // 2

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(t, (pad, pad, pad, pad), mode="replicate"), kernel, groups=channels)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    smap = (2 * mx * my + c1) * (2 * sxy + c2) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return smap.flatten(1).mean(1).to(dtype)


def _round8(x: torch.Tensor) -> torch.Tensor:
    """Round a ``[0, 1]`` value to the nearest 8-bit level, halves away from zero (MATLAB)."""
    return torch.floor(x.clamp(0.0, 1.0) * 255.0 + 0.5) / 255.0


def rgb_to_luma(x: torch.Tensor, studio_swing: bool = False, quantize: bool = False,
                rgb8: bool = False) -> torch.Tensor:
    """Luma of an RGB image in ``[0, 1]``: ``[B, 3, H, W]`` -> ``[B, 1, H, W]`` (see module doc)."""
    if quantize or rgb8:
        x = _round8(x)
    lum = rgb_to_ycbcr(x)[:, :1]
    if studio_swing:
        lum = lum * (219.0 / 255.0) + 16.0 / 255.0
    return _round8(lum) if quantize else lum


def psnr_y(x: torch.Tensor, y: torch.Tensor, studio_swing: bool = False, quantize: bool = False,
           rgb8: bool = False) -> torch.Tensor:
    """PSNR on the Y channel of RGB images in ``[0, 1]``. ``[B, 3, H, W]`` x2 -> ``[B]``."""
    return psnr(rgb_to_luma(x, studio_swing, quantize, rgb8), rgb_to_luma(y, studio_swing, quantize, rgb8), 1.0)


def ssim_y(x: torch.Tensor, y: torch.Tensor, studio_swing: bool = False, quantize: bool = False,
           rgb8: bool = False, convention: str = "ssim_index") -> torch.Tensor:
    """SSIM on the Y channel of RGB images in ``[0, 1]``, by ``convention`` (``SSIM_CONVENTIONS``):
    ``ssim_index`` (``ssim``), ``matlab`` (``ssim_matlab``, L = 1 on [0, 1] as MATLAB on uint8 images) or
    ``statistic_m`` (``ssim_matlab`` with PReNet's constants). ``[B, 3, H, W]`` x2 -> ``[B]``."""
    a, b = rgb_to_luma(x, studio_swing, quantize, rgb8), rgb_to_luma(y, studio_swing, quantize, rgb8)
    if convention == "ssim_index":
        return ssim(a, b, 1.0)
    if convention == "matlab":
        return ssim_matlab(a, b, 1.0)
    if convention == "statistic_m":
        return ssim_matlab(a, b, 1.0, SSIM_STATISTIC_M)
    raise ValueError(f"unknown SSIM convention {convention!r}; known: {', '.join(SSIM_CONVENTIONS)}")
