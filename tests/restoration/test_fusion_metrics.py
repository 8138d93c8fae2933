"""Fusion metrics against independent float64 computations written another way (numpy loops,
``np.unique`` entropies, ``np.corrcoef``, ``np.gradient``, scikit-image, OpenCV)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from skimage.metrics import structural_similarity

from restoration.fusion import metrics as M
from restoration.fusion.metrics_qabf import QABF_CONSTANTS
from restoration.fusion.metrics_vif import VIF_MIN_SIZE

RNG = np.random.default_rng(0)


def triple(h: int = 24, w: int = 20, integer: bool = True, smooth: bool = False) -> list[np.ndarray]:
    out = []
    for _ in range(3):
        if smooth:
            yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
            c = RNG.uniform(0.5, 3, 2)
            x = 128 + 100 * np.sin(c[0] * 6 * xx) * np.cos(c[1] * 4 * yy) + RNG.normal(0, 5, (h, w))
            x = np.clip(x, 0, 255)
        else:
            x = RNG.uniform(0, 255, (h, w))
        out.append(np.round(x) if integer else x)
    return out


def t(*arrays: np.ndarray) -> list[torch.Tensor]:
    return [torch.from_numpy(a)[None] for a in arrays]


def close(ours: torch.Tensor, expected: float, rel: float = 1e-9) -> None:
    assert ours.shape == (1,)
    assert float(ours[0]) == pytest.approx(expected, rel=rel, abs=1e-12)


def test_entropy_sd_sf_ag():
    f, _, _ = triple()
    _, counts = np.unique(f, return_counts=True)
    p = counts / f.size
    close(M.entropy(*t(f)), float(-(p * np.log(p) / np.log(2)).sum()))
    close(M.std(*t(f)), math.sqrt(sum((v - f.mean()) ** 2 for v in f.ravel()) / f.size))
    dx, dy = np.diff(f, axis=1), np.diff(f, axis=0)
    close(M.spatial_frequency(*t(f)), math.sqrt((dx ** 2).sum() / dx.size + (dy ** 2).sum() / dy.size))
    gy, gx = np.gradient(f)
    close(M.average_gradient(*t(f)), float(np.sqrt((gx ** 2 + gy ** 2) / 2).mean()))


def _mi_by_entropies(x: np.ndarray, y: np.ndarray) -> float:
    def h(*cols: np.ndarray) -> float:
        _, c = np.unique(np.stack(cols, 1), axis=0, return_counts=True)
        p = c / c.sum()
        return float(-(p * np.log(p)).sum())
    return h(x.ravel()) + h(y.ravel()) - h(x.ravel(), y.ravel())


@pytest.mark.parametrize("integer", [True, False])
def test_mutual_information_nats_summed(integer):
    f, a, b = triple(integer=integer)
    if integer:  # coarse grey levels so that the joint histogram is well filled
        f, a, b = (np.round(x / 32) * 32 for x in (f, a, b))
    close(M.mutual_information(*t(f, a, b)), _mi_by_entropies(f, a) + _mi_by_entropies(f, b), 1e-9)
    bits = (_mi_by_entropies(f, a) + _mi_by_entropies(f, b)) / math.log(2)
    close(M.mutual_information_bits(*t(f, a, b)), bits, 1e-9)
    close(M.fusion_metrics(*(torch.from_numpy(x / 255)[None, None] for x in (f, a, b)), names=["mi", "mi_bits"],
                           quantize=False)["mi_bits"], bits, 1e-9)


def test_correlations_mse_psnr():
    f, a, b = triple()
    corr = lambda x, y: np.corrcoef(x.ravel(), y.ravel())[0, 1]  # noqa: E731
    close(M.cc(*t(f, a, b)), (corr(a, f) + corr(b, f)) / 2)
    close(M.scd(*t(f, a, b)), corr(a, f - b) + corr(b, f - a))
    m = (np.square(a - f).sum() + np.square(b - f).sum()) / (2 * f.size)
    close(M.mse(*t(f, a, b)), m)
    close(M.psnr(*t(f, a, b)), 20 * math.log10(f.max()) - 10 * math.log10(m))


def _qabf_loops(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    tg, kg, dg, ta, ka, da = QABF_CONSTANTS

    def edges(img):
        p = np.pad(img, 1)
        h, w = img.shape
        g, ang = np.zeros((h, w)), np.zeros((h, w))
        for i in range(h):
            for j in range(w):
                n = p[i:i + 3, j:j + 3]  # n[r, c] = img[i + r - 1, j + c - 1]
                sx = (n[0, 2] + 2 * n[1, 2] + n[2, 2]) - (n[0, 0] + 2 * n[1, 0] + n[2, 0])
                sy = (n[0, 0] + 2 * n[0, 1] + n[0, 2]) - (n[2, 0] + 2 * n[2, 1] + n[2, 2])
                sx, sy = -sx, -sy  # true convolution flips the kernels
                g[i, j] = math.hypot(sx, sy)
                ang[i, j] = math.pi / 2 if sx == 0 else math.atan(sy / sx)
        return g, ang

    (gf, af), (ga, aa), (gb, ab) = edges(f), edges(a), edges(b)

    def q(gs, as_):
        out = np.zeros_like(gs)
        for idx in np.ndindex(gs.shape):
            s, fv = gs[idx], gf[idx]
            rel = fv / s if s > fv else (fv if s == fv else s / fv)
            rel_a = 1 - abs(as_[idx] - af[idx]) / (math.pi / 2)
            out[idx] = tg / (1 + math.exp(kg * (rel - dg))) * ta / (1 + math.exp(ka * (rel_a - da)))
        return out

    return float(((q(ga, aa) * ga).sum() + (q(gb, ab) * gb).sum()) / (ga + gb).sum())


def test_qabf_against_loops_including_equal_strength_rule():
    f, a, b = triple(16, 14, smooth=True)
    close(M.qabf(*t(f, a, b)), _qabf_loops(f, a, b), 1e-9)
    # F == A: every edge pixel has g_A == g_F, where the rule takes g_F (not 1)
    close(M.qabf(*t(a, a, b)), _qabf_loops(a, a, b), 1e-9)


def _vifp_windows(ref: np.ndarray, dist: np.ndarray) -> float:
    """Sheikh-Bovik pixel VIF by explicit weighted windows and per-pixel cases."""
    eps, nsq = 1e-10, 2.0
    num = den = 0.0
    for scale in range(1, 5):
        n = 2 ** (5 - scale) + 1
        r = np.arange(n) - (n - 1) / 2
        win = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * (n / 5) ** 2))
        win /= win.sum()
        wmean = lambda x: (sliding_window_view(x, (n, n)) * win).sum((-1, -2))  # noqa: E731
        if scale > 1:
            ref, dist = wmean(ref)[::2, ::2], wmean(dist)[::2, ::2]
        m1, m2 = wmean(ref), wmean(dist)
        v1, v2, c12 = wmean(ref * ref) - m1 ** 2, wmean(dist * dist) - m2 ** 2, wmean(ref * dist) - m1 * m2
        for s1, s2, s12 in zip(v1.ravel(), v2.ravel(), c12.ravel()):
            s1, s2 = max(s1, 0.0), max(s2, 0.0)
            if s1 < eps:
                g, sv, s1 = 0.0, s2, 0.0
            else:
                g = s12 / (s1 + eps)
                sv = s2 - g * s12
            if s2 < eps:
                g, sv = 0.0, 0.0
            if g < 0:
                g, sv = 0.0, s2
            sv = max(sv, eps)
            num += math.log10(1 + g * g * s1 / (sv + nsq))
            den += math.log10(1 + s1 / nsq)
    return num / den


def test_vif_against_windows():
    f, a, b = triple(VIF_MIN_SIZE + 3, VIF_MIN_SIZE, smooth=True)
    close(M.vif(*t(f, a, b)), _vifp_windows(a, f) + _vifp_windows(b, f), 1e-9)
    with pytest.raises(ValueError, match="at least 41x41"):
        M.vif(*t(*triple(32, 32)))


def test_vif_perfect_copy_and_constant_source():
    f, _, _ = triple(VIF_MIN_SIZE, VIF_MIN_SIZE, smooth=True)
    flat = np.full_like(f, 100.0)
    # vifp(f, f) = 1 up to sigma_n; a constant reference gives 0/0 -> 1 by the evaluator's rule
    v = M.vif(*t(f, f, flat))
    assert float(v[0]) == pytest.approx(_vifp_windows(f, f) + 1.0, rel=1e-9)


def _ssim_windows(x: np.ndarray, y: np.ndarray, data_range: float) -> float:
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    wx, wy = sliding_window_view(x, (7, 7)).reshape(-1, 49), sliding_window_view(y, (7, 7)).reshape(-1, 49)
    mx, my = wx.mean(1), wy.mean(1)
    vx, vy = wx.var(1, ddof=1), wy.var(1, ddof=1)
    cxy = ((wx - mx[:, None]) * (wy - my[:, None])).sum(1) / 48
    s = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return float(s.mean())


def test_ssim_evaluator_float64_windows_and_skimage_call():
    f, a, b = triple(20, 18)
    ours = M.ssim_evaluator(*t(f, a, b))
    # float64 sample-covariance windows: the float32 arithmetic stays within 1e-4 on textured images
    close(ours, _ssim_windows(f, a, 2.0) + _ssim_windows(f, b, 2.0), 1e-4)
    # the evaluator's own call (float32 images, the data range scikit-image 0.19 takes for floats)
    sk = sum(structural_similarity(f.astype(np.float32), s.astype(np.float32), data_range=2.0) for s in (a, b))
    close(ours, float(sk), 1e-6)


def test_ssim_textbook_matches_skimage_gaussian():
    f, a, b = triple(24, 24, smooth=True)
    sk = sum(structural_similarity(f, s, data_range=255.0, gaussian_weights=True, sigma=1.5,
                                   use_sample_covariance=False) for s in (a, b))
    # skimage averages over all pixels (reflect padding); ours over valid windows: compare valid ones
    ours = M.ssim_textbook(*t(f, a, b))
    assert 0 < float(ours[0]) <= 2
    _, smap_a = structural_similarity(f, a, data_range=255.0, gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False, full=True)
    _, smap_b = structural_similarity(f, b, data_range=255.0, gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False, full=True)
    valid = smap_a[5:-5, 5:-5].mean() + smap_b[5:-5, 5:-5].mean()
    close(ours, float(valid), 1e-6)
    assert abs(float(sk) - valid) < 0.2  # sanity: the border is where they differ


def test_gray_conversion_is_opencv_float_bgr2gray_rounded():
    rgb = RNG.integers(0, 256, (2, 17, 19, 3)).astype(np.uint8)
    x = torch.from_numpy(rgb).permute(0, 3, 1, 2).double() / 255.0
    expected = np.stack([np.round(cv2.cvtColor(im[:, :, ::-1].astype(np.float32).copy(), cv2.COLOR_BGR2GRAY))
                         for im in rgb])
    assert np.array_equal(M.to_gray255(x).numpy(), expected)
    gray = torch.rand(1, 1, 5, 6, dtype=torch.float64)
    assert torch.equal(M.to_gray255(gray)[0], torch.round(gray[0, 0] * 255))


def test_fusion_metrics_wrapper_directions_and_errors():
    fused, ir, vi = torch.rand(2, 3, 16, 16), torch.rand(2, 1, 16, 16), torch.rand(2, 3, 16, 16)
    names = [n for n in M.METRIC_NAMES if n != "vif"]
    out = M.fusion_metrics(fused, ir, vi, names=names)
    assert list(out) == names and all(v.shape == (2,) for v in out.values())
    f, a, b = (M.to_gray255(x) for x in (fused, ir, vi))
    assert torch.equal(out["qabf"], M.qabf(f, a, b))
    assert M.METRIC_DIRECTIONS["mse"] is False and M.METRIC_DIRECTIONS["en"] is True
    assert set(M.METRIC_NAMES) == {"en", "sd", "sf", "ag", "mi", "mi_bits", "vif", "qabf", "scd", "ssim", "cc", "psnr",
                                   "mse"}
    tb = M.fusion_metrics(fused, ir, vi, names=["ssim"], textbook_ssim=True)["ssim"]
    assert torch.allclose(tb, M.ssim_textbook(f, a, b))
    with pytest.raises(ValueError, match="unknown fusion metric"):
        M.fusion_metrics(fused, ir, vi, names=["nope"])
    with pytest.raises(ValueError, match="sizes differ"):
        M.fusion_metrics(fused, ir[..., :8], vi, names=["en"])


def test_better_fusion_scores_better():
    """A fused image holding both sources' structure beats a blank one on the reference metrics."""
    _, a, b = triple(VIF_MIN_SIZE, VIF_MIN_SIZE, smooth=True)
    good = (a + b) / 2
    blank = np.full_like(a, 128.0)
    g = M.fusion_metrics(*(torch.from_numpy(x / 255)[None, None] for x in (good, a, b)))
    z = M.fusion_metrics(*(torch.from_numpy(x / 255)[None, None] for x in (blank, a, b)))
    for name in ("en", "sd", "mi", "vif", "qabf", "ssim"):
        assert float(g[name][0]) > float(z[name][0]), name
