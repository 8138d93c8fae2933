"""Benchmark folders of image pairs (low-light / expert) and of single degraded images.

Recognised layouts for ``PairedFolder`` (input folder / target folder, paired by identical file
name, e.g. ``low/1.png`` with ``high/1.png``):

* LOL: ``ROOT/our485/{low,high}`` (training) and ``ROOT/eval15/{low,high}`` (evaluation). Pick one
  with ``split`` (``"train"`` -> ``our485``, ``"test"`` -> ``eval15``, or the folder name itself),
  or pass ``ROOT/our485`` or ``ROOT/eval15`` as the root. Split ``"val"`` reads only a ``val``
  folder, never the test folders (validation slices of the training split are the tasks' job).
* Any ``ROOT/{low,high}``.
* MIT-Adobe FiveK style: ``ROOT/{input,expert}`` (also ``ROOT/{input,expertC}``).
* Split sub-folders of any of these: ``ROOT/{train,val,test}/<pair folders>``.

When ``split`` is given and a matching split sub-folder exists, it is used; otherwise ``ROOT``
itself must hold a pair layout (then every split reads the same pairs). ``root`` may also be two
folders ``[INPUT_DIR, TARGET_DIR]`` (``--pairs``), matched by name or number (``datasets.pairs``).
``UnpairedFolder`` reads ``ROOT/low`` (or ``ROOT/input``) when present, else the images directly
inside ``ROOT``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import torch
from torch.utils.data import Dataset

from datasets.errors import DataError, no_folder
from datasets.io import PathLike, checking, is_image_file, probe_image, probe_pair, read_image
from datasets.pairs import folder_pairs, pair_dirs
from datasets.transforms import Size, as_hw, item_generator, pad_to_multiple, paired_random_crop, paired_random_flip

__all__ = ["PAIR_DIRS", "SPLIT_DIRS", "PairedFolder", "UnpairedFolder", "describe_layouts", "find_pairs"]

#: (input folder, target folder) names, tried in order.
PAIR_DIRS: tuple[tuple[str, str], ...] = (("low", "high"), ("input", "expert"), ("input", "expertC"))
#: split -> sub-folder names tried in order (the split name itself is tried last).
SPLIT_DIRS: dict[str, tuple[str, ...]] = {
    "train": ("our485", "train"),
    "val": ("val",),
    "test": ("eval15", "test"),
}
UNPAIRED_DIRS: tuple[str, ...] = ("low", "input")


def describe_layouts() -> str:
    """A human-readable list of the recognised folder layouts (for ``--help`` and errors)."""
    pairs = ", ".join(f"ROOT/{{{a},{b}}}" for a, b in PAIR_DIRS)
    splits = "; ".join(f"{k} -> {', '.join(v)}" for k, v in SPLIT_DIRS.items())
    return (
        f"paired layouts: {pairs} (files paired by identical name); "
        f"LOL: ROOT/our485/{{low,high}} and ROOT/eval15/{{low,high}}; "
        f"split sub-folders ({splits}); "
        f"unpaired: ROOT/low, ROOT/input or a flat folder of images; "
        f"any two folders: --pairs INPUT_DIR TARGET_DIR"
    )


def _images(folder: Path) -> dict[str, Path]:
    """File name -> path for the (non-hidden) image files directly inside ``folder``."""
    return {
        f.name: f
        for f in sorted(folder.iterdir())
        if f.is_file() and not f.name.startswith(".") and is_image_file(f)
    }


def _pair_dirs(folder: Path) -> Optional[tuple[Path, Path]]:
    """The (input, target) folders of ``folder`` if it holds one of ``PAIR_DIRS``."""
    for a, b in PAIR_DIRS:
        if (folder / a).is_dir() and (folder / b).is_dir():
            return folder / a, folder / b
    return None


def _resolve(root: Path, split: Optional[str]) -> tuple[Path, Path]:
    """Find the (input, target) folders for ``split`` under ``root`` (see module docstring)."""
    if not root.is_dir():
        raise no_folder(root)
    if split is not None:
        for name in dict.fromkeys(SPLIT_DIRS.get(split, ()) + (split,)):
            found = _pair_dirs(root / name)
            if found:
                return found
    found = _pair_dirs(root)
    if found:
        return found
    if split is None:
        subs = [d for d in sorted(root.iterdir()) if d.is_dir() and _pair_dirs(d)]
        if len(subs) == 1:
            return _pair_dirs(subs[0])  # type: ignore[return-value]
        if len(subs) > 1:
            names = ", ".join(d.name for d in subs)
            raise DataError(f"'{root}' holds several pair folders ({names}); choose one with split=")
    for a, b in PAIR_DIRS:
        if (root / a).is_dir():
            raise DataError(f"'{root / a}' has no sibling folder '{b}'; add the targets as '{root / b}' "
                            f"({describe_layouts()})")
    where = f" for split '{split}'" if split else ""
    raise DataError(f"no recognised pair layout in '{root}'{where}; expected {describe_layouts()}")


def find_pairs(input_dir: Path, target_dir: Path) -> list[tuple[Path, Path]]:
    """Pair the images of two folders by identical file name.

    Raises:
        DataError: a folder has no images, or a file has no partner (the first is named).
    """
    inputs, targets = _images(input_dir), _images(target_dir)
    if not inputs:
        raise DataError(f"no images in '{input_dir}'; add image files or fix the path")
    lonely = sorted(set(inputs) ^ set(targets))
    if lonely:
        name = lonely[0]
        have, miss = (inputs[name], target_dir) if name in inputs else (targets[name], input_dir)
        more = f" (and {len(lonely) - 1} more)" if len(lonely) > 1 else ""
        raise DataError(f"'{have}' has no partner '{miss / name}'{more}; add it or remove the file")
    return [(inputs[n], targets[n]) for n in sorted(inputs)]


def _item_generator(seed: Optional[int], epoch: int, index: int) -> Optional[torch.Generator]:
    """``item_generator(seed, epoch, index)``, or ``None`` (torch's global generator) without a seed."""
    return None if seed is None else item_generator(seed, epoch, index)


def _check_channels(path: Path, channels: int) -> None:
    if channels not in (1, 2, 3, 4):
        raise DataError(f"image '{path}' has {channels} channels; save it as gray, RGB or RGBA")


class PairedFolder(Dataset):
    """Aligned (degraded, reference) image pairs from a benchmark folder.

    Args:
        root: data folder in one of the layouts of ``describe_layouts()``, or two folders
            ``[INPUT_DIR, TARGET_DIR]`` matched by name or number (``split`` is then ignored).
        split: ``"train"``, ``"val"``, ``"test"`` or a sub-folder name; see the module docstring.
        crop: random crop size (int or ``(h, w)``), the same window for input and target.
        flip: random horizontal and vertical flips, identical for input and target.
        pad_multiple: pad bottom/right (reflect) to a multiple of this (after cropping).
        seed: makes crops/flips depend only on (seed, epoch, index); ``None`` uses torch's global
            generator (seeded per worker by ``DataLoader``).

    Items: ``{"input": [3, H, W], "target": [3, H, W], "name": str, "size": LongTensor [2]}``;
    values in ``[0, 1]``; ``size`` is ``(H, W)`` before padding (for ``transforms.unpad``).
    """

    def __init__(
        self,
        root: PathLike | Sequence[PathLike],
        split: Optional[str] = None,
        crop: Optional[Size] = None,
        flip: bool = False,
        pad_multiple: int = 1,
        seed: Optional[int] = None,
    ) -> None:
        dirs = pair_dirs(root)
        if dirs is not None:
            self.root = dirs[0].parent
            self.input_dir, self.target_dir = dirs
            self.pairs = folder_pairs(*dirs)
        else:
            self.root = Path(root)  # type: ignore[arg-type]
            self.input_dir, self.target_dir = _resolve(self.root, split)
            self.pairs = find_pairs(self.input_dir, self.target_dir)
        self.crop = as_hw(crop) if crop is not None else None
        self.flip = flip
        self.pad_multiple = pad_multiple
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the random crops/flips of a seeded dataset for a new epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pairs)

    def verify(self, progress: bool = False) -> list[tuple[int, int]]:
        """Check every pair from the file headers before any training step: both files readable,
        equal sizes, a gray/RGB(A) layout. Returns each pair's ``(H, W)``; the first problem is a
        one-line ``DataError`` naming the file and the fix."""
        sizes = []
        for a_path, b_path in checking(self.pairs, f"checking {self.input_dir.parent}", progress):
            ha, wa, _, _ = probe_pair(a_path, b_path, _check_channels,
                                      "pairs must have equal sizes (crop or resize one, or remove the pair)")
            sizes.append((ha, wa))
        return sizes

    def __getitem__(self, index: int) -> dict:
        a_path, b_path = self.pairs[index]
        a, b = read_image(a_path), read_image(b_path)
        if a.shape != b.shape:
            raise DataError(
                f"'{a_path}' is {a.shape[1]}x{a.shape[2]} but '{b_path}' is {b.shape[1]}x{b.shape[2]};"
                " pairs must have equal sizes"
            )
        gen = _item_generator(self.seed, self.epoch, index)
        if self.crop is not None:
            if self.crop[0] > a.shape[1] or self.crop[1] > a.shape[2]:
                raise DataError(
                    f"'{a_path}' ({a.shape[1]}x{a.shape[2]}) is smaller than the crop "
                    f"{self.crop[0]}x{self.crop[1]}; use a smaller crop"
                )
            a, b = paired_random_crop(a, b, self.crop, gen)
        if self.flip:
            a, b = paired_random_flip(a, b, gen)
        size = torch.tensor(a.shape[-2:])
        if self.pad_multiple > 1:
            a, _ = pad_to_multiple(a, self.pad_multiple)
            b, _ = pad_to_multiple(b, self.pad_multiple)
        return {"input": a, "target": b, "name": a_path.name, "size": size}


class UnpairedFolder(Dataset):
    """Degraded images without references (e.g. for no-reference evaluation or unsupervised use).

    Args:
        root: ``ROOT/low``, ``ROOT/input`` or a flat folder of images (also under a split folder
            of ``SPLIT_DIRS`` when ``split`` is given).
        split: as for ``PairedFolder``.
        pad_multiple: pad bottom/right to a multiple of this.

    Items: ``{"input": [3, H, W], "name": str, "size": LongTensor [2]}`` in ``[0, 1]``.
    """

    def __init__(self, root: PathLike, split: Optional[str] = None, pad_multiple: int = 1) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise no_folder(self.root)
        base = self.root
        if split is not None:
            for name in dict.fromkeys(SPLIT_DIRS.get(split, ()) + (split,)):
                if (self.root / name).is_dir():
                    base = self.root / name
                    break
        sub = [base / d for d in UNPAIRED_DIRS if (base / d).is_dir()]
        self.folder = sub[0] if sub else base
        self.files: Sequence[Path] = list(_images(self.folder).values())
        if not self.files:
            raise DataError(f"no images in '{self.folder}'; expected {describe_layouts()}")
        self.pad_multiple = pad_multiple

    def __len__(self) -> int:
        return len(self.files)

    def verify(self, progress: bool = False) -> list[tuple[int, int]]:
        """Check every image from its header (readable, gray/RGB(A)); returns each ``(H, W)``."""
        sizes = []
        for path in checking(self.files, f"checking {self.folder}", progress):
            h, w, c = probe_image(path)
            _check_channels(path, c)
            sizes.append((h, w))
        return sizes

    def __getitem__(self, index: int) -> dict:
        path = self.files[index]
        x = read_image(path)
        size = torch.tensor(x.shape[-2:])
        if self.pad_multiple > 1:
            x, _ = pad_to_multiple(x, self.pad_multiple)
        return {"input": x, "name": path.name, "size": size}
