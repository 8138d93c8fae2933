"""Data of the registration task: the embedded synthetic pairs or a folder (neurite-OASIS / npz),
split for search, training and testing.

The fields of ``RegistrationSettings`` read here:

* ``data``: folder, or None for the embedded pairs (``datasets.synthetic_registration``);
* ``dims``: 2 or 3;
* ``atlas``: atlas file/folder: scan-to-atlas pairs; without it scan-to-scan pairs;
* ``val_fraction``, ``test_fraction``: seeded subject split of a single folder
  (``datasets.registration.split_subjects``; a folder with ``train/`` and ``test/`` sub-folders
  uses them, and takes validation from ``train/``);
* ``val_pairs``: number of fixed scan-to-scan validation/test pairs;
* ``seed``: split and pairing seed (the synthetic content is fixed, ``SYNTHETIC_SEED``);
* ``synthetic_count``, ``size``: embedded data: training pairs and side length.

``search_sets`` cuts the TRAINING subjects (embedded: training photos/volumes) into two disjoint
halves, lower and upper; ``train_sets`` gives (all training, validation); ``test_set`` the test
subjects. Validation never reads test subjects. Every set is checked (``verify``) before it is
returned; the embedded validation pairs are generated once and kept (``Cached``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from torch.utils.data import Dataset

from datasets.errors import DataError
from datasets.registration import RegistrationPairs, VolumeFolder, fixed_pairs, load_atlas, split_subjects
from datasets.synthetic_registration import SyntheticRegistration
from datasets.views import CropFlipView
from restoration.registration.settings import RegistrationSettings

__all__ = ["Cached", "PairSet", "SYNTHETIC_SEED", "search_sets", "test_set", "train_sets"]

SYNTHETIC_SEED = 0
#: the sets of (moving, fixed) items returned here
PairSet = CropFlipView | SyntheticRegistration | RegistrationPairs


class Cached(CropFlipView):
    """All items of ``base`` unchanged, each generated once and kept (fixed validation pairs)."""

    def __init__(self, base: Dataset) -> None:
        super().__init__(base, keys=())
        self.items: dict[int, dict] = {}

    def __getitem__(self, index: int) -> dict:
        if index not in self.items:
            self.items[index] = super().__getitem__(index)
        return self.items[index]


class _Pairs(RegistrationPairs):
    """``RegistrationPairs`` whose ``verify`` checks the folder (and the atlas shape)."""

    def verify(self, progress: bool = False) -> None:
        shape = self.folder.verify(progress)
        if self.atlas is not None and tuple(self.atlas["image"].shape[1:]) != tuple(shape):
            raise DataError(f"the atlas has shape {list(self.atlas['image'].shape[1:])}, the volumes {list(shape)}; "
                            "pass an atlas on the volumes' grid")


def _folders(data: str | list[str] | None, s: RegistrationSettings
             ) -> tuple[VolumeFolder, list[int], list[int], VolumeFolder, list[int]]:
    """(train folder, train idx, val idx [in the train folder], test folder, test idx) of ``data``."""
    if not isinstance(data, (str, Path)):
        raise DataError(f"registration reads one folder of volumes, not {data!r}; pass --data DIR (--pairs is "
                        "for the image tasks)")
    root = Path(data)
    if (root / "train").is_dir() and (root / "test").is_dir():
        train = VolumeFolder(root / "train", s.dims)
        test = VolumeFolder(root / "test", s.dims)
        tr, va, _ = split_subjects(len(train), s.val_fraction, 0.0, s.seed)
        return train, tr, va, test, list(range(len(test)))
    folder = VolumeFolder(root, s.dims)
    tr, va, te = split_subjects(len(folder), s.val_fraction, s.test_fraction, s.seed)
    return folder, tr, va, folder, te


def _pairs(folder: VolumeFolder, idx: list[int], s: RegistrationSettings, atlas: Optional[dict], fixed: bool,
           seed: int) -> _Pairs:
    if atlas is not None:
        return _Pairs(folder, idx, atlas=atlas, seed=seed)
    if fixed:
        return _Pairs(folder, idx, pairs=fixed_pairs(idx, s.val_pairs, seed), seed=seed)
    return _Pairs(folder, idx, seed=seed)


def _atlas(s: RegistrationSettings) -> Optional[dict]:
    return None if s.atlas is None else load_atlas(s.atlas, s.dims)


def _synthetic(split: str, s: RegistrationSettings) -> SyntheticRegistration:
    count = s.synthetic_count if split == "train" else None
    return SyntheticRegistration(split, s.dims, s.size, count, seed=SYNTHETIC_SEED)


def _verified(*sets: PairSet) -> None:
    for dataset in sets:
        dataset.verify()


def search_sets(s: RegistrationSettings) -> tuple[PairSet, PairSet]:
    """(lower, upper): two disjoint halves of the training subjects (embedded: of the sources)."""
    if s.data is None:
        base = _synthetic("train", s)
        n_src = base.n_sources()
        lower = [k for k in range(len(base)) if k % n_src < (n_src + 1) // 2]
        upper = [k for k in range(len(base)) if k % n_src >= (n_src + 1) // 2]
        views = (CropFlipView(base, lower, keys=(), forward_epoch=True),
                 CropFlipView(base, upper, keys=(), forward_epoch=True))
        _verified(*views)
        return views
    folder, tr, _, _, _ = _folders(s.data, s)
    if len(tr) < 2 or (s.atlas is None and len(tr) < 4):
        raise DataError(f"the search needs at least {2 if s.atlas else 4} training volumes (two halves), "
                        f"found {len(tr)} in '{s.data}'; add volumes")
    half, atlas = len(tr) // 2, _atlas(s)
    pairs = _pairs(folder, tr[:half], s, atlas, False, s.seed), _pairs(folder, tr[half:], s, atlas, False, s.seed + 1)
    _verified(*pairs)
    return pairs


def train_sets(s: RegistrationSettings) -> tuple[PairSet, PairSet]:
    """(training pairs, fixed validation pairs)."""
    if s.data is None:
        train, val = _synthetic("train", s), _synthetic("val", s)
        _verified(train, val)
        return train, Cached(val)
    folder, tr, va, _, _ = _folders(s.data, s)
    if not va:
        raise DataError(f"no validation volumes in '{s.data}'; raise val_fraction or add volumes")
    atlas = _atlas(s)
    pairs = _pairs(folder, tr, s, atlas, False, s.seed), _pairs(folder, va, s, atlas, True, s.seed + 7)
    _verified(*pairs)
    return pairs


def test_set(data: Optional[str], s: RegistrationSettings) -> PairSet:
    """Fixed test pairs of the folder ``data`` (its test subjects) or the embedded test split."""
    if data is None:
        test: PairSet = _synthetic("test", s)
    else:
        _, _, _, folder, te = _folders(data, s)
        test = _pairs(folder, te, s, _atlas(s), True, s.seed + 11)
    _verified(test)
    return test
