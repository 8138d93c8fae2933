"""PSNR/SSIM against scikit-image."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.ndimage import correlate
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


COEF = np.array([65.481, 128.553, 24.966]).reshape(1, 3, 1, 1)
REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real"


def _fspecial(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    ax = np.arange(size) - (size - 1) / 2
    g = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * sigma**2))
    return g / g.sum()


def _matlab_ssim(a: np.ndarray, b: np.ndarray, L: float) -> float:
    """MATLAB's ssim.m: imfilter(..., 'conv', 'replicate') with fspecial('gaussian', 11, 1.5), map mean."""
    f = lambda t: correlate(t, _fspecial(), mode="nearest")  # noqa: E731
    m1, m2 = f(a), f(b)
    s11, s22, s12 = f(a * a) - m1**2, f(b * b) - m2**2, f(a * b) - m1 * m2
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    return float((((2 * m1 * m2 + c1) * (2 * s12 + c2)) / ((m1**2 + m2**2 + c1) * (s11 + s22 + c2))).mean())


def test_matlab_rgb2ycbcr_convention_against_numpy():
    """rgb2ycbcr(im2double(img)) of the 8-bit image: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 on the
    0..255 scale, NOT rounded; PSNR with peak 255 and Wang's SSIM with L = 255, written in numpy/skimage."""
    from restoration.metrics import Y_MATLAB

    x, y = _pair()
    ya, yb = ((np.floor(t.numpy() * 255 + 0.5) * COEF).sum(1) / 255.0 + 16.0 for t in (x, y))
    assert ya.min() >= 16 and ya.max() <= 235 and not np.allclose(ya, np.round(ya))
    py, sy = psnr_y(x, y, **Y_MATLAB), ssim_y(x, y, **Y_MATLAB)
    for i in range(2):
        mse = np.mean((ya[i] - yb[i]) ** 2)
        assert py[i].item() == pytest.approx(10 * np.log10(255.0**2 / mse), abs=1e-6)
        expect = structural_similarity(ya[i], yb[i], **{**SK_SSIM, "data_range": 255.0})
        assert sy[i].item() == pytest.approx(expect, abs=1e-6)


def test_uint8_rgb2ycbcr_is_a_named_option_that_rounds():
    """rgb2ycbcr on uint8 images: Y = uint8(16 + (65.481 R + 128.553 G + 24.966 B) / 255) of 8-bit RGB."""
    from restoration.metrics import Y_MATLAB, Y_MATLAB_UINT8

    x, y = _pair()
    ya, yb = (np.floor((np.floor(t.numpy() * 255 + 0.5) * COEF).sum(1) / 255.0 + 16.0 + 0.5) for t in (x, y))
    py, sy = psnr_y(x, y, **Y_MATLAB_UINT8), ssim_y(x, y, **Y_MATLAB_UINT8)
    for i in range(2):
        mse = np.mean((ya[i] - yb[i]) ** 2)
        assert py[i].item() == pytest.approx(10 * np.log10(255.0**2 / mse), abs=1e-6)
        expect = structural_similarity(ya[i], yb[i], **{**SK_SSIM, "data_range": 255.0})
        assert sy[i].item() == pytest.approx(expect, abs=1e-6)
    assert (py - psnr_y(x, y, **Y_MATLAB)).abs().max() > 1e-4  # the rounding matters


def test_matlab_ssim_conventions_against_numpy():
    """MATLAB's ssim on uint8-range data (L = 255) and as PReNet's statistic_*.m calls it on doubles
    (ssim(Y*255, Yref*255): L = 1 from the class double)."""
    from restoration.metrics import Y_MATLAB

    x, y = _pair()
    ya, yb = ((np.floor(t.numpy() * 255 + 0.5) * COEF).sum(1) / 255.0 + 16.0 for t in (x, y))
    for convention, L in (("matlab", 255.0), ("statistic_m", 1.0)):
        got = ssim_y(x, y, **Y_MATLAB, convention=convention)
        for i in range(2):
            assert got[i].item() == pytest.approx(_matlab_ssim(ya[i], yb[i], L), abs=1e-6), convention
    got32 = ssim_y(x.float(), y.float(), **Y_MATLAB, convention="statistic_m")  # tiny constants: float64 inside
    assert got32.dtype == torch.float32
    for i in range(2):
        assert got32[i].item() == pytest.approx(_matlab_ssim(ya[i], yb[i], 1.0), abs=1e-5)
    assert (ssim_y(x, y, **Y_MATLAB, convention="matlab") - ssim_y(x, y, **Y_MATLAB)).abs().min() > 1e-4
    with pytest.raises(ValueError, match="unknown SSIM convention"):
        ssim_y(x, y, convention="nope")


@pytest.mark.skipif(not (REAL / "derain" / "Rain100H_sample").is_dir(), reason="no ../shared/data/real")
def test_derain_metrics_on_rain100h_rainy_inputs():
    """The 6 rainy inputs against their clean images, scored from the files by numpy/skimage."""
    import cv2

    from datasets.io import read_image
    from restoration.derain.evaluation import derain_metrics

    root = REAL / "derain" / "Rain100H_sample"
    psnrs, ssims = [], []
    for rainy in sorted((root / "rainy").glob("rain-*.png")):
        clean = root / rainy.name.replace("rain-", "norain-")
        a, b = (cv2.imread(str(p))[..., ::-1].astype(np.float64) for p in (rainy, clean))
        ya, yb = (16.0 + (t * COEF.reshape(3)).sum(-1) / 255.0 for t in (a, b))
        m = derain_metrics(read_image(rainy)[None].double(), read_image(clean)[None].double())
        p = 10 * np.log10(255.0**2 / np.mean((ya - yb) ** 2))
        s = structural_similarity(ya, yb, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
        assert float(m["psnr"][0]) == pytest.approx(p, abs=1e-4) and float(m["ssim"][0]) == pytest.approx(s, abs=1e-5)
        psnrs.append(p)
        ssims.append(s)
    assert len(psnrs) == 6
    assert np.mean(psnrs) == pytest.approx(14.2346, abs=1e-3) and np.mean(ssims) == pytest.approx(0.3536, abs=1e-3)
