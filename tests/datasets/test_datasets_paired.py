"""Folder layouts, pairing errors and item format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from datasets import DataError, PairedFolder, UnpairedFolder, describe_layouts, write_image


def _img(seed: int, h: int = 12, w: int = 16) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, size=(3, h, w))).float() / 255.0


def _pairs(folder: Path, a: str, b: str, names: list[str], h: int = 12, w: int = 16) -> None:
    for i, n in enumerate(names):
        x = _img(i, h, w)
        write_image(folder / a / n, x)
        write_image(folder / b / n, 1.0 - x)


def test_lol_layout_and_splits(tmp_path):
    _pairs(tmp_path / "our485", "low", "high", ["1.png", "2.png", "3.png"])
    _pairs(tmp_path / "eval15", "low", "high", ["9.png"])
    train = PairedFolder(tmp_path, split="train")
    test = PairedFolder(tmp_path, split="test")
    assert len(train) == 3 and len(test) == 1
    assert train.input_dir == tmp_path / "our485" / "low"
    assert len(PairedFolder(tmp_path / "eval15")) == 1
    with pytest.raises(DataError, match="split"):
        PairedFolder(tmp_path)
    item = test[0]
    assert set(item) == {"input", "target", "name", "size"}
    assert item["name"] == "9.png" and item["input"].shape == (3, 12, 16)
    assert torch.allclose(item["target"], 1.0 - item["input"], atol=1e-6)
    assert item["size"].tolist() == [12, 16]


def test_fivek_layout(tmp_path):
    _pairs(tmp_path, "input", "expert", ["a.png", "b.png"])
    data = PairedFolder(tmp_path)
    assert len(data) == 2 and data.target_dir.name == "expert"


def test_unpaired_file_is_named(tmp_path):
    _pairs(tmp_path, "low", "high", ["1.png"])
    write_image(tmp_path / "low" / "orphan.png", _img(5))
    with pytest.raises(DataError, match="orphan.png"):
        PairedFolder(tmp_path)


def test_size_mismatch_names_both(tmp_path):
    write_image(tmp_path / "low" / "x.png", _img(0, 8, 8))
    write_image(tmp_path / "high" / "x.png", _img(0, 8, 9))
    data = PairedFolder(tmp_path)
    with pytest.raises(DataError, match=r"low/x\.png.*high/x\.png"):
        data[0]


def test_missing_root_and_half_layout(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        PairedFolder(tmp_path / "nope")
    write_image(tmp_path / "low" / "x.png", _img(0))
    with pytest.raises(DataError, match="high"):
        PairedFolder(tmp_path)
    assert "our485" in describe_layouts() and "expert" in describe_layouts()


def test_crop_flip_pad_keep_pairs_aligned(tmp_path):
    _pairs(tmp_path, "low", "high", ["1.png", "2.png"], h=20, w=21)
    data = PairedFolder(tmp_path, crop=10, flip=True, pad_multiple=8, seed=7)
    for i in range(len(data)):
        item = data[i]
        assert item["input"].shape == (3, 16, 16) and item["size"].tolist() == [10, 10]
        assert torch.allclose(item["target"], 1.0 - item["input"], atol=1e-6)
    again = PairedFolder(tmp_path, crop=10, flip=True, seed=7)
    assert torch.equal(again[0]["input"], PairedFolder(tmp_path, crop=10, flip=True, seed=7)[0]["input"])
    with pytest.raises(DataError, match="smaller than the crop"):
        PairedFolder(tmp_path, crop=32)[0]


def test_unpaired_folder(tmp_path):
    write_image(tmp_path / "flat" / "a.png", _img(0))
    write_image(tmp_path / "flat" / "b.jpg", _img(1))
    (tmp_path / "flat" / "notes.txt").write_text("ignored")
    flat = UnpairedFolder(tmp_path / "flat")
    assert [flat[i]["name"] for i in range(len(flat))] == ["a.png", "b.jpg"]
    write_image(tmp_path / "lol" / "low" / "c.png", _img(2))
    item = UnpairedFolder(tmp_path / "lol")[0]
    assert set(item) == {"input", "name", "size"} and item["input"].shape == (3, 12, 16)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty"):
        UnpairedFolder(tmp_path / "empty")


def test_verify_checks_every_pair_from_headers_and_names_the_file(tmp_path):
    import cv2

    from datasets.io import probe_image

    for i in range(3):
        for d in ("low", "high"):
            (tmp_path / d).mkdir(exist_ok=True)
            cv2.imwrite(str(tmp_path / d / f"{i}.png"), np.full((12, 16, 3), 40 * i, np.uint8))
    folder = PairedFolder(tmp_path)
    assert folder.verify() == [(12, 16)] * 3 and probe_image(tmp_path / "low" / "0.png") == (12, 16, 3)
    cv2.imwrite(str(tmp_path / "high" / "1.png"), np.zeros((10, 16), np.uint8))
    with pytest.raises(DataError, match=r"1\.png' is 12x16 but .*1\.png' is 10x16"):
        folder.verify()
    cv2.imwrite(str(tmp_path / "high" / "1.png"), np.zeros((12, 16), np.uint8))  # gray partner: fine
    folder.verify()
    png = tmp_path / "low" / "2.png"
    png.write_bytes(png.read_bytes()[:50])  # header intact, pixel data cut
    with pytest.raises(DataError, match=r"2\.png.*truncated"):
        folder.verify()
    with pytest.raises(DataError, match=r"2\.png"):
        UnpairedFolder(tmp_path / "low").verify()
