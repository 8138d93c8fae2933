"""The embedded default fusion data: scikit-image photographs as the visible images and a synthetic
thermal rendering of the same scene as the infrared images, so every command runs offline.

Sources (disjoint across splits, no scene leaks): training ``astronaut``, ``rocket`` and both
views of ``stereo_motorcycle``; validation ``chelsea``; test ``coffee`` (downscaled by 2, as in
``datasets.synthetic_lowlight``).

Rendering of item ``i`` (its own generator seeded with ``(seed, split, i)``), on a random crop ``x``
(RGB in ``[0, 1]``) with luminance ``l``:

* **infrared**: ``0.15 + 0.25 blur(l, s/12) + 0.08 y/h`` (coarse scene heat, little texture, ground
  warmer than sky) plus 2 to 4 warm objects, smooth ellipses of temperature ``U(0.45, 0.7)``; sensor
  noise: Gaussian (sigma 0.012) and a fixed column pattern (sigma 0.008);
* **visible**: the photograph with the warm objects in shadow (``x (1 - 0.75 m)``, ``m`` the objects'
  smooth mask), so that they are visible only in the infrared image, plus Gaussian noise
  (sigma 0.004).

Both are quantised to 8 bits, so a PNG round trip is exact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from datasets.errors import DataError
from datasets.io import PathLike, write_image
from datasets.synthetic_lowlight import SOURCES, _load_source
from datasets.transforms import Size, as_hw

__all__ = ["FUSION_SOURCES", "DEFAULT_FUSION_SIZE", "DEFAULT_FUSION_COUNT", "SyntheticFusion",
           "render_thermal", "write_fusion_folder"]

FUSION_SOURCES: dict[str, tuple[str, ...]] = dict(SOURCES)
DEFAULT_FUSION_SIZE: dict[str, int] = {"train": 64, "val": 96, "test": 96}
DEFAULT_FUSION_COUNT: dict[str, int] = {"train": 48, "val": 6, "test": 6}
_SPLIT_ID = {"train": 0, "val": 1, "test": 2}


def _q8(x: np.ndarray) -> np.ndarray:
    return (np.round(np.clip(x, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def render_thermal(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(infrared ``[h, w]``, visible ``[h, w, 3]``) from an RGB crop ``[h, w, 3]`` in ``[0, 1]``."""
    h, w = rgb.shape[:2]
    lum = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    s = max(h, w)
    heat = cv2.GaussianBlur(lum, (0, 0), sigmaX=s / 12.0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ir = 0.15 + 0.25 * heat + 0.08 * yy / h
    mask = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(2, 5))):
        cy, cx = rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w
        ry, rx = rng.uniform(0.08, 0.2) * s, rng.uniform(0.04, 0.12) * s
        blob = (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0).astype(np.float32)
        blob = cv2.GaussianBlur(blob, (0, 0), sigmaX=1.5)
        ir = ir + rng.uniform(0.45, 0.7) * blob * (1.0 - mask)
        mask = np.maximum(mask, blob)
    ir = ir + rng.normal(0.0, 0.012, (h, w)) + rng.normal(0.0, 0.008, (1, w))
    vi = rgb * (1.0 - 0.75 * mask[:, :, None]) + rng.normal(0.0, 0.004, rgb.shape)
    return _q8(ir), _q8(vi)


class SyntheticFusion(Dataset):
    """Deterministic synthetic infrared/visible pairs.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"`` (disjoint sources, ``FUSION_SOURCES``).
        size: crop size (int or ``(h, w)``); default ``DEFAULT_FUSION_SIZE[split]``.
        count: number of items (default ``DEFAULT_FUSION_COUNT[split]``); item ``i`` uses source
            ``i % len(sources)``.
        seed: item ``i`` depends only on ``(seed, split, i)``.

    Items: ``{"ir": [1, h, w], "vi": [3, h, w], "name": str, "size": LongTensor [2]}`` in ``[0, 1]``.
    """

    visible_channels = 3

    def __init__(self, split: str = "train", size: Optional[Size] = None, count: Optional[int] = None,
                 seed: int = 0) -> None:
        if split not in FUSION_SOURCES:
            raise DataError(f"unknown synthetic split '{split}'; use one of {sorted(FUSION_SOURCES)}")
        self.split = split
        self.sources = FUSION_SOURCES[split]
        self.size = as_hw(DEFAULT_FUSION_SIZE[split] if size is None else size)
        self.count = DEFAULT_FUSION_COUNT[split] if count is None else int(count)
        if self.count < 1:
            raise DataError(f"synthetic count must be >= 1, got {self.count}")
        self.seed = seed

    def __len__(self) -> int:
        return self.count

    def verify(self, progress: bool = False) -> None:
        """Nothing to check: generated data are always well formed."""

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.count:
            raise IndexError(f"index {index} out of range for {self.count} items")
        source = self.sources[index % len(self.sources)]
        photo = _load_source(source)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, _SPLIT_ID[self.split], index]))
        H, W = photo.shape[:2]
        h, w = self.size
        if h > H or w > W:
            raise DataError(f"synthetic size {h}x{w} exceeds source '{source}' ({H}x{W}); use at most {min(H, W)}")
        top, left = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
        ir, vi = render_thermal(np.ascontiguousarray(photo[top:top + h, left:left + w]), rng)
        return {
            "ir": torch.from_numpy(ir)[None],
            "vi": torch.from_numpy(np.ascontiguousarray(vi.transpose(2, 0, 1))),
            "name": f"{self.split}_{index:04d}_{source}.png",
            "size": torch.tensor([h, w]),
        }


def write_fusion_folder(root: PathLike, split: str = "test", count: int = 4, size: Optional[Size] = 64,
                        seed: int = 0, dirs: tuple[str, str] = ("ir", "vi"), overwrite: bool = False) -> Path:
    """Write synthetic pairs as ``ROOT/<ir>/*.png`` and ``ROOT/<vi>/*.png``; returns ``Path(root)``."""
    out = Path(root)
    if any((out / d).exists() and any((out / d).iterdir()) for d in dirs) and not overwrite:
        raise DataError(f"'{out}' already holds fusion images; pass overwrite=True or choose an empty folder")
    data = SyntheticFusion(split, size=size, count=count, seed=seed)
    for i in range(len(data)):
        item = data[i]
        write_image(out / dirs[0] / item["name"], item["ir"])
        write_image(out / dirs[1] / item["name"], item["vi"])
    return out
