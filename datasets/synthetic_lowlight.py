"""The embedded default data: low-light pairs synthesised from photographs shipped with
scikit-image, so that every command runs on a fresh machine without downloads.

Sources (colour photographs inside the ``skimage`` wheel, read offline, downscaled by 2 with
area averaging to suppress JPEG artefacts): training ``astronaut``, ``rocket`` and both views of
``stereo_motorcycle``; validation ``chelsea``; test ``coffee``. The splits use DISJOINT source
images, so no scene content leaks between them.

Degradation (per item, from its own seeded generator; ``x`` the clean sRGB image in ``[0, 1]``)::

    low = quantise8(clip(Poisson(a * k * c * x**g) / a + N(0, s**2)))

with exposure ``k ~ U(0.05, 0.3)``, tone gamma ``g ~ U(1.0, 1.6)`` (shadows darken more than
highlights), a per-channel colour cast ``c ~ U(0.92, 1.08)^3``, shot noise of ``a ~ logU(200,
2000)`` photons per unit intensity and read noise ``s ~ U(0.002, 0.01)``. The target is the clean
crop, quantised to 8 bits as well, so pairs survive a PNG round trip exactly.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Optional, Union

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from datasets.errors import DataError
from datasets.io import PathLike, write_image
from datasets.transforms import Size, as_hw

__all__ = [
    "SOURCES",
    "DEFAULT_SIZE",
    "DEFAULT_COUNT",
    "SyntheticLowLight",
    "degrade_lowlight",
    "write_lol_folder",
]

#: split -> skimage source images (disjoint across splits).
SOURCES: dict[str, tuple[str, ...]] = {
    "train": ("astronaut", "rocket", "motorcycle_left", "motorcycle_right"),
    "val": ("chelsea",),
    "test": ("coffee",),
}
DEFAULT_SIZE: dict[str, int] = {"train": 64, "val": 96, "test": 96}
DEFAULT_COUNT: dict[str, int] = {"train": 64, "val": 8, "test": 8}
_SPLIT_ID = {"train": 0, "val": 1, "test": 2}


@functools.lru_cache(maxsize=None)
def _load_source(name: str) -> np.ndarray:
    """A shipped skimage photograph as float32 ``[H, W, 3]`` in ``[0, 1]``, downscaled by 2."""
    import skimage.data  # deferred: importing skimage.data is slow and only needed here

    if name.startswith("motorcycle_"):
        left, right, _ = skimage.data.stereo_motorcycle()
        img = left if name == "motorcycle_left" else right
    else:
        img = getattr(skimage.data, name)()
    img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
    out = img.astype(np.float32) / 255.0
    out.setflags(write=False)
    return out


def _to_tensor(a: np.ndarray) -> torch.Tensor:
    """``[H, W, 3]`` array -> float32 ``[3, H, W]`` tensor."""
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32))


def _quantise8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.float32) / 255.0


def degrade_lowlight(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Synthesise a low-light observation (see the module docstring for the model).

    Args:
        clean: ``[H, W, 3]`` float in ``[0, 1]``.
        rng: source of the random parameters and noise.

    Returns:
        ``[H, W, 3]`` float32 in ``[0, 1]``, 8-bit quantised.
    """
    k = rng.uniform(0.05, 0.3)
    g = rng.uniform(1.0, 1.6)
    cast = rng.uniform(0.92, 1.08, size=3)
    photons = float(np.exp(rng.uniform(np.log(200.0), np.log(2000.0))))
    read_sigma = rng.uniform(0.002, 0.01)
    dark = k * cast * np.power(clean, g)
    noisy = rng.poisson(dark * photons) / photons + rng.normal(0.0, read_sigma, size=dark.shape)
    return _quantise8(noisy)


class SyntheticLowLight(Dataset):
    """Deterministic synthetic low-light pairs from scikit-image photographs.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"`` (disjoint source images, ``SOURCES``).
        size: crop size (int or ``(h, w)``); ``"full"`` for whole (downscaled) source images;
            ``None``: ``DEFAULT_SIZE[split]`` (64 train, 96 val/test).
        count: number of items; default ``DEFAULT_COUNT[split]`` (one per source for
            ``"full"``). Item ``i`` uses source ``i % len(sources)``.
        seed: item ``i`` depends only on ``(seed, split, i)``, never on access order.

    Items: ``{"input": [3, h, w], "target": [3, h, w], "name": str, "size": LongTensor [2]}``,
    like ``PairedFolder``; values in ``[0, 1]``.
    """

    def __init__(
        self,
        split: str = "train",
        size: Union[Size, str, None] = None,
        count: Optional[int] = None,
        seed: int = 0,
    ) -> None:
        if split not in SOURCES:
            raise DataError(f"unknown synthetic split '{split}'; use one of {sorted(SOURCES)}")
        self.split = split
        self.sources = SOURCES[split]
        if size is None:
            size = DEFAULT_SIZE[split]
        self.size = None if size == "full" else as_hw(size)  # type: ignore[arg-type]
        if count is None:
            count = DEFAULT_COUNT[split] if self.size is not None else len(self.sources)
        if count < 1:
            raise DataError(f"synthetic count must be >= 1, got {count}")
        self.count = count
        self.seed = seed

    def __len__(self) -> int:
        return self.count

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, _SPLIT_ID[self.split], index]))

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.count:
            raise IndexError(f"index {index} out of range for {self.count} items")
        source = self.sources[index % len(self.sources)]
        clean = _load_source(source)
        rng = self._rng(index)
        H, W = clean.shape[:2]
        if self.size is not None:
            h, w = self.size
            if h > H or w > W:
                raise DataError(
                    f"synthetic size {h}x{w} exceeds source image '{source}' ({H}x{W}); "
                    f"use a size of at most {min(H, W)}"
                )
            top, left = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
            clean = clean[top : top + h, left : left + w]
        low = degrade_lowlight(clean, rng)
        target = _to_tensor(_quantise8(clean))
        return {
            "input": _to_tensor(low),
            "target": target,
            "name": f"{self.split}_{index:04d}_{source}.png",
            "size": torch.tensor(target.shape[-2:]),
        }


def write_lol_folder(
    root: PathLike,
    count: int = 8,
    size: Union[Size, str, None] = 64,
    seed: int = 0,
    subset: str = "eval15",
    overwrite: bool = False,
) -> Path:
    """Write synthetic pairs as a LOL-layout folder ``ROOT/<subset>/{low,high}/*.png``.

    Args:
        root: LOL root to create or extend.
        count, size, seed: as for ``SyntheticLowLight``.
        subset: ``"eval15"`` (from the test split) or ``"our485"`` (from the training split).
        overwrite: allow writing into a subset folder that already holds files.

    Returns:
        ``Path(root) / subset``.
    """
    splits = {"eval15": "test", "our485": "train"}
    if subset not in splits:
        raise DataError(f"unknown LOL subset '{subset}'; use 'eval15' or 'our485'")
    out = Path(root) / subset
    if out.exists() and any(out.rglob("*")) and not overwrite:
        raise DataError(f"'{out}' already holds files; pass overwrite=True or choose an empty folder")
    data = SyntheticLowLight(splits[subset], size=size, count=count, seed=seed)
    for i in range(len(data)):
        item = data[i]
        write_image(out / "low" / item["name"], item["input"])
        write_image(out / "high" / item["name"], item["target"])
    return out
