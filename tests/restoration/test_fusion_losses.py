"""Fusion losses and luma fusion against independent float64 computations (numpy, scipy, skimage)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.metrics import structural_similarity

from restoration.fusion import losses as L
from restoration.fusion.color import fuse_color, merge_luma, split_luma

torch.manual_seed(0)


def _imgs(n=2, h=16, w=14):
    return [torch.rand(n, 1, h, w, dtype=torch.float64) for _ in range(3)]


def test_intensity_loss():
    f, a, b = _imgs()
    F, A, B = (x.numpy() for x in (f, a, b))
    assert float(L.intensity_loss(f, a, b)) == pytest.approx(np.abs(F - np.where(A > B, A, B)).mean(), rel=1e-12)


def _sobel_mag(x: np.ndarray) -> np.ndarray:
    gx = ndimage.sobel(x, axis=-1, mode="nearest")
    gy = ndimage.sobel(x, axis=-2, mode="nearest")
    return np.sqrt(gx ** 2 + gy ** 2 + 1e-6)


def test_gradient_loss_matches_scipy_sobel():
    f, a, b = _imgs()
    F, A, B = (x.numpy()[:, 0] for x in (f, a, b))
    mags = [np.stack([_sobel_mag(im) for im in X]) for X in (F, A, B)]
    expected = np.abs(mags[0] - np.maximum(mags[1], mags[2])).mean()
    assert float(L.gradient_loss(f, a, b)) == pytest.approx(expected, rel=1e-10)


def test_ssim_loss_matches_skimage_valid_windows():
    f, a, b = _imgs(1, 24, 22)
    F, A, B = (x.numpy()[0, 0] for x in (f, a, b))

    def s(x, y):
        _, m = structural_similarity(x, y, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, full=True)
        return m[5:-5, 5:-5].mean()

    expected = 0.5 * (1 - s(F, A)) + 0.5 * (1 - s(F, B))
    assert float(L.ssim_loss(f, a, b)) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="at least 11x11"):
        L.ssim_loss(*_imgs(1, 8, 8))


def test_weights_as_tensors_get_gradients():
    f, a, b = _imgs()
    w = torch.tensor([0.5, 2.0, 1.5], dtype=torch.float64, requires_grad=True)
    total, terms = L.fusion_loss(f, a, b, w)
    total.backward()
    expected = torch.stack([terms[n] for n in L.LOSS_TERMS])
    assert torch.allclose(w.grad, expected)
    assert float(total.detach()) == pytest.approx(float((w.detach() * expected).sum()), rel=1e-12)
    total2, terms2 = L.fusion_loss(f, a, b, {"gradient": 0.0})
    assert "gradient" not in terms2 and float(total2) == pytest.approx(float(terms["intensity"] + terms["ssim"]))
    with pytest.raises(ValueError, match="unknown loss term"):
        L.fusion_loss(f, a, b, {"edges": 1.0})
    assert float(L.FusionLoss({"ssim": 0.0})(f, a, b)) == pytest.approx(float(terms["intensity"] + terms["gradient"]))


def test_loss_gradient_wrt_fused_by_finite_differences():
    f, a, b = _imgs(1, 12, 12)
    f.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: L.fusion_loss(x, a, b, {"intensity": 0.0})[0], (f,), eps=1e-6, atol=1e-5)


def test_luma_round_trip_and_colour_fusion():
    rgb = torch.rand(2, 3, 8, 9, dtype=torch.float64)
    y, cbcr = split_luma(rgb)
    r, g, b = rgb.numpy()[:, 0], rgb.numpy()[:, 1], rgb.numpy()[:, 2]
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    # BT.601 Cb = 0.5 + (B - Y) / 1.772, Cr = 0.5 + (R - Y) / 1.402; kornia rounds to 0.564 / 0.713
    assert np.allclose(y.numpy()[:, 0], luma, atol=1e-12)
    assert np.allclose(cbcr.numpy()[:, 0], 0.5 + (b - luma) / 1.772, atol=5e-4)
    assert np.allclose(cbcr.numpy()[:, 1], 0.5 + (r - luma) / 1.402, atol=5e-4)
    assert torch.allclose(merge_luma(y, cbcr), rgb, atol=1e-6)
    ir = torch.rand(2, 1, 8, 9, dtype=torch.float64)
    out = fuse_color(lambda i, v: torch.maximum(i, v), ir, rgb)
    assert out.shape == (2, 3, 8, 9)
    y2, cbcr2 = split_luma(out)
    inside = (out > 1e-6).all(1, keepdim=True) & (out < 1 - 1e-6).all(1, keepdim=True)  # unclamped pixels
    assert torch.allclose(y2[inside], torch.maximum(ir, y)[inside], atol=1e-6)
    assert torch.allclose(cbcr2[inside.expand(-1, 2, -1, -1)], cbcr[inside.expand(-1, 2, -1, -1)], atol=1e-6)
    gray = torch.rand(2, 1, 8, 9)
    assert fuse_color(lambda i, v: (i + v) / 2, ir.float(), gray).shape == (2, 1, 8, 9)
