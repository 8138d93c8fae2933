"""Image reading/writing: bit depths, channel handling, errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from datasets import DataError, read_image, write_image


def _rng_u8(shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)


def test_round_trip_8bit(tmp_path):
    x = torch.from_numpy(_rng_u8((3, 9, 7))).float() / 255.0
    path = write_image(tmp_path / "a.png", x)
    y = read_image(path)
    assert y.dtype == torch.float32 and y.shape == (3, 9, 7)
    assert torch.equal(y, x)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]  # no temp file left behind


def test_round_trip_16bit(tmp_path):
    arr = np.random.default_rng(1).integers(0, 65536, size=(5, 6, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "b.png"), arr)  # BGR on disk
    y = read_image(tmp_path / "b.png")
    expect = torch.from_numpy(arr[:, :, ::-1].astype(np.float32) / 65535.0).permute(2, 0, 1)
    assert torch.allclose(y, expect, atol=1e-7)
    write_image(tmp_path / "c.png", y, bits=16)
    back = cv2.imread(str(tmp_path / "c.png"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and np.array_equal(back, arr)


def test_channel_order_is_rgb(tmp_path):
    red = torch.zeros(3, 2, 2)
    red[0] = 1.0
    write_image(tmp_path / "r.png", red)
    bgr = cv2.imread(str(tmp_path / "r.png"))
    assert bgr[0, 0].tolist() == [0, 0, 255]
    assert torch.equal(read_image(tmp_path / "r.png"), red)


def test_grayscale_is_expanded_to_three_channels(tmp_path):
    gray = _rng_u8((4, 5))
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    y = read_image(tmp_path / "g.png")
    assert y.shape == (3, 4, 5)
    assert torch.equal(y[0], y[1]) and torch.equal(y[1], y[2])
    assert torch.equal(y[0], torch.from_numpy(gray).float() / 255.0)


def test_alpha_is_dropped(tmp_path):
    bgra = _rng_u8((4, 4, 4))
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    y = read_image(tmp_path / "a.png")
    assert y.shape == (3, 4, 4)
    assert torch.equal(y, torch.from_numpy(bgra[:, :, 2::-1].copy()).permute(2, 0, 1).float() / 255.0)


def test_corrupt_file_names_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    with pytest.raises(DataError, match="broken.png"):
        read_image(bad)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(DataError, match="nothere.png"):
        read_image(tmp_path / "nothere.png")
