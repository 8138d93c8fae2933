"""Data of the fusion task: the embedded synthetic pairs or a benchmark folder, split and augmented.

Settings (``FusionSettings``): ``data`` (a folder in a layout of ``datasets.fusion``, two folders, or
``None`` for the synthetic default); ``crop``, ``flip`` and ``seed`` of the training views
(``datasets.views.CropFlipView`` over ``ir`` and ``vi``); ``val_fraction``: share of the training pairs
held out for validation when the folder has no ``val`` split (``datasets.splits.split_train_val``,
seeded with ``seed``); ``synthetic_count``: synthetic training pairs (default 48);
``synthetic_val_count``: synthetic crops of the validation photograph the search's upper level
draws from (more lets a search epoch take more than one step).

Splits: validation never reads test files. A folder with ``train/`` (and maybe ``test/``) but no
``val/`` validates on a seeded slice of ``train``; a flat folder is split the same way for
search/training, and ``test_set`` scores all of it. The synthetic default uses disjoint photographs.
Items: ``{"ir": [1, H, W], "vi": [C, H, W], "name", "size"}`` in ``[0, 1]``.
"""

from __future__ import annotations

from torch.utils.data import Dataset

from datasets.fusion import FusionFolder, has_split_folder
from datasets.splits import split_train_val
from datasets.synthetic_fusion import SyntheticFusion
from datasets.transforms import as_hw
from datasets.views import CropFlipView
from restoration.fusion.settings import FusionSettings

__all__ = ["SYNTHETIC_SEED", "search_sets", "test_set", "train_sets"]

SYNTHETIC_SEED = 0
KEYS = ("ir", "vi")


def _view(base: Dataset, indices: list[int] | None, s: FusionSettings, seed: int) -> CropFlipView:
    """``base`` (items ``indices``, default all) with the settings' crop and flips drawn from ``seed``."""
    return CropFlipView(base, indices, s.crop, s.flip, seed, keys=KEYS)


def _synthetic_size(s: FusionSettings) -> int:
    """Side of the synthetic training items: 64, or the crop when larger."""
    return 64 if s.crop is None else max(64, *as_hw(s.crop))


def _train_val(s: FusionSettings) -> tuple[FusionFolder, FusionFolder | None, list[int] | None, list[int] | None]:
    """(train base, val base or None, train indices, val indices) of the folder ``s.data``."""
    train = FusionFolder(s.data, "train")
    if has_split_folder(s.data, "val"):
        return train, FusionFolder(s.data, "val"), None, None
    tr, va = split_train_val(len(train), s.val_fraction, s.seed)
    return train, None, tr, va


def search_sets(s: FusionSettings) -> tuple[CropFlipView, CropFlipView]:
    """(lower set, upper set): weights train on the training split, the upper level on validation."""
    if s.data is None:
        lower = SyntheticFusion("train", size=_synthetic_size(s), count=s.synthetic_count, seed=SYNTHETIC_SEED)
        upper = SyntheticFusion("val", size=_synthetic_size(s), count=s.synthetic_val_count, seed=SYNTHETIC_SEED)
        return _view(lower, None, s, s.seed), _view(upper, None, s, s.seed + 1)
    train, val, tr, va = _train_val(s)
    if val is not None:
        return _view(train, None, s, s.seed), _view(val, None, s, s.seed + 1)
    return _view(train, tr, s, s.seed), _view(train, va, s, s.seed + 1)


def train_sets(s: FusionSettings) -> tuple[CropFlipView, Dataset]:
    """(training set with crops/flips, validation set at full resolution, never test files)."""
    if s.data is None:
        train = SyntheticFusion("train", size=_synthetic_size(s), count=s.synthetic_count, seed=SYNTHETIC_SEED)
        return _view(train, None, s, s.seed), SyntheticFusion("val", seed=SYNTHETIC_SEED)
    train, val, tr, va = _train_val(s)
    if val is not None:
        return _view(train, None, s, s.seed), val
    return _view(train, tr, s, s.seed), CropFlipView(train, va, None, False, s.seed, keys=KEYS)


def test_set(data: str | list[str] | None) -> Dataset:
    """The folder's ``test`` split (or the folder itself; all pairs of two folders), or the synthetic test split."""
    if data is None:
        return SyntheticFusion("test", seed=SYNTHETIC_SEED)
    return FusionFolder(data, "test")
