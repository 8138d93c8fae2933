"""Data of the fusion task: the embedded synthetic pairs or a benchmark folder, split and augmented.

Settings (a plain dict for now; keys and defaults):

* ``data`` (``None``): folder in a layout of ``datasets.fusion`` or ``None`` for the synthetic default;
* ``crop`` (``None``): training crop (int or ``(h, w)``); ``flip`` (``True``); ``seed`` (0);
* ``val_fraction`` (0.1): share of the training pairs held out for validation when the folder has
  no ``val`` split (``datasets.splits.split_train_val``, seeded with ``seed``);
* ``synthetic_count`` (``None``): number of synthetic training pairs (default 48);
  ``synthetic_val_count`` (``None``): number of synthetic crops of the validation photograph the
  search's upper level draws from (default 6; more lets a search epoch take more than one step).

Splits: validation never reads test files. A folder with ``train/`` (and maybe ``test/``) but no
``val/`` validates on a seeded slice of ``train``; a flat folder is split the same way for
search/training, and ``test_set`` scores all of it. The synthetic default uses disjoint photographs.
Items: ``{"ir": [1, H, W], "vi": [C, H, W], "name", "size"}`` in ``[0, 1]``.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch.utils.data import Dataset

from datasets.errors import DataError
from datasets.fusion import FusionFolder, has_split_folder
from datasets.splits import split_train_val
from datasets.synthetic_fusion import SyntheticFusion
from datasets.transforms import as_hw, item_generator

__all__ = ["FusionView", "SYNTHETIC_SEED", "open_fusion_folder", "search_sets", "train_sets", "test_set"]

SYNTHETIC_SEED = 0
IMAGE_KEYS = ("ir", "vi")


class FusionView(Dataset):
    """Items ``indices`` of ``base`` with one random crop window and flips shared by both sources.

    Randomness depends only on ``(seed, epoch, index)``; ``set_epoch`` draws new windows.
    """

    def __init__(self, base: Dataset, indices: Optional[Sequence[int]] = None, crop: Any = None,
                 flip: bool = True, seed: int = 0) -> None:
        self.base = base
        self.indices = list(range(len(base))) if indices is None else list(indices)  # type: ignore[arg-type]
        self.crop = None if crop is None else as_hw(crop)
        self.flip = flip
        self.seed = seed
        self.epoch = 0

    @property
    def visible_channels(self) -> int:
        return int(getattr(self.base, "visible_channels", 3))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def verify(self, progress: bool = False) -> None:
        """Check the underlying files (``FusionFolder.verify``)."""
        verify = getattr(self.base, "verify", None)
        if verify is not None:
            verify(progress)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict:
        i = self.indices[index]
        item = dict(self.base[i])
        gen = item_generator(self.seed, self.epoch, i)
        imgs = [item[k] for k in IMAGE_KEYS]
        H, W = imgs[0].shape[-2:]
        if self.crop is not None:
            h, w = self.crop
            if h > H or w > W:
                raise DataError(f"image '{item['name']}' ({H}x{W}) is smaller than the crop {h}x{w}; use a smaller --crop")
            top = int(torch.randint(H - h + 1, (1,), generator=gen))
            left = int(torch.randint(W - w + 1, (1,), generator=gen))
            imgs = [x[..., top:top + h, left:left + w] for x in imgs]
        if self.flip:
            for dim in (-1, -2):
                if torch.rand((), generator=gen).item() < 0.5:
                    imgs = [x.flip(dim) for x in imgs]
        item.update({k: x.contiguous() for k, x in zip(IMAGE_KEYS, imgs)})
        item["size"] = torch.tensor(imgs[0].shape[-2:])
        return item


def open_fusion_folder(root: str, split: Optional[str]) -> FusionFolder:
    """``FusionFolder(root, split)`` (split sub-folder when present, else ``root``)."""
    return FusionFolder(root, split)


def _train_val(settings: dict[str, Any]) -> tuple[Dataset, Optional[Dataset], Optional[list[int]], Optional[list[int]]]:
    """(train base, val base or None, train indices, val indices) for a folder."""
    root = settings["data"]
    train = open_fusion_folder(root, "train")
    if has_split_folder(root, "val"):
        return train, open_fusion_folder(root, "val"), None, None
    tr, va = split_train_val(len(train), float(settings.get("val_fraction", 0.1)), int(settings.get("seed", 0)))
    return train, None, tr, va


def search_sets(settings: dict[str, Any]) -> tuple[FusionView, FusionView]:
    """(lower set, upper set): weights train on the training split, the upper level on validation."""
    seed, crop, flip = int(settings.get("seed", 0)), settings.get("crop"), bool(settings.get("flip", True))
    if settings.get("data") is None:
        size = 64 if crop is None else max(64, *as_hw(crop))
        lower = SyntheticFusion("train", size=size, count=settings.get("synthetic_count"), seed=SYNTHETIC_SEED)
        upper = SyntheticFusion("val", size=size, count=settings.get("synthetic_val_count"), seed=SYNTHETIC_SEED)
        return FusionView(lower, None, crop, flip, seed), FusionView(upper, None, crop, flip, seed + 1)
    train, val, tr, va = _train_val(settings)
    if val is not None:
        return FusionView(train, None, crop, flip, seed), FusionView(val, None, crop, flip, seed + 1)
    return FusionView(train, tr, crop, flip, seed), FusionView(train, va, crop, flip, seed + 1)


def train_sets(settings: dict[str, Any]) -> tuple[FusionView, Dataset]:
    """(training set with crops/flips, validation set at full resolution, never test files)."""
    seed, crop, flip = int(settings.get("seed", 0)), settings.get("crop"), bool(settings.get("flip", True))
    if settings.get("data") is None:
        size = 64 if crop is None else max(64, *as_hw(crop))
        train = SyntheticFusion("train", size=size, count=settings.get("synthetic_count"), seed=SYNTHETIC_SEED)
        return FusionView(train, None, crop, flip, seed), SyntheticFusion("val", seed=SYNTHETIC_SEED)
    train, val, tr, va = _train_val(settings)
    if val is not None:
        return FusionView(train, None, crop, flip, seed), val
    return FusionView(train, tr, crop, flip, seed), FusionView(train, va, None, False, seed)


def test_set(data: Optional[str], settings: dict[str, Any]) -> Dataset:
    """The folder's ``test`` split (or the folder itself), or the synthetic test split."""
    if data is None:
        return SyntheticFusion("test", seed=SYNTHETIC_SEED)
    return open_fusion_folder(data, "test")
