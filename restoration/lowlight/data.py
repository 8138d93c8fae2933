"""Data of the low-light task: the embedded synthetic pairs or a benchmark folder, split and
augmented for search and training.

* ``AugmentedView``: items of a base set (optionally a subset of indices) with a random crop
  and flips that depend only on ``(seed, epoch, index)``; ``set_epoch`` draws new ones.
* ``open_folder``: a ``PairedFolder`` when the folder holds a pair layout for the split (or ``data``
  is two folders ``[INPUT_DIR, TARGET_DIR]``, ``--pairs``: one set, split like a single folder), else
  an ``UnpairedFolder`` (no references: unsupervised search/training and no reference metrics).
* ``search_sets`` / ``train_sets`` / ``test_set``: what the task hands to the commands. Every file
  of a folder they read (the whole training split, held-out validation images included, a ``val``
  folder, the test split) is checked from its header before the first step: readable, paired sizes,
  gray/RGB(A), not smaller than the crop; the first problem is a one-line ``DataError`` naming it.

Items are dicts ``{"input": [3, H, W], "target": [3, H, W] (paired data only), "name": str,
"size": LongTensor [2]}`` with values in ``[0, 1]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch.utils.data import Dataset

from datasets import DataError, PairedFolder, SyntheticLowLight, UnpairedFolder
from datasets.paired import PAIR_DIRS, SPLIT_DIRS
from datasets.pairs import describe_data, pair_dirs
from datasets.errors import no_folder
from datasets.splits import split_train_val
from datasets.synthetic_lowlight import DEFAULT_SIZE
from datasets.transforms import as_hw, item_generator, paired_random_crop, paired_random_flip

__all__ = ["AugmentedView", "has_pairs", "is_paired", "open_folder", "search_sets", "train_sets", "test_set"]

#: Seed of the embedded synthetic data (its content never depends on the run's seed).
SYNTHETIC_SEED = 0


class AugmentedView(Dataset):
    """``base`` items ``indices`` (default all) with a random ``crop`` and (``flip``) flips.

    The crop window and flips of item ``i`` come from a generator seeded with
    ``(seed, epoch, i)``, so they do not depend on access order or workers. Input and target
    (when present) get the same window. ``size`` is updated to the cropped size.
    """

    def __init__(self, base: Dataset, indices: Optional[Sequence[int]] = None, crop: Any = None,
                 flip: bool = True, seed: int = 0) -> None:
        self.base = base
        self.indices = list(range(len(base))) if indices is None else list(indices)  # type: ignore[arg-type]
        self.crop = None if crop is None else as_hw(crop)
        self.flip = flip
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw new crops/flips for ``epoch`` (the base set's own augmentation is not used)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict:
        item = dict(self.base[self.indices[index]])
        x = item["input"]
        y = item.get("target")
        gen = item_generator(self.seed, self.epoch, self.indices[index])
        if self.crop is not None:
            h, w = self.crop
            if h > x.shape[-2] or w > x.shape[-1]:
                raise DataError(f"image '{item.get('name', index)}' ({x.shape[-2]}x{x.shape[-1]}) is smaller "
                                f"than the crop {h}x{w}; use a smaller --crop")
            x, y2 = paired_random_crop(x, x if y is None else y, self.crop, gen)
            y = None if y is None else y2
        if self.flip:
            x, y2 = paired_random_flip(x, x if y is None else y, gen)
            y = None if y is None else y2
        item["input"] = x.contiguous()
        if y is not None:
            item["target"] = y.contiguous()
        item["size"] = torch.tensor(x.shape[-2:])
        return item


def _check_crop(base: Dataset, sizes: Sequence[tuple[int, int]], crop: Any) -> None:
    """A one-line ``DataError`` naming the first training image smaller than the crop (before step 1)."""
    if crop is None:
        return
    h, w = as_hw(crop)
    for index, (H, W) in enumerate(sizes):
        if h > H or w > W:
            path = base.pairs[index][0] if hasattr(base, "pairs") else base.files[index]  # type: ignore[attr-defined]
            raise DataError(f"image '{path}' ({H}x{W}) is smaller than the crop {h}x{w}; use a smaller --crop "
                            "or remove the image")


def has_pairs(root: Path, split: Optional[str]) -> bool:
    """Whether ``root`` holds an (input, target) folder pair for ``split`` (see ``datasets.paired``)."""
    names = list(SPLIT_DIRS.get(split, ())) + [split] if split else []
    candidates = [root / n for n in dict.fromkeys(names)] + [root]
    if split is None and root.is_dir():
        candidates += [d for d in sorted(root.iterdir()) if d.is_dir()]
    return any((c / a).is_dir() and (c / b).is_dir() for c in candidates for a, b in PAIR_DIRS)


def open_folder(root: str | list[str], split: str, pad_multiple: int = 1) -> Dataset:
    """``PairedFolder(root, split)`` when pairs exist for ``split`` (or ``root`` is two folders),
    else ``UnpairedFolder``.

    Pair-layout errors (a file without partner, sizes that differ) are raised, never hidden by
    falling back to the unpaired reader.
    """
    if pair_dirs(root) is not None:
        return PairedFolder(root, pad_multiple=pad_multiple)
    path = Path(root)  # type: ignore[arg-type]
    if not path.is_dir():
        raise no_folder(path)
    if has_pairs(path, split):
        return PairedFolder(path, split=split, pad_multiple=pad_multiple)
    return UnpairedFolder(path, split=split, pad_multiple=pad_multiple)


def is_paired(dataset: Dataset) -> bool:
    """Whether the (possibly wrapped) data set yields targets."""
    base = getattr(dataset, "base", dataset)
    return isinstance(base, (PairedFolder, SyntheticLowLight))


def _test_files(root: Path) -> set[str] | None:
    """File names of the test split of ``root`` (LOL ``eval15`` or ``test``), None when it has none."""
    for name in SPLIT_DIRS["test"]:
        for a, _ in PAIR_DIRS:
            if (root / name / a).is_dir():
                return {f.name for f in (root / name / a).iterdir() if f.is_file()}
    return None


class _Folder:
    """The training folder of ``settings.data``: the training pairs (or images), the indices that
    train and those that validate, and the validation set (a ``val`` folder, or a seeded slice of
    the training split: never the test files). ``note`` says which, for the user."""

    def __init__(self, s: Any) -> None:
        two = pair_dirs(s.data) is not None
        root = Path(s.data[0] if two else s.data)
        self.base = open_folder(s.data, "train")
        self.sizes = self.base.verify(progress=True)  # type: ignore[attr-defined]  # every file, before step 1
        _check_crop(self.base, self.sizes, s.crop)
        n = len(self.base)  # type: ignore[arg-type]
        if not two and (root / "val").is_dir():
            val = open_folder(str(root / "val"), "val", s.pad_multiple)
            val.verify(progress=True)  # type: ignore[attr-defined]
            names = ({a.name for a, _ in val.pairs} if hasattr(val, "pairs")  # type: ignore[attr-defined]
                     else {Path(f).name for f in val.files})  # type: ignore[attr-defined]
            test = _test_files(root)
            if test is not None and names and names == test:
                raise DataError(f"validation folder '{root / 'val'}' holds the same files as the test split; "
                                "validation must not read test files: remove it to validate on a slice of training")
            self.train_idx, self.val_idx, self.val = list(range(n)), [], val
            self.note = f"validation: {len(val)} images of '{root / 'val'}'"  # type: ignore[arg-type]
        else:
            if n < 2 and s.val_fraction > 0:
                raise DataError(f"'{describe_data(s.data)}' has {n} training image: holding one out for validation "
                                "needs at least 2; add images, a val/ folder, or pass --val-fraction 0")
            self.train_idx, self.val_idx = split_train_val(n, s.val_fraction, s.seed)
            full = open_folder(s.data, "train", s.pad_multiple)
            self.val = AugmentedView(full, self.val_idx, None, False, s.seed) if self.val_idx else None
            where = getattr(self.base, "input_dir", getattr(self.base, "folder", root))
            names = [self._name(i) for i in self.val_idx]
            shown = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
            self.note = (f"validation: {len(self.val_idx)} of the {n} training images of '{where}' held out "
                         f"(val_fraction {s.val_fraction}, seed {s.seed}): {shown or 'none'}; the test split "
                         "is never read")
        self.split = {"train": len(self.train_idx), "val": [self._name(i) for i in self.val_idx]}

    def _name(self, index: int) -> str:
        if hasattr(self.base, "pairs"):
            return self.base.pairs[index][0].name  # type: ignore[attr-defined]
        return Path(self.base.files[index]).name  # type: ignore[attr-defined]


#: Largest square crop the embedded training photographs allow (the smallest is 213 px high).
EMBEDDED_MAX_CROP = 208


def _embedded_crop(s: Any) -> tuple[Any, str]:
    """The crop used on the embedded data, and a note when the settings' crop had to shrink."""
    if s.crop is not None and s.crop > EMBEDDED_MAX_CROP:
        return EMBEDDED_MAX_CROP, (f"; crop {s.crop} reduced to {EMBEDDED_MAX_CROP}, the largest the embedded "
                                   "photographs allow")
    return s.crop, ""


def _train_base(s: Any) -> tuple[Dataset, Any, str]:
    """The embedded training pairs, the crop to cut from them, and a note on it."""
    crop, note = _embedded_crop(s)
    size = DEFAULT_SIZE["train"] if crop is None else max(DEFAULT_SIZE["train"], *as_hw(crop))
    return SyntheticLowLight("train", size=size, count=s.synthetic_count, seed=SYNTHETIC_SEED), crop, note


def search_sets(s: Any) -> tuple[AugmentedView, AugmentedView, str]:
    """Training split (validation slice excluded) cut into two contiguous halves: lower (weights)
    and upper (architecture); and a note on the split."""
    if s.data is None:
        base, crop, extra = _train_base(s)
        indices, note = None, "embedded synthetic training pairs" + extra
    else:
        folder = _Folder(s)
        base, indices, note, crop = folder.base, folder.train_idx, folder.note, s.crop
    indices = list(range(len(base))) if indices is None else indices  # type: ignore[arg-type]
    n = len(indices)
    if n < 2:
        raise DataError(f"the search needs at least 2 training images (one per level), found {n}; add images")
    half = n // 2
    return (AugmentedView(base, indices[:half], crop, s.flip, s.seed),
            AugmentedView(base, indices[half:], crop, s.flip, s.seed + 1), note)


def train_sets(s: Any) -> tuple[AugmentedView, Dataset | None, str, dict[str, Any]]:
    """(training set with crops/flips, validation set at full resolution or None, a note on the
    split, the split record written to config.json)."""
    if s.data is None:
        base, crop, note = _train_base(s)
        train = AugmentedView(base, None, crop, s.flip, s.seed)
        val = SyntheticLowLight("val", seed=SYNTHETIC_SEED)
        return train, val, "validation: the embedded validation split (its own source photograph)" + note, {}
    folder = _Folder(s)
    train = AugmentedView(folder.base, folder.train_idx, s.crop, s.flip, s.seed)
    return train, folder.val, folder.note, folder.split


def test_set(data: str | list[str] | None, s: Any) -> Dataset:
    """The folder ``data`` (its test split, or the folder itself; all pairs of two folders) or the
    synthetic test split."""
    if data is None:
        return SyntheticLowLight("test", seed=SYNTHETIC_SEED)
    dataset = open_folder(data, "test", s.pad_multiple)
    dataset.verify(progress=True)  # type: ignore[attr-defined]  # every file, before the first image is run
    return dataset
