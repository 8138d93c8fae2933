"""Deraining folder layouts read in place, and every bad input as a one-line DataError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from datasets import DataError, read_image, write_image
from datasets.derain import DerainPairs, find_derain_pairs, pair_key
from datasets.derain_video import DerainVideo, window_indices


def _img(path: Path, seed: int, h: int = 8, w: int = 10) -> torch.Tensor:
    x = torch.rand(3, h, w, generator=torch.Generator().manual_seed(seed))
    write_image(path, x)
    return read_image(path)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_pair_key():
    assert pair_key(Path("rain-001.png")) == pair_key(Path("norain-1.png")) == 1
    assert pair_key(Path("x7.png")) == "x7"


def test_rain100_flat_layout_pairs_by_number(tmp_path):
    r = _img(tmp_path / "rain-001.png", 0)
    c = _img(tmp_path / "norain-001.png", 1)
    _img(tmp_path / "rain-2.png", 2)
    _img(tmp_path / "norain-002.png", 3)
    ds = DerainPairs(tmp_path)
    ds.verify()
    assert ds.layout == "rain100" and len(ds) == 2
    item = ds[0]
    assert torch.equal(item["input"], r) and torch.equal(item["target"], c)
    assert item["name"] == "rain-001.png" and item["size"].tolist() == [8, 10]


def test_folder_layouts_and_split_folders(tmp_path):
    for name in ("1.png", "2.png"):
        _img(tmp_path / "train" / "input" / name, 0)
        _img(tmp_path / "train" / "target" / name, 1)
    _img(tmp_path / "test" / "rainy" / "rain-5.png", 2)
    _img(tmp_path / "test" / "norain" / "norain-5.png", 3)
    assert find_derain_pairs(tmp_path, "train")[0] == "input/target"
    layout, pairs = find_derain_pairs(tmp_path, "test")
    assert layout == "rainy/norain" and [p[0].name for p in pairs] == ["rain-5.png"]


def test_rain1400_fourteen_renderings(tmp_path):
    gt = _img(tmp_path / "ground_truth" / "3.jpg", 0)
    for k in (1, 2, 14):
        _img(tmp_path / "rainy_image" / f"3_{k}.jpg", k)
    ds = DerainPairs(tmp_path)
    ds.verify()
    assert ds.layout == "rain1400" and [ds.name(i) for i in range(3)] == ["3_1.jpg", "3_2.jpg", "3_14.jpg"]
    assert torch.equal(ds[2]["target"], gt)


def test_pad_multiple_keeps_size(tmp_path):
    _img(tmp_path / "input" / "a.png", 0, 7, 9)
    _img(tmp_path / "target" / "a.png", 1, 7, 9)
    item = DerainPairs(tmp_path, pad_multiple=4)[0]
    assert item["input"].shape == (3, 8, 12) and item["size"].tolist() == [7, 9]


def test_rainy_without_clean_partner(tmp_path):
    _img(tmp_path / "rain-001.png", 0)
    _img(tmp_path / "norain-001.png", 0)
    _img(tmp_path / "rain-002.png", 0)
    with pytest.raises(DataError) as exc:
        DerainPairs(tmp_path)
    assert "rain-002.png" in _one_line(exc) and "norain-002.png" in str(exc.value)


def test_rain1400_id_without_ground_truth(tmp_path):
    _img(tmp_path / "ground_truth" / "1.jpg", 0)
    _img(tmp_path / "rainy_image" / "1_1.jpg", 0)
    _img(tmp_path / "rainy_image" / "2_5.jpg", 0)
    with pytest.raises(DataError) as exc:
        DerainPairs(tmp_path)
    assert "id '2'" in _one_line(exc) and "2_5.jpg" in str(exc.value)


def test_pairs_of_different_sizes_found_by_verify(tmp_path):
    _img(tmp_path / "input" / "a.png", 0, 8, 10)
    _img(tmp_path / "target" / "a.png", 1, 8, 12)
    ds = DerainPairs(tmp_path)
    with pytest.raises(DataError) as exc:
        ds.verify()
    assert "8x10" in _one_line(exc) and "8x12" in str(exc.value)


def test_corrupt_file_found_by_verify(tmp_path):
    _img(tmp_path / "input" / "a.png", 0)
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "a.png").write_bytes(b"not an image")
    with pytest.raises(DataError) as exc:
        DerainPairs(tmp_path).verify()
    assert "target/a.png" in _one_line(exc)


def test_unknown_layout(tmp_path):
    (tmp_path / "other").mkdir()
    with pytest.raises(DataError) as exc:
        DerainPairs(tmp_path)
    assert "rainy_image" in _one_line(exc)


@pytest.mark.parametrize("length", [1, 2, 3, 6])
@pytest.mark.parametrize("frames", [1, 3, 5, 7])
def test_window_reflection_matches_numpy_reflect(length, frames):
    r = frames // 2
    padded = np.pad(np.arange(length), r, mode="reflect")  # numpy reflects repeatedly
    for k in range(length):
        assert window_indices(k, length, frames) == padded[k : k + frames].tolist()


def _video(root: Path, name: str, n: int, h: int = 8, w: int = 8, skip: int = -1) -> list[torch.Tensor]:
    rainy = []
    for k in range(1, n + 1):
        if k == skip:
            continue
        rainy.append(_img(root / name / f"rfc-{k}.jpg", k, h, w))
        _img(root / name / f"gtc-{k}.jpg", 100 + k, h, w)
    return rainy


def test_video_windows_and_full_window_convention(tmp_path):
    rainy = _video(tmp_path, "a", 4)
    _video(tmp_path, "b", 3)
    ds = DerainVideo(tmp_path, frames=3)
    ds.verify()
    assert len(ds) == 7
    item = ds[0]
    assert item["frames"].shape == (3, 3, 8, 8) and item["name"] == "a/rfc-1.jpg"
    assert torch.equal(item["frames"][0], rainy[1]) and torch.equal(item["input"], rainy[0])
    full = DerainVideo(tmp_path, frames=3, full_window=True)
    assert [full[i]["name"] for i in range(len(full))] == ["a/rfc-2.jpg", "a/rfc-3.jpg", "b/rfc-2.jpg"]
    with pytest.raises(ValueError, match="odd"):
        DerainVideo(tmp_path, frames=4)


def test_video_with_a_missing_frame(tmp_path):
    _video(tmp_path, "a", 5, skip=3)
    with pytest.raises(DataError) as exc:
        DerainVideo(tmp_path)
    assert "rfc-3.jpg" in _one_line(exc)


def test_video_frame_without_clean_frame(tmp_path):
    _video(tmp_path, "a", 3)
    (tmp_path / "a" / "gtc-2.jpg").unlink()
    with pytest.raises(DataError) as exc:
        DerainVideo(tmp_path)
    assert "gtc-2.jpg" in _one_line(exc)


def test_video_frames_of_different_sizes(tmp_path):
    _video(tmp_path, "a", 3)
    _img(tmp_path / "a" / "rfc-2.jpg", 0, 8, 6)
    with pytest.raises(DataError) as exc:
        DerainVideo(tmp_path).verify()
    assert "rfc-2.jpg" in _one_line(exc)
