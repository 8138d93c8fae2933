"""``CropFlipView``: a subset of a data set of dict items, with one random crop window and flips
shared by every image of an item.

The window and flips of item ``i`` in ``epoch`` come from ``item_generator(seed, epoch, i)`` only,
so they do not depend on access order or workers and a resumed run draws the same. Draw order:
the crop's top, then its left, then the left-right flip, then the up-down flip.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch.utils.data import Dataset

from datasets.errors import DataError
from datasets.transforms import as_hw, item_generator

__all__ = ["CropFlipView"]


class CropFlipView(Dataset):
    """Items ``indices`` of ``base`` (default all), each image under ``keys`` (those an item has; the
    first present one sets the size; ``keys=()``: the items pass unchanged) cropped to the same random ``crop`` window and flipped alike
    (``flip``); ``item["size"]`` is the size after the crop. ``forward_epoch``: ``set_epoch`` is passed
    on to ``base`` too (for a base with augmentation of its own); ``verify`` always is, when it has one.

    ``[..., H, W]`` tensors -> ``[..., h, w]``.
    """

    def __init__(self, base: Dataset, indices: Optional[Sequence[int]] = None, crop: Any = None,
                 flip: bool = True, seed: int = 0, keys: Sequence[str] = ("input", "target"),
                 forward_epoch: bool = False) -> None:
        self.base = base
        self.indices = list(range(len(base))) if indices is None else list(indices)  # type: ignore[arg-type]
        self.crop = None if crop is None else as_hw(crop)
        self.flip, self.seed, self.keys, self.forward_epoch = flip, seed, tuple(keys), forward_epoch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw new windows and flips for ``epoch``."""
        self.epoch = epoch
        if self.forward_epoch and hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def verify(self, progress: bool = False) -> Any:
        """The base set's check of its files (None when it has none)."""
        verify = getattr(self.base, "verify", None)
        return verify(progress) if verify is not None else None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict:
        i = self.indices[index]
        item = dict(self.base[i])
        keys = [k for k in self.keys if k in item]
        if not keys:  # e.g. keys=() : a plain subset
            return item
        gen = item_generator(self.seed, self.epoch, i)
        H, W = item[keys[0]].shape[-2:]
        if self.crop is not None:
            h, w = self.crop
            if h > H or w > W:
                raise DataError(f"image '{item.get('name', i)}' ({H}x{W}) is smaller than the crop {h}x{w}; "
                                "use a smaller --crop")
            top = int(torch.randint(H - h + 1, (1,), generator=gen))
            left = int(torch.randint(W - w + 1, (1,), generator=gen))
            for k in keys:
                item[k] = item[k][..., top:top + h, left:left + w]
        if self.flip:
            dims = [d for d in (-1, -2) if torch.rand((), generator=gen).item() < 0.5]
            if dims:
                for k in keys:
                    item[k] = item[k].flip(dims)
        for k in keys:
            item[k] = item[k].contiguous()
        item["size"] = torch.tensor(item[keys[0]].shape[-2:])
        return item
