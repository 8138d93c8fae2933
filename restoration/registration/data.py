"""Data of the registration task: the embedded synthetic pairs or a folder (neurite-OASIS / npz),
split for search, training and testing.

Settings (a plain dict; keys and defaults):

* ``data`` (None): folder, or None for the embedded pairs (``datasets.synthetic_registration``);
* ``dims`` (2): 2 or 3;
* ``atlas`` (None): atlas file/folder: scan-to-atlas pairs; without it scan-to-scan pairs;
* ``val_fraction`` (0.1), ``test_fraction`` (0.2): seeded subject split of a single folder
  (``datasets.registration.split_subjects``; a folder with ``train/`` and ``test/`` sub-folders
  uses them, and takes validation from ``val/`` if present, else from ``train/``);
* ``val_pairs`` (16): number of fixed scan-to-scan validation/test pairs;
* ``seed`` (0): split and pairing seed (the synthetic content is fixed, ``SYNTHETIC_SEED``);
* ``synthetic_count`` (None), ``size`` (None): embedded data: training pairs and side length.

``search_sets`` cuts the TRAINING subjects (embedded: training photos/volumes) into two disjoint
halves, lower and upper; ``train_sets`` gives (all training, validation); ``test_set`` the test
subjects. Validation never reads test subjects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

from torch.utils.data import Dataset

from datasets.errors import DataError
from datasets.registration import RegistrationPairs, VolumeFolder, fixed_pairs, load_atlas, split_subjects
from datasets.synthetic_registration import SyntheticRegistration

__all__ = ["IndexView", "SETTINGS_DEFAULTS", "search_sets", "test_set", "train_sets"]

SYNTHETIC_SEED = 0
SETTINGS_DEFAULTS: dict[str, Any] = {"data": None, "dims": 2, "atlas": None, "val_fraction": 0.1,
                                     "test_fraction": 0.2, "val_pairs": 16, "seed": 0,
                                     "synthetic_count": None, "size": None}


def _settings(settings: dict[str, Any]) -> dict[str, Any]:
    unknown = set(settings) - set(SETTINGS_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown registration setting(s) {sorted(unknown)}; known: {sorted(SETTINGS_DEFAULTS)}")
    return {**SETTINGS_DEFAULTS, **settings}


class IndexView(Dataset):
    """Items ``indices`` of ``base``; ``set_epoch`` is forwarded."""

    def __init__(self, base: Dataset, indices: Sequence[int]) -> None:
        self.base, self.indices = base, list(indices)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def verify(self, progress: bool = False) -> None:
        if hasattr(self.base, "verify"):
            self.base.verify(progress)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> dict:
        return self.base[self.indices[k]]


class _Pairs(RegistrationPairs):
    """``RegistrationPairs`` whose ``verify`` checks the folder (and the atlas shape)."""

    def verify(self, progress: bool = False) -> None:
        shape = self.folder.verify(progress)
        if self.atlas is not None and tuple(self.atlas["image"].shape[1:]) != tuple(shape):
            raise DataError(f"the atlas has shape {list(self.atlas['image'].shape[1:])}, the volumes {list(shape)}; "
                            "pass an atlas on the volumes' grid")


def _folders(s: dict[str, Any]) -> tuple[VolumeFolder, list[int], list[int], VolumeFolder, list[int]]:
    """(train folder, train idx, val idx [in train folder or val folder], test folder, test idx)."""
    if not isinstance(s["data"], (str, Path)):
        raise DataError(f"registration reads one folder of volumes, not {s['data']!r}; pass --data DIR (--pairs is "
                        "for the image tasks)")
    root, dims = Path(s["data"]), int(s["dims"])
    if (root / "train").is_dir() and (root / "test").is_dir():
        train = VolumeFolder(root / "train", dims)
        test = VolumeFolder(root / "test", dims)
        tr, va, _ = split_subjects(len(train), s["val_fraction"], 0.0, s["seed"])
        return train, tr, va, test, list(range(len(test)))
    folder = VolumeFolder(root, dims)
    tr, va, te = split_subjects(len(folder), s["val_fraction"], s["test_fraction"], s["seed"])
    return folder, tr, va, folder, te


def _pairs(folder: VolumeFolder, idx: list[int], s: dict[str, Any], atlas: Optional[dict], fixed: bool,
           seed: int) -> Dataset:
    if atlas is not None:
        return _Pairs(folder, idx, atlas=atlas, seed=seed)
    if fixed:
        return _Pairs(folder, idx, pairs=fixed_pairs(idx, int(s["val_pairs"]), seed), seed=seed)
    return _Pairs(folder, idx, seed=seed)


def _atlas(s: dict[str, Any]) -> Optional[dict]:
    return None if s["atlas"] is None else load_atlas(s["atlas"], int(s["dims"]))


def _synthetic(split: str, s: dict[str, Any]) -> SyntheticRegistration:
    count = s["synthetic_count"] if split == "train" else None
    return SyntheticRegistration(split, int(s["dims"]), s["size"], count, seed=SYNTHETIC_SEED)


def search_sets(settings: dict[str, Any]) -> tuple[Dataset, Dataset]:
    """(lower, upper): two disjoint halves of the training subjects (embedded: of the sources)."""
    s = _settings(settings)
    if s["data"] is None:
        base = _synthetic("train", s)
        n_src = base.n_sources()
        lower = [k for k in range(len(base)) if k % n_src < (n_src + 1) // 2]
        upper = [k for k in range(len(base)) if k % n_src >= (n_src + 1) // 2]
        return IndexView(base, lower), IndexView(base, upper)
    folder, tr, _, _, _ = _folders(s)
    if len(tr) < 2 or (s["atlas"] is None and len(tr) < 4):
        raise DataError(f"the search needs at least {2 if s['atlas'] else 4} training volumes (two halves), "
                        f"found {len(tr)} in '{s['data']}'; add volumes")
    half, atlas = len(tr) // 2, _atlas(s)
    return (_pairs(folder, tr[:half], s, atlas, False, s["seed"]),
            _pairs(folder, tr[half:], s, atlas, False, s["seed"] + 1))


def train_sets(settings: dict[str, Any]) -> tuple[Dataset, Dataset]:
    """(training pairs, fixed validation pairs)."""
    s = _settings(settings)
    if s["data"] is None:
        return _synthetic("train", s), _synthetic("val", s)
    folder, tr, va, _, _ = _folders(s)
    if not va:
        raise DataError(f"no validation volumes in '{s['data']}'; raise val_fraction or add volumes")
    atlas = _atlas(s)
    return _pairs(folder, tr, s, atlas, False, s["seed"]), _pairs(folder, va, s, atlas, True, s["seed"] + 7)


def test_set(data: Optional[str], settings: dict[str, Any]) -> Dataset:
    """Fixed test pairs of the folder ``data`` (its test subjects) or the embedded test split."""
    s = _settings({**settings, "data": data})
    if data is None:
        return _synthetic("test", s)
    _, _, _, folder, te = _folders(s)
    return _pairs(folder, te, s, _atlas(s), True, s["seed"] + 11)
