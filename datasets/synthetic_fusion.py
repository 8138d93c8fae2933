"""The embedded default fusion data: night captures of scikit-image photographs as the visible images
and a synthetic thermal rendering of the same scenes as the infrared images, so every command runs
offline.

Sources (disjoint across splits, no scene leaks): training ``astronaut``, ``rocket`` and both
views of ``stereo_motorcycle``; validation ``chelsea``; test ``coffee`` (downscaled by 2, as in
``datasets.synthetic_lowlight``).

Rendering of item ``i`` (its own generator seeded with ``(seed, split, i)``), on a random crop ``x``
(RGB in ``[0, 1]``, a daylight photograph) with luminance ``l``, side ``s = max(h, w)``:

* **infrared**: ``0.15 + 0.25 blur(l, s/12) + 0.08 y/h`` (coarse scene heat, little texture, ground
  warmer than sky) plus 2 to 4 warm objects, smooth ellipses of temperature ``U(0.45, 0.7)``; sensor
  noise: Gaussian (sigma 0.012) and a fixed column pattern (sigma 0.008);
* **visible**: the same scene captured AT NIGHT, as the visible images of TNO, M3FD, RoadScene and
  MSRS often are. One light source (a street lamp) at a random point of the crop or up to a quarter
  of it outside, falling off as a Gaussian of radius ``U(0.3, 0.7) s``, over a dim ambient light
  (0.2 of the lamp's peak); the lamp's exposure ``k ~ U(0.4, 1.0)``. The warm objects are unlit
  (the light on them times ``1 - 0.85 m``, ``m`` their smooth mask): dim silhouettes in the visible
  image, bright only in the infrared one. The camera is the low-light sensor of
  ``datasets.synthetic_lowlight`` (its gamma, colour cast and noise ranges)::

      vi = clip(Poisson(a * L * c * x**g) / a + N(0, r**2)),  L = k (0.2 + 0.8 lamp) (1 - 0.85 m)

  with tone gamma ``g ~ U(1.0, 1.6)``, colour cast ``c ~ U(0.92, 1.08)^3``, ``a ~ logU(200, 2000)``
  photons per unit intensity (shot noise) and read noise ``r ~ U(0.002, 0.01)``. The result is dark
  (mean about 0.1), noisy and lower in contrast, yet carries the scene's texture where light falls,
  which the infrared image lacks; fusion has something to add from each source.

Both are quantised to 8 bits, so a PNG round trip is exact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import torch

from datasets.errors import DataError
from datasets.io import PathLike, write_image
from datasets.synthetic_lowlight import SOURCES
from datasets.synthetic_rain import SyntheticPhotos
from datasets.transforms import Size, as_hw

__all__ = ["FUSION_SOURCES", "DEFAULT_FUSION_SIZE", "DEFAULT_FUSION_COUNT", "SyntheticFusion",
           "render_thermal", "night_capture", "write_fusion_folder"]

FUSION_SOURCES: dict[str, tuple[str, ...]] = dict(SOURCES)
DEFAULT_FUSION_SIZE: dict[str, int] = {"train": 64, "val": 96, "test": 96}
DEFAULT_FUSION_COUNT: dict[str, int] = {"train": 48, "val": 6, "test": 6}
#: Night capture: range of the lamp's exposure, ambient light (share of the lamp's peak), light lost on
#: the warm objects (see the module docstring).
EXPOSURE = (0.4, 1.0)
AMBIENT = 0.2
UNLIT = 0.85


def _q8(x: np.ndarray) -> np.ndarray:
    return (np.round(np.clip(x, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def render_thermal(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(infrared ``[h, w]``, visible night capture ``[h, w, 3]``) of an RGB crop ``[h, w, 3]`` in ``[0, 1]``."""
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
    return _q8(ir), _q8(night_capture(rgb, mask, rng))


def night_capture(rgb: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The visible camera's night capture ``[h, w, 3]`` of an RGB crop ``[h, w, 3]`` in ``[0, 1]``, the warm
    objects' mask ``[h, w]`` unlit (see the module docstring)."""
    h, w = rgb.shape[:2]
    s = max(h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = rng.uniform(-0.25, 1.25) * h, rng.uniform(-0.25, 1.25) * w
    radius = rng.uniform(0.3, 0.7) * s
    lamp = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2.0 * radius ** 2))
    light = rng.uniform(EXPOSURE[0], EXPOSURE[1]) * (AMBIENT + (1.0 - AMBIENT) * lamp) * (1.0 - UNLIT * mask)
    gamma = rng.uniform(1.0, 1.6)
    cast = rng.uniform(0.92, 1.08, size=3)
    photons = float(np.exp(rng.uniform(np.log(200.0), np.log(2000.0))))
    read_sigma = rng.uniform(0.002, 0.01)
    signal = light[:, :, None] * cast * np.power(rgb, gamma)
    return (rng.poisson(signal * photons) / photons + rng.normal(0.0, read_sigma, rgb.shape)).astype(np.float32)


class SyntheticFusion(SyntheticPhotos):
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
        super().__init__(split, FUSION_SOURCES[split], DEFAULT_FUSION_COUNT[split] if count is None else int(count),
                         seed)
        self.size = as_hw(DEFAULT_FUSION_SIZE[split] if size is None else size)

    def __getitem__(self, index: int) -> dict:
        source, photo, rng = self.draw(index)
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
