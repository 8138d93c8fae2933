"""Infrared/visible folders (three layouts, 8/16 bit, gray/RGB), their one-line errors, the seeded
train/validation split and the synthetic default."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from datasets.errors import DataError
from datasets.fusion import FUSION_DIRS, FusionFolder
from datasets.splits import split_train_val
from datasets.synthetic_fusion import FUSION_SOURCES, SyntheticFusion, render_thermal, write_fusion_folder
from datasets.synthetic_lowlight import _load_source

RNG = np.random.default_rng(0)


def _write(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), arr)


def _pair(root, name, dirs=("ir", "vi"), bits=8, vi_colour=True, size=(12, 10)):
    dtype, peak = (np.uint8, 255) if bits == 8 else (np.uint16, 65535)
    ir = RNG.integers(0, peak + 1, size).astype(dtype)
    vi = RNG.integers(0, peak + 1, size + ((3,) if vi_colour else ())).astype(dtype)
    _write(root / dirs[0] / name, ir)
    _write(root / dirs[1] / name, vi)
    return ir, vi


@pytest.mark.parametrize("dirs", FUSION_DIRS)
@pytest.mark.parametrize("bits", [8, 16])
def test_layouts_and_bit_depths(tmp_path, dirs, bits):
    ir, vi = _pair(tmp_path, "a.png", dirs, bits)
    _pair(tmp_path, "b.png", dirs, bits)
    data = FusionFolder(tmp_path)
    data.verify()
    item = data[0]
    peak = 255.0 if bits == 8 else 65535.0
    assert item["name"] == "a.png" and item["size"].tolist() == [12, 10]
    assert item["ir"].shape == (1, 12, 10) and item["vi"].shape == (3, 12, 10)
    assert torch.allclose(item["ir"][0], torch.from_numpy(ir / peak).float())
    assert torch.allclose(item["vi"], torch.from_numpy(vi[:, :, ::-1].transpose(2, 0, 1) / peak).float())


def test_gray_visible_and_mixed_folder(tmp_path):
    _pair(tmp_path / "g", "a.png", vi_colour=False)
    assert FusionFolder(tmp_path / "g")[0]["vi"].shape == (1, 12, 10)
    _, vi = _pair(tmp_path / "m", "a.png", vi_colour=False)
    _pair(tmp_path / "m", "b.png", vi_colour=True)
    data = FusionFolder(tmp_path / "m")
    assert data.visible_channels == 3
    item = data[0]  # the gray visible file repeated to three channels
    assert item["vi"].shape == (3, 12, 10) and torch.equal(item["vi"][0], item["vi"][2])
    assert torch.allclose(item["vi"][1], torch.from_numpy(vi / 255.0).float())


def test_colour_infrared_becomes_gray(tmp_path):
    rgb = RNG.integers(0, 256, (12, 10, 3)).astype(np.uint8)
    _write(tmp_path / "ir" / "a.png", rgb)
    _write(tmp_path / "vi" / "a.png", rgb)
    ir = FusionFolder(tmp_path)[0]["ir"]
    expected = (rgb[:, :, 2] * 0.299 + rgb[:, :, 1] * 0.587 + rgb[:, :, 0] * 0.114) / 255.0
    assert ir.shape == (1, 12, 10) and torch.allclose(ir[0], torch.from_numpy(expected).float(), atol=1e-6)


def test_split_subfolders(tmp_path):
    _pair(tmp_path / "train", "t.png")
    _pair(tmp_path / "test", "x.png")
    assert FusionFolder(tmp_path, "train")[0]["name"] == "t.png"
    assert FusionFolder(tmp_path, "test")[0]["name"] == "x.png"
    with pytest.raises(DataError, match="no infrared/visible layout"):
        FusionFolder(tmp_path, "val")


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_missing_partner_is_one_line(tmp_path):
    _pair(tmp_path, "a.png")
    _write(tmp_path / "ir" / "lonely.png", np.zeros((12, 10), np.uint8))
    with pytest.raises(DataError) as e:
        FusionFolder(tmp_path)
    assert "lonely.png" in _one_line(e) and "no partner" in str(e.value)


def test_size_mismatch_and_alpha_found_by_verify(tmp_path):
    _pair(tmp_path / "s", "a.png")
    _write(tmp_path / "s" / "ir" / "b.png", np.zeros((12, 10), np.uint8))
    _write(tmp_path / "s" / "vi" / "b.png", np.zeros((12, 11, 3), np.uint8))
    data = FusionFolder(tmp_path / "s")
    with pytest.raises(DataError) as e:
        data.verify(progress=False)
    assert "b.png" in _one_line(e) and "equal sizes" in str(e.value)
    with pytest.raises(DataError, match="equal sizes"):
        data[1]
    _pair(tmp_path / "r", "a.png")
    _write(tmp_path / "r" / "vi" / "a.png", np.zeros((12, 10, 4), np.uint8))
    with pytest.raises(DataError) as e:
        FusionFolder(tmp_path / "r").verify()
    assert "alpha" in _one_line(e) and "a.png" in str(e.value)
    with pytest.raises(DataError, match="alpha"):
        FusionFolder(tmp_path / "r", visible_channels=3)[0]


def test_missing_sibling_and_corrupt_file(tmp_path):
    (tmp_path / "ir").mkdir()
    with pytest.raises(DataError, match="no sibling folder 'vi'"):
        FusionFolder(tmp_path)
    (tmp_path / "vi").mkdir()
    (tmp_path / "ir" / "a.png").write_bytes(b"not a png")
    (tmp_path / "vi" / "a.png").write_bytes(b"not a png")
    with pytest.raises(DataError) as e:
        FusionFolder(tmp_path).verify()
    assert "a.png" in _one_line(e)


def test_split_train_val_deterministic_and_disjoint():
    tr, va = split_train_val(10, 0.2, seed=3)
    assert (tr, va) == split_train_val(10, 0.2, seed=3)
    assert len(va) == 2 and sorted(tr + va) == list(range(10))
    assert any(split_train_val(10, 0.2, seed=s)[1] != va for s in range(4, 8))  # the seed matters
    assert split_train_val(2, 0.9, 0)[0]  # training keeps at least one item
    with pytest.raises(DataError):
        split_train_val(1, 0.2, 0)


def test_synthetic_fusion_deterministic_disjoint_and_written(tmp_path):
    assert not set(FUSION_SOURCES["train"]) & set(FUSION_SOURCES["val"] + FUSION_SOURCES["test"])
    assert not set(FUSION_SOURCES["val"]) & set(FUSION_SOURCES["test"])
    a, b = SyntheticFusion("val", size=24, count=2, seed=1), SyntheticFusion("val", size=24, count=2, seed=1)
    x, y = a[1], b[1]
    assert torch.equal(x["ir"], y["ir"]) and torch.equal(x["vi"], y["vi"])
    assert x["ir"].shape == (1, 24, 24) and x["vi"].shape == (3, 24, 24)
    assert not torch.equal(a[0]["ir"], x["ir"])
    root = write_fusion_folder(tmp_path, "test", count=2, size=20, dirs=("Inf", "Vis"))
    folder = FusionFolder(root)
    folder.verify()
    orig = SyntheticFusion("test", size=20, count=2)
    assert torch.allclose(folder[0]["vi"], orig[0]["vi"], atol=1e-6)
    assert torch.allclose(folder[0]["ir"], orig[0]["ir"], atol=1e-6)
    with pytest.raises(DataError, match="already holds"):
        write_fusion_folder(tmp_path, "test", count=1, size=20, dirs=("Inf", "Vis"))


def test_synthetic_rendering_is_a_night_capture_and_a_thermal_image():
    """The visible image keeps the photograph's fine texture, darker (night) and with the warm objects
    unlit; the infrared image has no fine scene texture and shows the warm objects bright."""
    photo = np.ascontiguousarray(_load_source("chelsea")[40:104, 60:124])
    gray = lambda a: a @ np.array([0.299, 0.587, 0.114], np.float32)  # noqa: E731
    detail = lambda a: (a - cv2.GaussianBlur(a.astype(np.float32), (0, 0), 2)).ravel()  # noqa: E731
    corr = lambda a, b: np.corrcoef(detail(a), detail(b))[0, 1]  # noqa: E731
    lum = gray(photo)
    ir, vi = render_thermal(photo, np.random.default_rng(0))
    vis = gray(vi)
    assert ir.shape == lum.shape and vi.shape == photo.shape
    assert corr(vis, lum) > 0.5 and abs(corr(ir, lum)) < 0.2  # texture: the visible image's alone
    assert vis.mean() < 0.4 * lum.mean()  # dark
    warm = ir > ir.mean() + 2 * ir.std()
    assert 0.02 < warm.mean() < 0.3 and ir[warm].mean() > ir[~warm].mean() + 0.3  # warm objects: bright in IR
    lit = vis / np.maximum(lum, 1e-3)  # light reaching the visible camera, relative to the photograph
    assert np.median(lit[warm]) < 0.5 * np.median(lit[~warm])  # ... and dim in the visible image
