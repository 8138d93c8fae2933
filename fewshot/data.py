"""The classes of one split of a few-shot set: Omniglot or miniImageNet read in place, or the embedded glyphs.

``load_classes(root, split)`` returns a ``ClassImages``: class names and, per class, its images,
either held in memory (uint8 ``[n, C, H, W]``) or as files decoded when an episode draws them.
Images come out as float32 ``[C, H, W]`` in ``[0, 1]``, unnormalised. Layouts (``root``):

* ``None``: the embedded glyphs (``fewshot.synthetic``), 1 x 28 x 28, 64 / 16 / 20 classes of 20.
* miniImageNet, ``ROOT/{train,val,test}/<class>/*.jpg`` (Ravi & Larochelle's split, 64 / 16 / 20
  classes of 600 images): RGB, resized to ``size`` (84) with ``cv2.INTER_AREA`` (squashed, not
  cropped, when a file is not square). Any tree of class folders under split folders reads the same.
* Omniglot as distributed, ``ROOT/images_background/`` + ``ROOT/images_evaluation/``, each
  ``<alphabet>/<character>/*.png``: meta-test is the evaluation set (659 characters), meta-val a
  seeded slice of the background set (100 characters; ``max(1, n // 10)`` of a background of
  fewer than 200), meta-train the rest of the background set (864).
* Omniglot flat, ``ROOT/<alphabet>/<character>/*.png`` (all 1623 characters in one tree, MAML's
  ``omniglot_resized``): MAML's split (cbfinn/maml ``data_generator.py``): the character folders,
  SORTED by ``(alphabet, character)`` here so the split is the same on every machine, are shuffled
  with ``random.seed(1)``; the first 1100 are meta-train, the next 100 meta-val, the rest (from
  1200) meta-test. A tree of at most 1200 characters is split in Omniglot's proportions instead:
  ``round(n * 100 / 1623)`` val and ``round(n * 423 / 1623)`` test (each at least 1), train the rest.

Omniglot images are read as gray, inverted (ink 1, paper 0) and resized to ``size`` (28) with
``cv2.INTER_AREA``; ``rotations`` (on unless ``False``) adds every Omniglot meta-TRAIN character turned
by 90, 180 and 270 degrees as three new classes (``<name>/rot090`` ...; the augmentation of Santoro et
al. and Vinyals et al., which MAML's code applies per task instead). It never touches val or test,
miniImageNet or the glyphs, so one flag can be passed to every load.

Checks, before any step: the layout is recognised, every class has at least ``min_images`` images
(``shots + queries``) and only image files count. Memory: Omniglot is decoded eagerly (32460 PNGs,
0.1 to 0.3 ms each, 25 MB at 28x28: 3 to 7 s for a meta-train split, with a progress bar); miniImageNet is decoded
lazily per item (``cache`` keeps the last decoded images per process), since 38400 train images at
84x84 take 0.8 GB. Headers are NOT probed up front: for an 84x84 JPEG a header probe costs as much as
decoding it (about 0.1 ms, so 4 s for the train split and far more on a cold disk); a file that fails
to decode is a one-line ``DataError`` naming it when drawn. ``eager=True`` decodes (and so checks)
every file at load.
"""

from __future__ import annotations

import os
import random
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

from datasets.errors import DataError, no_folder
from datasets.io import checking, decode_image, to_unit_range
from datasets.pairs import image_files

__all__ = ["FEWSHOT_LAYOUTS", "SPLITS", "ClassImages", "image_format", "load_classes", "omniglot_flat_split",
           "read_class_image"]

SPLITS: tuple[str, ...] = ("train", "val", "test")
FEWSHOT_LAYOUTS = ("miniImageNet ROOT/{train,val,test}/<class>/*.jpg, Omniglot as distributed "
                   "ROOT/images_background/ + ROOT/images_evaluation/ (each <alphabet>/<character>/*.png), "
                   "or Omniglot flat ROOT/<alphabet>/<character>/*.png")
_MAML_SEED, _MAML_TRAIN, _MAML_VAL, _OMNIGLOT = 1, 1100, 100, 1623
Files = tuple[Path, ...]


@dataclass
class ClassImages:
    """The classes of one split (see the module docstring).

    Attributes:
        names: class names; ``items[c]``: uint8 ``[n_c, C, H, W]`` in memory, or ``n_c`` files;
        turns: counter-clockwise quarter turns applied to class ``c``'s images (rotation classes);
        folders: where each class comes from (for messages); kind: ``"gray"`` (inverted, Omniglot)
        or ``"rgb"``, how files are decoded; channels, size: of every image; cache: decoded files kept
        per process (lazy classes); source: a description for logs.
    """

    names: tuple[str, ...]
    items: tuple[Tensor | Files, ...]
    turns: tuple[int, ...]
    folders: tuple[str, ...]
    kind: str
    channels: int
    size: int
    source: str
    cache: int = 0
    _decoded: OrderedDict[Path, Tensor] = field(default_factory=OrderedDict, init=False, repr=False,
                                                  compare=False)

    def __len__(self) -> int:
        return len(self.names)

    def count(self, c: int) -> int:
        """Number of images of class ``c``."""
        return len(self.items[c])

    def check(self, min_images: int) -> None:
        """``DataError`` naming the first class with fewer than ``min_images`` images (and the fix)."""
        _check_counts(self.folders, [self.count(c) for c in range(len(self))], min_images)

    def image(self, c: int, i: int) -> Tensor:
        """Image ``i`` of class ``c``: float32 ``[C, H, W]`` in ``[0, 1]``."""
        item = self.items[c]
        img = item[i] if isinstance(item, Tensor) else self._file(item[i])
        if self.turns[c]:
            img = torch.rot90(img, self.turns[c], dims=(-2, -1))
        return img.float().div_(255.0)

    def item_name(self, c: int, i: int) -> str:
        """``<class name>/<file stem>`` (or ``/<index>`` for images held in memory)."""
        item = self.items[c]
        return f"{self.names[c]}/{item[i].stem if not isinstance(item, Tensor) else f'{i:04d}'}"

    def _file(self, path: Path) -> Tensor:
        """uint8 ``[C, H, W]`` of one file, through the per-process LRU cache."""
        hit = self._decoded.get(path)
        if hit is not None:
            self._decoded.move_to_end(path)
            return hit
        img = read_class_image(path, self.kind, self.size)
        if self.cache > 0:
            self._decoded[path] = img
            if len(self._decoded) > self.cache:
                self._decoded.popitem(last=False)
        return img


def _check_counts(folders: Sequence[str], counts: Sequence[int], min_images: int) -> None:
    for folder, n in zip(folders, counts):
        if n < min_images:
            fix = ("raise the synthetic images per class" if folder.startswith("synthetic ") else
                   "add images to it")
            raise DataError(f"class '{folder}' holds {n} images, fewer than the {min_images} an episode draws "
                            f"from a class (shots + queries); {fix} or lower --shots/--queries")


def _to_uint8(arr: np.ndarray, path: Path) -> np.ndarray:
    """8-bit samples of a decoded image (``datasets.io.to_unit_range`` for the other sample types)."""
    if arr.dtype == np.uint8:
        return arr
    return np.round(to_unit_range(arr, path) * 255.0).astype(np.uint8)


def read_class_image(path: str | os.PathLike, kind: str, size: int) -> Tensor:
    """Decode one file: ``kind`` ``"gray"`` -> uint8 ``[1, size, size]``, gray and inverted (Omniglot's
    black ink on white becomes 255 on 0); ``"rgb"`` -> uint8 ``[3, size, size]``. Resized with
    ``cv2.INTER_AREA``; a file that does not decode is a one-line ``DataError`` naming it."""
    p = Path(path)
    arr = _to_uint8(decode_image(p), p)
    if arr.ndim == 3 and arr.shape[2] == 2:  # gray + alpha
        arr = np.ascontiguousarray(arr[:, :, 0])
    code = {(2, "rgb"): cv2.COLOR_GRAY2RGB, (3, "rgb"): cv2.COLOR_BGR2RGB, (4, "rgb"): cv2.COLOR_BGRA2RGB,
            (3, "gray"): cv2.COLOR_BGR2GRAY, (4, "gray"): cv2.COLOR_BGRA2GRAY}.get(
        (arr.ndim if arr.ndim == 2 else arr.shape[2], kind))
    if code is not None:
        arr = cv2.cvtColor(arr, code)
    if kind == "gray":
        arr = 255 - arr
    if arr.shape[:2] != (size, size):
        arr = cv2.resize(arr, (size, size), interpolation=cv2.INTER_AREA)
    t = torch.from_numpy(np.ascontiguousarray(arr))
    return t[None] if t.ndim == 2 else t.permute(2, 0, 1).contiguous()


def _dirs(folder: Path) -> list[Path]:
    """The non-hidden sub-folders of ``folder``, sorted by name."""
    return [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")]


def _characters(alphabets: Path) -> list[Path]:
    """``alphabets/<alphabet>/<character>`` folders, sorted by ``(alphabet, character)``."""
    return [c for a in _dirs(alphabets) for c in _dirs(a)]


def omniglot_flat_split(n: int) -> tuple[int, int, int]:
    """``(train, val, test)`` character counts of a flat Omniglot tree of ``n`` characters (module docstring)."""
    if n > _MAML_TRAIN + _MAML_VAL:
        return _MAML_TRAIN, _MAML_VAL, n - _MAML_TRAIN - _MAML_VAL
    val = max(1, round(n * _MAML_VAL / _OMNIGLOT))
    test = max(1, round(n * (_OMNIGLOT - _MAML_TRAIN - _MAML_VAL) / _OMNIGLOT))
    return n - val - test, val, test


def _shuffled(folders: list[Path]) -> list[Path]:
    order = list(folders)
    random.Random(_MAML_SEED).shuffle(order)  # MAML's random.seed(1); random.shuffle(character_folders)
    return order


def _omniglot_folders(root: Path, split: str) -> tuple[list[Path], str]:
    """The character folders of ``split`` (sorted) and a description of where they come from."""
    bg, ev = root / "images_background", root / "images_evaluation"
    if bg.is_dir() or ev.is_dir():
        need = ev if split == "test" else bg
        if not need.is_dir():
            raise DataError(f"Omniglot folder '{root}' has no '{need.name}' folder (the meta-"
                            f"{'test' if split == 'test' else 'train and meta-val'} characters); extract "
                            f"{need.name}.zip into it")
        chars = _characters(need)
        if split == "test":
            return chars, f"Omniglot {ev}"
        if len(chars) < 2:
            raise DataError(f"Omniglot folder '{bg}' holds {len(chars)} characters, too few for a meta-train "
                            "and a meta-val split; pass the complete images_background folder")
        n_val = _MAML_VAL if len(chars) >= 2 * _MAML_VAL else max(1, len(chars) // 10)
        val = set(_shuffled(chars)[:n_val])
        return [c for c in chars if (c in val) == (split == "val")], f"Omniglot {bg}"
    chars = _characters(root)
    if len(chars) < 3:
        raise DataError(f"Omniglot folder '{root}' holds {len(chars)} characters, too few for meta-train, "
                        "meta-val and meta-test splits; pass the complete Omniglot folder")
    n_train, n_val, _ = omniglot_flat_split(len(chars))
    order = _shuffled(chars)
    part = {"train": order[:n_train], "val": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}
    return sorted(part[split]), f"Omniglot {root} (MAML's split)"


def _layout(root: Path) -> str:
    """``"splits"`` (miniImageNet) or ``"omniglot"`` (either Omniglot layout); ``DataError`` for a missing
    folder or another layout."""
    if not root.is_dir():
        raise no_folder(root, "few-shot data folder", f"pass a folder in one of the layouts: {FEWSHOT_LAYOUTS}")
    if any((root / s).is_dir() for s in SPLITS):
        return "splits"
    if (root / "images_background").is_dir() or (root / "images_evaluation").is_dir():
        return "omniglot"
    if any(image_files(c) for a in _dirs(root) for c in _dirs(a)):
        return "omniglot"
    flat = any(image_files(d) for d in _dirs(root)[:1])
    hint = " (a folder of class folders is one split: put it in ROOT/train, ROOT/val or ROOT/test)"
    raise DataError(f"few-shot data folder '{root}' has no layout this task reads; expected "
                    f"{FEWSHOT_LAYOUTS}{hint if flat else ''}")


def image_format(root: str | os.PathLike | None) -> tuple[int, int]:
    """``(channels, default image side)`` of the set at ``root`` without reading images: ``(3, 84)``
    for miniImageNet, ``(1, 28)`` for Omniglot and the glyphs (``None``); ``DataError`` as ``load_classes``."""
    return (1, 28) if root is None or _layout(Path(root)) == "omniglot" else (3, 84)


def _read_all(files: list[Files], kind: str, size: int, progress: bool) -> list[Tensor]:
    """Decode every file: per class uint8 ``[n_c, C, size, size]``."""
    flat = [f for fs in files for f in fs]
    decoded = iter([read_class_image(f, kind, size) for f in checking(flat, f"reading {len(flat)} images",
                                                                         progress)])
    return [torch.stack([next(decoded) for _ in fs]) for fs in files]


def load_classes(root: str | os.PathLike | None, split: str, *, size: int | None = None,
                 rotations: bool | None = None, min_images: int = 1, eager: bool | None = None,
                 cache: int = 0, progress: bool = True, synthetic_classes: int | None = None,
                 synthetic_images: int = 20, synthetic_seed: int = 0) -> ClassImages:
    """The classes of ``split`` (``"train"``, ``"val"`` or ``"test"``) of the set at ``root``.

    Args:
        root: a folder in one of the layouts of the module docstring; ``None``: the embedded glyphs.
        size: image side (``None``: 84 for miniImageNet, 28 otherwise); rotations: ``False`` turns off
            the rotated Omniglot meta-train classes (``None``, ``True``: on; other sets: ignored);
        min_images: the least images every class must hold (an episode's ``shots + queries``);
        eager: decode every file at load (``None``: Omniglot yes, miniImageNet no); cache: decoded files
            kept per process when lazy; progress: progress bar while reading; synthetic_classes,
            synthetic_images, synthetic_seed: the embedded set's classes (``None``: 64 / 16 / 20),
            images per class and data seed.

    Raises:
        DataError: missing folder, unknown layout, a missing split folder, or a class with fewer than
            ``min_images`` images (one line naming the folder and the fix).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if size is not None and size < 4:
        raise ValueError(f"image size must be at least 4 pixels, got {size}")
    if root is None:
        from fewshot.synthetic import synthetic_glyphs

        imgs, names = synthetic_glyphs(split, synthetic_seed, synthetic_classes, synthetic_images, size or 28)
        items: list[Tensor | Files] = list(imgs.unbind(0))
        folders, kind, channels, source = [f"synthetic {n}" for n in names], "gray", 1, f"synthetic glyphs ({split})"
        size, layout = size or 28, "synthetic"
    else:
        path = Path(root)
        layout = _layout(path)
        if layout == "splits":
            if not (path / split).is_dir():
                raise DataError(f"miniImageNet folder '{path}' has no '{split}' folder; expected {FEWSHOT_LAYOUTS}")
            dirs, kind, channels, source = _dirs(path / split), "rgb", 3, f"miniImageNet {path / split}"
            size = size or 84
        else:
            dirs, source = _omniglot_folders(path, split)
            kind, channels, size = "gray", 1, size or 28
        if not dirs:
            raise DataError(f"'{path}' holds no class folders for split '{split}'; expected {FEWSHOT_LAYOUTS}")
        files = [tuple(image_files(d)) for d in dirs]
        names = tuple(d.name if layout == "splits" else f"{d.parent.name}/{d.name}" for d in dirs)
        folders = [str(d) for d in dirs]
        _check_counts(folders, [len(f) for f in files], min_images)
        eager = layout == "omniglot" if eager is None else eager
        items = list(_read_all(files, kind, size, progress)) if eager else list(files)
    n = len(names)
    turns = [0] * n
    if split == "train" and layout == "omniglot" and rotations is not False:
        names = tuple(names) + tuple(f"{m}/rot{90 * k:03d}" for k in (1, 2, 3) for m in names)
        items, folders = items * 4, folders * 4
        turns = [k for k in range(4) for _ in range(n)]
        source += ", with 90/180/270-degree rotations as classes"
    if root is None:
        _check_counts(folders, [len(x) for x in items], min_images)
    return ClassImages(tuple(names), tuple(items), tuple(turns), tuple(folders), kind, channels, size, source,
                       cache=int(cache))
