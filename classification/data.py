"""Data of the classification task: CIFAR-10 from a local folder, or the embedded synthetic set.

Both come as an ``ImageSet``: uint8 images ``[N, 3, 32, 32]`` and int64 labels held in memory,
with DARTS's transforms applied per item. An item is a dict::

    {"image": float32 [3, 32, 32] (normalised with the CIFAR mean/std),
     "label": int64 0-d tensor, "name": str (the index in the full set, zero-padded)}

Augmentation (training sets): zero-pad 4 and random 32x32 crop, horizontal flip with
probability 1/2, normalise, then optionally cutout (a ``cutout x cutout`` square of zeros
centred anywhere in the image, clipped at the border), exactly DARTS's ``_data_transforms_cifar10``.
Every random choice comes from a ``torch.Generator`` seeded by ``(seed, epoch, index)``, so an
item is the same whichever worker loads it and a resumed run sees the same images; call
``set_epoch(e)`` before each epoch (with ``persistent_workers`` DataLoaders, build a new loader
per epoch so that the workers' copies see it).
"""

from __future__ import annotations

import os
import pickle
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from classification.synthetic import SPLIT_SEEDS, SYNTHETIC_CLASSES, synthetic_shapes
from datasets.errors import DataError, no_folder
from datasets.transforms import item_generator

__all__ = [
    "CIFAR_MEAN",
    "CIFAR_STD",
    "CIFAR10_CLASSES",
    "CIFAR_LAYOUT",
    "ImageSet",
    "Split",
    "cifar10",
    "find_cifar10_folder",
    "split_by_portion",
    "synthetic",
]

#: DARTS's normalisation constants (``utils._data_transforms_cifar10``).
CIFAR_MEAN: tuple[float, float, float] = (0.49139968, 0.48215827, 0.44653124)
CIFAR_STD: tuple[float, float, float] = (0.24703233, 0.24348505, 0.26158768)
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
_BATCH_DIR = "cifar-10-batches-py"
_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_FILES = ("test_batch",)
_META = "batches.meta"
CIFAR_LAYOUT = (f"DIR/{_BATCH_DIR}/ (or DIR itself) holding {', '.join(_TRAIN_FILES[:1])}..data_batch_5, "
                f"test_batch and {_META}: the python version of CIFAR-10 as torchvision downloads it "
                "(https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz, extracted)")


def _randint(high: int, g: torch.Generator) -> int:
    return int(torch.randint(high, (1,), generator=g))


class ImageSet(Dataset):
    """Labelled images in memory with DARTS's transforms (see the module docstring).

    Args:
        images: uint8 ``[N, 3, H, W]``; labels: int64 ``[N]``.
        augment: random crop (pad 4) and horizontal flip; cutout: side of the cutout square
            (0: none); seed: seed of the augmentation; classes: class names; source: where the
            images come from (for messages).
    """

    def __init__(self, images: Tensor, labels: Tensor, augment: bool = False, cutout: int = 0,
                 seed: int = 0, classes: Sequence[str] = (), source: str = "") -> None:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be uint8 [N, 3, H, W], got {images.dtype} {tuple(images.shape)}")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must be [N] with N = {images.shape[0]}, got {tuple(labels.shape)}")
        self.images = images
        self.labels = labels.to(torch.int64)
        self.augment = bool(augment)
        self.cutout = int(cutout or 0)
        self.seed = int(seed)
        self.epoch = 0
        self.classes = tuple(classes)
        self.source = source
        self._mean = torch.tensor(CIFAR_MEAN).view(3, 1, 1)
        self._std = torch.tensor(CIFAR_STD).view(3, 1, 1)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation of ``epoch`` (items are a function of seed, epoch, index)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        img = self.images[index].float().div_(255.0)  # [3, H, W] in [0, 1]
        g = None
        if self.augment or self.cutout > 0:
            g = item_generator(self.seed, self.epoch, index)
        if self.augment:
            H, W = img.shape[-2:]
            padded = F.pad(img, (4, 4, 4, 4))  # zeros (black) before normalising, as PIL pads
            top, left = _randint(9, g), _randint(9, g)
            img = padded[:, top : top + H, left : left + W]
            if torch.rand((), generator=g) < 0.5:
                img = img.flip(-1)
        img = (img - self._mean) / self._std
        if self.cutout > 0:
            img = _cutout(img, self.cutout, g)
        return {"image": img.contiguous(), "label": self.labels[index], "name": f"{index:05d}"}


def _cutout(img: Tensor, length: int, g: torch.Generator) -> Tensor:
    """DARTS's ``Cutout``: zero a ``length`` square centred at a uniform pixel, clipped (in place)."""
    H, W = img.shape[-2:]
    cy, cx = _randint(H, g), _randint(W, g)
    y1, y2 = max(cy - length // 2, 0), min(cy + length // 2, H)
    x1, x2 = max(cx - length // 2, 0), min(cx + length // 2, W)
    img[:, y1:y2, x1:x2] = 0.0  # in place: ``img`` is the fresh normalised copy
    return img


class Split(Dataset):
    """The items ``indices`` of ``base`` (names stay those of ``base``); ``set_epoch`` forwards."""

    def __init__(self, base: ImageSet, indices: Sequence[int]) -> None:
        self.base = base
        self.indices = list(indices)

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.base[self.indices[i]]


def split_by_portion(base: ImageSet, portion: float) -> tuple[Split, Split]:
    """DARTS's search split: the first ``floor(portion * N)`` items, and the rest."""
    if not 0.0 < portion < 1.0:
        raise ValueError(f"train_portion must lie strictly between 0 and 1, got {portion!r}")
    n = len(base)
    cut = int(np.floor(portion * n))
    if cut < 1 or cut >= n:
        raise ValueError(f"train_portion {portion} of {n} images leaves one side of the search split empty")
    return Split(base, range(cut)), Split(base, range(cut, n))


# -- CIFAR-10 from a folder ------------------------------------------------------------------
def _torchvision_cifar10(folder: str, train: bool) -> Any:
    """torchvision's ``CIFAR10(root, download=False)`` reader on ``folder``, checking that the
    files exist but not their md5 (shapes are checked instead, which also admits small folders
    in the same format). torchvision is imported here: importing it takes seconds."""
    from torchvision.datasets import CIFAR10

    class _CIFAR10(CIFAR10):
        train_list = [[name, None] for name in _TRAIN_FILES]
        test_list = [[name, None] for name in _TEST_FILES]
        meta = {"filename": _META, "key": "label_names", "md5": None}
        base_folder = os.path.basename(folder)

    return _CIFAR10(os.path.dirname(folder), train=train, download=False)


def find_cifar10_folder(root: str | os.PathLike[str]) -> str:
    """The folder holding the CIFAR-10 batches: ``root/cifar-10-batches-py`` or ``root`` itself.

    Raises ``DataError`` (one line naming the folder and the expected layout) when neither
    exists or a batch file is missing."""
    root = os.path.abspath(os.fspath(root))
    if not os.path.isdir(root):
        raise no_folder(root, "CIFAR-10 folder", f"expected {CIFAR_LAYOUT}")
    nested = os.path.join(root, _BATCH_DIR)
    folder = nested if os.path.isdir(nested) else root
    missing = [f for f in (*_TRAIN_FILES, *_TEST_FILES, _META) if not os.path.isfile(os.path.join(folder, f))]
    if missing:
        raise DataError(f"CIFAR-10 folder {folder!r} lacks {', '.join(missing)}; expected {CIFAR_LAYOUT}")
    return folder


_READ_ERRORS = (OSError, RuntimeError, pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError,
                AttributeError, IndexError)


def _unreadable(folder: str, names: Sequence[str]) -> str | None:
    """The first of ``names`` (and ``batches.meta``) in ``folder`` that does not unpickle to a batch,
    quoted, or None: called only once reading has failed, to name the file in the error."""
    for name in (*names, _META):
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as f:
                entry = pickle.load(f, encoding="latin1")
            if not isinstance(entry, dict):
                return f"{path!r}"
        except _READ_ERRORS:
            return f"{path!r}"
    return None


def _read_cifar10(root: str | os.PathLike[str], train: bool) -> tuple[Tensor, Tensor, tuple[str, ...], str]:
    folder = find_cifar10_folder(root)
    try:
        ds = _torchvision_cifar10(folder, train)
    except _READ_ERRORS as exc:
        what = " ".join(f"{type(exc).__name__}: {exc}".split())
        where = _unreadable(folder, _TRAIN_FILES if train else _TEST_FILES) or f"CIFAR-10 folder {folder!r}"
        raise DataError(f"{where} is corrupt ({what}); replace it from the CIFAR-10 archive "
                        f"(expected {CIFAR_LAYOUT})") from None
    data, targets = np.asarray(ds.data), np.asarray(ds.targets)
    n = data.shape[0]
    if data.dtype != np.uint8 or data.shape[1:] != (32, 32, 3) or targets.shape != (n,) or n == 0:
        raise DataError(f"CIFAR-10 folder {folder!r} is corrupt (images {data.dtype} {data.shape}, "
                        f"labels {targets.shape}); expected {CIFAR_LAYOUT}")
    if targets.min() < 0 or targets.max() > 9:
        raise DataError(f"CIFAR-10 folder {folder!r} is corrupt (labels outside 0..9); expected {CIFAR_LAYOUT}")
    images = torch.from_numpy(np.ascontiguousarray(data.transpose(0, 3, 1, 2)))
    return images, torch.from_numpy(targets.astype(np.int64)), tuple(ds.classes), folder


def cifar10(root: str | os.PathLike[str], train: bool, augment: bool = False, cutout: int = 0,
            seed: int = 0) -> ImageSet:
    """The CIFAR-10 training (50k) or test (10k) set read from ``root`` (see ``CIFAR_LAYOUT``).

    ``DataError`` when the folder is missing, incomplete or unreadable."""
    images, labels, classes, folder = _read_cifar10(root, train)
    return ImageSet(images, labels, augment, cutout, seed, classes or CIFAR10_CLASSES,
                    source=f"{folder} ({'train' if train else 'test'})")


def synthetic(split: str, count: int, augment: bool = False, cutout: int = 0, seed: int = 0,
              data_seed: int = 0) -> ImageSet:
    """The embedded synthetic set (``classification.synthetic``): ``split`` ``"train"`` or
    ``"test"`` (drawn independently), ``count`` images; ``seed`` drives the augmentation,
    ``data_seed`` the images."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f"split must be one of {sorted(SPLIT_SEEDS)}, got {split!r}")
    images, labels = synthetic_shapes(int(count), seed=data_seed + SPLIT_SEEDS[split])
    return ImageSet(images, labels, augment, cutout, seed, SYNTHETIC_CLASSES,
                    source=f"synthetic shapes ({split}, {count} images)")
