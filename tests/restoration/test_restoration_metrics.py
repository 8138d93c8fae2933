"""PSNR/SSIM against scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from restoration.metrics import psnr, psnr_y, ssim, ssim_y

SK_SSIM = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)


def _pair(dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 24, generator=g, dtype=torch.float64)
    y = (x + 0.08 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    return x.to(dtype), y.to(dtype)


def _hwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(1, 2, 0).numpy()


def test_per_image_values_match_skimage():
    x, y = _pair()
    p, s = psnr(x, y), ssim(x, y)
    assert p.shape == s.shape == (2,)
    for i in range(2):
        a, b = _hwc(x[i]), _hwc(y[i])
        assert p[i].item() == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1.0), abs=1e-9)
        expect = structural_similarity(a, b, channel_axis=2, **SK_SSIM)
        assert s[i].item() == pytest.approx(expect, abs=1e-9)
    xf, yf = _pair(torch.float32)  # float32: tolerance 1e-5
    sf = ssim(xf, yf)
    for i in range(2):
        expect = structural_similarity(_hwc(xf[i]), _hwc(yf[i]), channel_axis=2, **SK_SSIM)
        assert sf[i].item() == pytest.approx(expect, abs=1e-5)


def test_luma_metrics_match_skimage_on_y():
    x, y = _pair()
    w = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64).view(1, 3, 1, 1)
    lx, ly = (x * w).sum(1), (y * w).sum(1)
    py, sy = psnr_y(x, y), ssim_y(x, y)
    for i in range(2):
        a, b = lx[i].numpy(), ly[i].numpy()
        assert py[i].item() == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1.0), abs=1e-6)
        assert sy[i].item() == pytest.approx(structural_similarity(a, b, **SK_SSIM), abs=1e-6)
    shift = psnr_y(x, y, studio_swing=True) - psnr_y(x, y)
    assert torch.allclose(shift, torch.full_like(shift, 20 * math.log10(255 / 219)), atol=1e-6)


def test_identical_images():
    x, _ = _pair(torch.float32)
    assert torch.isinf(psnr(x, x)).all()
    assert torch.allclose(ssim(x, x), torch.ones(2), atol=1e-6)


def test_matlab_rgb2ycbcr_convention_against_numpy():
    """MATLAB: Y = uint8(16 + (65.481 R + 128.553 G + 24.966 B) / 255) on uint8 RGB, then PSNR
    with peak 255 and Wang's SSIM with L = 255, written in numpy/skimage on the 0..255 scale."""
    from restoration.metrics import Y_MATLAB

    x, y = _pair()
    x8 = np.floor(x.numpy() * 255 + 0.5)  # what an 8-bit PNG of x holds
    y8 = np.floor(y.numpy() * 255 + 0.5)
    coef = np.array([65.481, 128.553, 24.966]).reshape(1, 3, 1, 1)

    def y_matlab(rgb8):
        return np.floor((rgb8 * coef).sum(1) / 255.0 + 16.0 + 0.5)

    ya, yb = y_matlab(x8), y_matlab(y8)
    assert ya.min() >= 16 and ya.max() <= 235
    py, sy = psnr_y(x, y, **Y_MATLAB), ssim_y(x, y, **Y_MATLAB)
    for i in range(2):
        mse = np.mean((ya[i] - yb[i]) ** 2)
        assert py[i].item() == pytest.approx(10 * np.log10(255.0**2 / mse), abs=1e-6)
        expect = structural_similarity(ya[i], yb[i], **{**SK_SSIM, "data_range": 255.0})
        assert sy[i].item() == pytest.approx(expect, abs=1e-6)
    # the rounding matters: values differ from the unrounded studio-swing Y
    assert (py - psnr_y(x, y, studio_swing=True)).abs().max() > 1e-4
