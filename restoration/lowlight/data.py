"""Data of the low-light task: the embedded synthetic pairs or a benchmark folder, split and
augmented for search and training.

* ``open_folder``: a ``PairedFolder`` when the folder holds a pair layout for the split (or ``data``
  is two folders ``[INPUT_DIR, TARGET_DIR]``, ``--pairs``: one set, split like a single folder), else
  an ``UnpairedFolder`` (no references: unsupervised search/training and no reference metrics).
* ``search_data`` / ``train_data`` / ``test_data``: the records the task hands to the commands
  (``tasks.base``); training items are ``datasets.views.CropFlipView`` crops and flips. Every file
  of a folder they read (the whole training split, held-out validation images included, a ``val``
  folder, the test split) is checked from its header before the first step: readable, paired sizes,
  gray/RGB(A), not smaller than the crop; the first problem is a one-line ``DataError`` naming it.

Items are dicts ``{"input": [3, H, W], "target": [3, H, W] (paired data only), "name": str,
"size": LongTensor [2]}`` with values in ``[0, 1]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple, Optional, Sequence, Union

from torch.utils.data import Dataset

from datasets import DataError, PairedFolder, SyntheticLowLight, UnpairedFolder
from datasets.errors import no_folder
from datasets.paired import PAIR_DIRS, SPLIT_DIRS
from datasets.pairs import describe_data, pair_dirs
from datasets.splits import split_train_val
from datasets.synthetic_cameras import SyntheticCamera
from datasets.synthetic_lowlight import DEFAULT_SIZE
from datasets.transforms import as_hw
from datasets.views import CropFlipView
from restoration.lowlight.scenes import Materialised, SceneCrops
from restoration.lowlight.settings import LowLightSettings
from tasks.base import Scoring, SearchData, TestData, TrainData

__all__ = ["Folder", "has_pairs", "is_paired", "open_folder", "search_data", "train_data", "test_data"]

#: Seed of the embedded synthetic data (its content never depends on the run's seed).
SYNTHETIC_SEED = 0

#: What ``open_folder`` reads: pairs, or images without references.
Folder = Union[PairedFolder, UnpairedFolder]


def _path(folder: Folder, index: int) -> Path:
    """The (input) file of item ``index``."""
    return folder.pairs[index][0] if isinstance(folder, PairedFolder) else Path(folder.files[index])


def _check_crop(base: Folder, sizes: Sequence[tuple[int, int]], crop: int | None) -> None:
    """A one-line ``DataError`` naming the first training image smaller than the crop (before step 1)."""
    if crop is None:
        return
    h, w = as_hw(crop)
    for index, (H, W) in enumerate(sizes):
        if h > H or w > W:
            raise DataError(f"image '{_path(base, index)}' ({H}x{W}) is smaller than the crop {h}x{w}; use a "
                            "smaller --crop or remove the image")


def has_pairs(root: Path, split: Optional[str]) -> bool:
    """Whether ``root`` holds an (input, target) folder pair for ``split`` (see ``datasets.paired``)."""
    names = list(SPLIT_DIRS.get(split, ())) + [split] if split else []
    candidates = [root / n for n in dict.fromkeys(names)] + [root]
    if split is None and root.is_dir():
        candidates += [d for d in sorted(root.iterdir()) if d.is_dir()]
    return any((c / a).is_dir() and (c / b).is_dir() for c in candidates for a, b in PAIR_DIRS)


def open_folder(root: str | list[str], split: str, pad_multiple: int = 1) -> Folder:
    """``PairedFolder(root, split)`` when pairs exist for ``split`` (or ``root`` is two folders),
    else ``UnpairedFolder``.

    Pair-layout errors (a file without partner, sizes that differ) are raised, never hidden by
    falling back to the unpaired reader.
    """
    if pair_dirs(root) is not None:
        return PairedFolder(root, pad_multiple=pad_multiple)
    path = Path(str(root))
    if not path.is_dir():
        raise no_folder(path)
    if has_pairs(path, split):
        return PairedFolder(path, split=split, pad_multiple=pad_multiple)
    return UnpairedFolder(path, split=split, pad_multiple=pad_multiple)


def is_paired(dataset: Dataset) -> bool:
    """Whether the data set (or the base under a ``CropFlipView`` / ``SceneCrops``) yields targets."""
    base = dataset
    while isinstance(base, (CropFlipView, SceneCrops)):
        base = base.base
    if isinstance(base, Materialised):
        return bool(base.items) and "target" in base.items[0]
    return isinstance(base, (PairedFolder, SyntheticLowLight, SyntheticCamera))


def _test_files(root: Path) -> set[str] | None:
    """File names of the test split of ``root`` (LOL ``eval15`` or ``test``), None when it has none."""
    for name in SPLIT_DIRS["test"]:
        for a, _ in PAIR_DIRS:
            if (root / name / a).is_dir():
                return {f.name for f in (root / name / a).iterdir() if f.is_file()}
    return None


class _Split(NamedTuple):
    """A training folder split: items ``indices`` of ``base`` train, ``val`` validates (None: nothing);
    ``note`` says which, for the user; ``split`` is the record written to ``config.json``."""

    base: Folder
    indices: list[int]
    val: Dataset | None
    note: str
    split: dict[str, Any]


def _split_folder(s: LowLightSettings) -> _Split:
    """The training folder of ``s.data``: the training pairs (or images) and the validation set (a
    ``val`` folder, or a seeded slice of the training split: never the test files)."""
    dirs = pair_dirs(s.data)
    root = Path(str(s.data)) if dirs is None else dirs[0]
    base = open_folder(s.data, "train")
    _check_crop(base, base.verify(progress=True), s.crop)  # every file, before step 1
    n = len(base)
    if dirs is None and (root / "val").is_dir():
        val = open_folder(str(root / "val"), "val", s.pad_multiple)
        val.verify(progress=True)
        names = {_path(val, i).name for i in range(len(val))}
        test = _test_files(root)
        if test is not None and names and names == test:
            raise DataError(f"validation folder '{root / 'val'}' holds the same files as the test split; "
                            "validation must not read test files: remove it to validate on a slice of training")
        return _Split(base, list(range(n)), val, f"validation: {len(val)} images of '{root / 'val'}'",
                      {"train": n, "val": []})
    if n < 2 and s.val_fraction > 0:
        raise DataError(f"'{describe_data(s.data)}' has {n} training image: holding one out for validation "
                        "needs at least 2; add images, a val/ folder, or pass --val-fraction 0")
    train_idx, val_idx = split_train_val(n, s.val_fraction, s.seed)
    full = open_folder(s.data, "train", s.pad_multiple) if val_idx else None  # full resolution, padded
    held_out = None if full is None else CropFlipView(full, val_idx, None, False, s.seed)
    where = base.input_dir if isinstance(base, PairedFolder) else base.folder
    names = [_path(base, i).name for i in val_idx]
    shown = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
    note = (f"validation: {len(val_idx)} of the {n} training images of '{where}' held out (val_fraction "
            f"{s.val_fraction}, seed {s.seed}): {shown or 'none'}; the test split is never read")
    return _Split(base, train_idx, held_out, note, {"train": len(train_idx), "val": names})


#: Largest square crop the embedded training photographs allow (the smallest is 213 px high).
EMBEDDED_MAX_CROP = 208


def _embedded(s: LowLightSettings) -> tuple[SyntheticLowLight, int | None, str]:
    """The embedded training pairs, the crop to cut from them, and a note when the settings' crop had
    to shrink to fit them."""
    crop, note = s.crop, ""
    if crop is not None and crop > EMBEDDED_MAX_CROP:
        crop, note = EMBEDDED_MAX_CROP, (f"; crop {s.crop} reduced to {EMBEDDED_MAX_CROP}, the largest the "
                                         "embedded photographs allow")
    size = DEFAULT_SIZE["train"] if crop is None else max(DEFAULT_SIZE["train"], crop)
    return SyntheticLowLight("train", size=size, count=s.synthetic_count, seed=SYNTHETIC_SEED), crop, note


def search_data(s: LowLightSettings) -> SearchData:
    """The training split (validation slice excluded) cut into two contiguous halves: lower (weights)
    and upper (architecture), with crops and flips; the note says where they come from."""
    if s.data is None:
        synthetic, crop, extra = _embedded(s)
        base: Dataset = synthetic
        indices, note = list(range(len(synthetic))), "embedded synthetic training pairs" + extra
    else:
        split = _split_folder(s)
        base, indices, note, crop = split.base, split.indices, split.note, s.crop
    n = len(indices)
    if n < 2:
        raise DataError(f"the search needs at least 2 training images (one per level), found {n}; add images")
    half = n // 2
    return SearchData(CropFlipView(base, indices[:half], crop, s.flip, s.seed),
                      CropFlipView(base, indices[half:], crop, s.flip, s.seed + 1), note)


def train_data(s: LowLightSettings) -> TrainData:
    """The training set with crops and flips, the validation set at full resolution (None: none), the
    note on the split, its record, and whether validation has references to score."""
    if s.data is None:
        base, crop, note = _embedded(s)
        return TrainData(CropFlipView(base, None, crop, s.flip, s.seed), SyntheticLowLight("val", seed=SYNTHETIC_SEED),
                         "validation: the embedded validation split (its own source photograph)" + note)
    split = _split_folder(s)
    scored = split.val is not None and is_paired(split.val)
    return TrainData(CropFlipView(split.base, split.indices, s.crop, s.flip, s.seed), split.val, split.note,
                     split.split, Scoring(references=scored, role="val"))


def test_data(data: str | list[str] | None, s: LowLightSettings) -> TestData:
    """The folder ``data`` (its test split, or the folder itself; all pairs of two folders) or the
    synthetic test split; scored with references when it has them."""
    if data is None:
        return TestData(SyntheticLowLight("test", seed=SYNTHETIC_SEED))
    dataset = open_folder(data, "test", s.pad_multiple)
    dataset.verify(progress=True)  # every file, before the first image is run
    return TestData(dataset, scoring=Scoring(references=is_paired(dataset)))
