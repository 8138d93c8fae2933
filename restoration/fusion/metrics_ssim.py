"""SSIM of a fused image to both sources: the evaluator's call and the textbook definition.

``ssim_evaluator`` reproduces ``skimage.metrics.structural_similarity(F, A)`` as the MMIF-CDDFuse
``Evaluator`` calls it: float32 images on the ``[0, 255]`` scale and NO ``data_range``. scikit-image
0.19 (the version that repository pins) then takes the range of the float dtype, ``(-1, 1)``, so
the call really uses ``data_range = 2``: ``C1 = (0.01*2)^2 = 4e-4``, ``C2 = (0.03*2)^2 = 3.6e-3``,
negligible against 8-bit variances (newer scikit-image refuses float input without a range).
The rest of that call: 7x7 uniform window, sample covariance (``49/48``), mean over the positions
whose window lies inside the image (the 3-pixel border is cropped), arithmetic in float32 (the box
filter passes rounded to float32 one axis at a time, as ``scipy.ndimage.uniform_filter`` does),
reproduced here so that flat regions, where float32 cancellation matters, give the same numbers.

``ssim_textbook`` is Wang et al. (2004): 11x11 Gaussian window (sigma 1.5), ``data_range = 255``,
``K1 = 0.01``, ``K2 = 0.03``, population covariance, valid positions (kornia,
``restoration.metrics.ssim``).

Both return the SUM over the two sources, ``ssim(F, A) + ssim(F, B)`` (at most 2); higher is better.
"""

from __future__ import annotations

import torch

from restoration.metrics import ssim as _kornia_ssim

__all__ = ["EVALUATOR_SSIM_DATA_RANGE", "ssim_evaluator", "ssim_pair_evaluator", "ssim_textbook"]

#: The data range the evaluator's SSIM call really uses (scikit-image's float dtype range).
EVALUATOR_SSIM_DATA_RANGE = 2.0
_WIN = 7


def _box_mean_f32(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean of 7 neighbours along ``dim`` (valid positions), summed in float64, rounded to float32."""
    s = x.double().unfold(dim, _WIN, 1).sum(-1)
    return (s / _WIN).float()


def _uniform_valid_f32(x: torch.Tensor) -> torch.Tensor:
    """7x7 uniform filter at valid positions, rows first then columns: ``[N, H, W] -> [N, H-6, W-6]``."""
    return _box_mean_f32(_box_mean_f32(x, 1), 2)


def ssim_pair_evaluator(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The evaluator's ``structural_similarity(x, y)``: ``[N, H, W]`` x2 on ``[0, 255]`` -> ``[N]`` float64."""
    if x.shape != y.shape or x.ndim != 3:
        raise ValueError(f"expected two [N, H, W] tensors of equal shape, got {tuple(x.shape)}, {tuple(y.shape)}")
    if min(x.shape[-2:]) < _WIN:
        raise ValueError(f"SSIM needs images of at least {_WIN}x{_WIN}, got {tuple(x.shape[-2:])}")
    x, y = x.float(), y.float()
    f32 = lambda v: torch.tensor(v, dtype=torch.float32, device=x.device)  # noqa: E731
    cov_norm = f32(_WIN * _WIN / (_WIN * _WIN - 1.0))
    c1 = f32((0.01 * EVALUATOR_SSIM_DATA_RANGE) ** 2)
    c2 = f32((0.03 * EVALUATOR_SSIM_DATA_RANGE) ** 2)
    ux, uy = _uniform_valid_f32(x), _uniform_valid_f32(y)
    uxx, uyy, uxy = _uniform_valid_f32(x * x), _uniform_valid_f32(y * y), _uniform_valid_f32(x * y)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    a1 = 2 * ux * uy + c1
    a2 = 2 * vxy + c2
    b1 = ux * ux + uy * uy + c1
    b2 = vx + vy + c2
    s = (a1 * a2) / (b1 * b2)
    return s.double().flatten(1).mean(1)


def ssim_evaluator(fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``ssim(F, A) + ssim(F, B)`` as the evaluator computes it: ``[N, H, W]`` x3 on ``[0, 255]`` -> ``[N]``."""
    return ssim_pair_evaluator(fused, a) + ssim_pair_evaluator(fused, b)


def ssim_textbook(fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Wang et al. SSIM (Gaussian 11x11, range 255) summed over both sources: ``[N, H, W]`` x3 -> ``[N]``."""
    f, a, b = (t.double().unsqueeze(1) for t in (fused, a, b))
    return _kornia_ssim(f, a, 255.0) + _kornia_ssim(f, b, 255.0)
