"""The fast fusion metrics (separable VIF, shifted-difference Sobel, 256-level MI) against the direct
implementations they replaced (``fusion_reference_metrics``) and against values the direct ones
computed on real TNO pairs before the change (``fusion_tno8_before.json``)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from restoration.fusion import metrics as M
from restoration.fusion.metrics_vif import (VIF_MIN_SIZE, _filter_opencv, _filter_torch, filter_valid, gaussian_1d,
                                            matlab_gaussian_window, vifp)
from tests.restoration.fusion_reference_metrics import REFERENCE_METRICS

HERE = Path(__file__).resolve().parent
TNO8 = HERE.parents[1] / ".." / "shared" / "data" / "real" / "fusion" / "TNO8"
BEFORE = HERE / "fusion_tno8_before.json"
TOL = 1e-6


def _images(h: int, w: int, seed: int, integer: bool = True) -> list[torch.Tensor]:
    """Three ``[2, h, w]`` images on [0, 255] with flat patches and a constant second item source
    (the VIF and Qabf masks' corner cases)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for k in range(3):
        x = torch.rand(2, h, w, generator=g, dtype=torch.float64) * 255
        x = torch.round(x) if integer else torch.round(x * 2) / 2 + 0.25  # off the 8-bit grid
        x[0, : h // 3, : w // 2] = 77.0 + k  # flat patch
        out.append(x)
    out[1][1] = 128.0  # a constant infrared image
    return out


def test_gaussian_window_is_the_outer_square_of_its_1d_factor():
    for n in (17, 9, 5, 3):
        g = gaussian_1d(n)
        assert float(g.sum()) == pytest.approx(1.0, abs=1e-15)
        assert torch.allclose(torch.outer(g, g), matlab_gaussian_window(n), rtol=1e-13, atol=0)


@pytest.mark.parametrize("n", [17, 9, 3])
def test_separable_filtering_equals_2d_convolution(n):
    x = torch.rand(3, 45, 52, dtype=torch.float64) * 255
    direct = F.conv2d(x.unsqueeze(1), matlab_gaussian_window(n)[None, None]).squeeze(1)
    for fn in (filter_valid, _filter_opencv, _filter_torch):
        out = fn(x, gaussian_1d(n))
        assert out.shape == direct.shape and out.dtype == torch.float64
        assert torch.allclose(out, direct, rtol=1e-12, atol=1e-10), fn.__name__


@pytest.mark.parametrize("integer", [True, False])
@pytest.mark.parametrize("size", [(VIF_MIN_SIZE, VIF_MIN_SIZE), (50, 63)])
def test_fast_metrics_equal_the_direct_ones(integer, size):
    f, a, b = _images(*size, seed=size[1], integer=integer)
    for name, direct in REFERENCE_METRICS.items():
        ours, ref = M.FUSION_METRICS[name][0](f, a, b), direct(f, a, b)
        assert ours.shape == ref.shape == (2,)
        assert torch.allclose(ours, ref, rtol=0, atol=1e-10), (name, ours, ref)


def test_vifp_alone_equals_one_source_of_vif():
    f, a, b = _images(48, 44, seed=3)
    assert torch.allclose(M.vif(f, a, b), vifp(a, f) + vifp(b, f), rtol=0, atol=1e-12)


def test_mi_histogram_path_equals_labels_and_falls_back_off_the_grid():
    f, a, b = _images(20, 24, seed=5)
    direct = REFERENCE_METRICS["mi"]
    assert torch.allclose(M.mutual_information(f, a, b), direct(f, a, b), rtol=0, atol=1e-12)
    # non-integer or out-of-range values take the labels path: one bin per distinct value
    for shift in (0.5, 300.0):
        g = f + shift
        assert torch.allclose(M.mutual_information(g, a, b), direct(g, a, b), rtol=0, atol=1e-12)


def _read_rgb(path: Path) -> torch.Tensor:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).permute(2, 0, 1).double()[None] / 255


def _tno8_cases(stems: tuple[str, ...] | None = None):
    if not TNO8.is_dir():
        pytest.skip("real sample fusion/TNO8 not present (needs ../shared/data/real)")
    stored = json.loads(BEFORE.read_text())["values"]
    for key, values in stored.items():
        stem, kind = key.split("/")
        if stems is not None and stem not in stems:
            continue
        a, b = _read_rgb(TNO8 / "ir" / f"{stem}.png"), _read_rgb(TNO8 / "vi" / f"{stem}.png")
        fused = torch.maximum(a, b) if kind == "max" else (a + b) / 2
        yield key, fused, a, b, values


def _check_against_stored(stems: tuple[str, ...] | None) -> None:
    seen = 0
    for key, fused, a, b, values in _tno8_cases(stems):
        ours = M.fusion_metrics(fused, a, b, names=list(values))
        for name, before in values.items():
            assert abs(float(ours[name][0]) - before) <= TOL * max(1.0, abs(before)), (key, name)
        seen += 1
    assert seen > 0


def test_real_tno_pair_equals_the_values_stored_before():
    _check_against_stored(("07",))  # 256x256: every metric, VIF's four scales included


@pytest.mark.slow
def test_all_real_tno_pairs_equal_the_values_stored_before():
    _check_against_stored(None)  # 8 pairs up to 768x576, fused as maximum and mean
