"""Single-image deraining benchmark folders, read in place.

Layouts recognised in a folder ``D`` (``D`` is ``ROOT`` or, when ``split`` is given and such a
folder exists, ``ROOT/<split folder>`` from ``SPLIT_DIRS``, e.g. ``ROOT/train`` or
``ROOT/testing``), tried in this order:

* Rain1400 (DDN): ``D/rainy_image/<id>_<k>.jpg`` -> ``D/ground_truth/<id>.jpg`` (14 renderings
  ``k = 1..14`` per clean image; every rendering is one item).
* ``D/input`` + ``D/target`` (Rain13K, Test100, Test1200, Test2800 of recent repositories).
* ``D/rainy`` + ``D/norain`` (also ``D/rain`` + ``D/norain``).
* Rain100L / Rain100H as distributed: ``rain-XXX.png`` next to ``norain-XXX.png`` in ``D``.

Except for Rain1400, files pair by KEY: the file stem without a leading ``rain-`` / ``norain-``
(or ``_``) prefix, and a number when the rest is digits (``rain-1.png`` pairs ``norain-001.png``;
``input/7.png`` pairs ``target/7.jpg``). Every rainy file needs its clean partner and vice
versa. Items: ``{"input": [3, H, W] rainy, "target": [3, H, W] clean, "name": str (rainy file
name, with ``<id>_<k>`` for Rain1400), "size": LongTensor [2]}`` in ``[0, 1]``.

``verify()`` checks every file before training: readable headers, equal sizes within a pair.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Union

import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from datasets.errors import DataError
from datasets.io import PathLike, is_image_file, read_image
from datasets.transforms import pad_to_multiple

__all__ = ["DerainPairs", "SPLIT_DIRS", "describe_derain_layouts", "find_derain_pairs",
           "image_size", "pair_key", "split_folder"]

#: split -> sub-folder names tried in order; none found: the root itself holds the split.
SPLIT_DIRS: dict[str, tuple[str, ...]] = {
    "train": ("train", "training", "Rain13K"),
    "val": ("val", "valid", "validation"),
    "test": ("test", "testing"),
}
#: (rainy folder, clean folder) pairs tried after Rain1400.
FOLDER_PAIRS: tuple[tuple[str, str], ...] = (("input", "target"), ("rainy", "norain"), ("rain", "norain"))
_PREFIX = re.compile(r"^(no)?rain[-_]", re.IGNORECASE)
_RAIN1400 = re.compile(r"^(?P<id>.+)_(?P<k>\d+)$")


def describe_derain_layouts() -> str:
    """One line listing the layouts (for ``--help`` and errors)."""
    return ("Rain1400 DIR/rainy_image/<id>_<k>.jpg + DIR/ground_truth/<id>.jpg; DIR/{input,target}; "
            "DIR/{rainy,norain}; Rain100L/H DIR/rain-XXX.png + DIR/norain-XXX.png; each optionally "
            "under DIR/{train,training,test,testing,val}")


def pair_key(path: Path) -> Union[int, str]:
    """The pairing key of a file: its stem without a ``rain-``/``norain-`` prefix, as a number
    when it is all digits. ``rain-001.png`` -> 1, ``norain-1.png`` -> 1, ``x7.png`` -> ``"x7"``."""
    stem = _PREFIX.sub("", path.stem)
    return int(stem) if stem.isdigit() else stem


def _images(folder: Path, prefix: Optional[str] = None) -> list[Path]:
    files = [f for f in sorted(folder.iterdir())
             if f.is_file() and not f.name.startswith(".") and is_image_file(f)]
    if prefix is not None:
        files = [f for f in files if f.name.lower().startswith(prefix)]
    return files


def _keyed(files: list[Path], folder: Path) -> dict[Union[int, str], Path]:
    out: dict[Union[int, str], Path] = {}
    for f in files:
        k = pair_key(f)
        if k in out:
            raise DataError(f"'{out[k]}' and '{f}' in '{folder}' have the same pairing key {k!r}; "
                            "remove one of them")
        out[k] = f
    return out


def _pair_by_key(rainy: list[Path], clean: list[Path], rainy_dir: Path, clean_dir: Path,
                 clean_prefix: str = "") -> list[tuple[Path, Path]]:
    if not rainy:
        raise DataError(f"no rainy images in '{rainy_dir}'; add image files or fix the path")
    a, b = _keyed(rainy, rainy_dir), _keyed(clean, clean_dir)
    missing = sorted(set(a) - set(b), key=str)
    if missing:
        f = a[missing[0]]
        prefix = clean_prefix or ("norain-" if _PREFIX.match(f.name) else "")
        expected = clean_dir / f"{prefix}{_PREFIX.sub('', f.stem)}{f.suffix}"
        extra = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DataError(f"rainy image '{f}' has no clean partner '{expected}'{extra}; "
                        "add it or remove the rainy image")
    for k in sorted(set(b) - set(a), key=str):
        raise DataError(f"clean image '{b[k]}' has no rainy partner in '{rainy_dir}'; add it or remove the file")
    return [(a[k], b[k]) for k in sorted(a, key=lambda k: (isinstance(k, str), k))]


def _rain1400(rainy_dir: Path, clean_dir: Path) -> list[tuple[Path, Path]]:
    clean = {f.stem: f for f in _images(clean_dir)}
    pairs = []
    rainy = _images(rainy_dir)
    if not rainy:
        raise DataError(f"no rainy images in '{rainy_dir}'; add image files or fix the path")
    for f in rainy:
        m = _RAIN1400.match(f.stem)
        if m is None:
            raise DataError(f"Rain1400 rainy image '{f}' is not named <id>_<k>{f.suffix}; rename it")
        gt = clean.get(m.group("id"))
        if gt is None:
            raise DataError(f"Rain1400 id '{m.group('id')}' of '{f}' has no ground truth "
                            f"'{clean_dir / (m.group('id') + f.suffix)}'; add it or remove the rainy images")
        pairs.append((f, gt))
    return sorted(pairs, key=lambda p: (p[1].stem, int(_RAIN1400.match(p[0].stem).group("k"))))  # type: ignore[union-attr]


def split_folder(root: Path, split: Optional[str]) -> Optional[Path]:
    """``root/<name>`` for the first existing name of ``SPLIT_DIRS[split]``, else ``None``."""
    if split is None:
        return None
    for name in SPLIT_DIRS.get(split, ()) + (split,):
        if (root / name).is_dir():
            return root / name
    return None


def find_derain_pairs(root: PathLike, split: Optional[str] = None) -> tuple[str, list[tuple[Path, Path]]]:
    """``(layout name, [(rainy, clean), ...])`` for ``root`` and ``split`` (module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder '{root}' does not exist; pass an existing folder to --data")
    d = split_folder(root, split) or root
    if (d / "rainy_image").is_dir() and (d / "ground_truth").is_dir():
        return "rain1400", _rain1400(d / "rainy_image", d / "ground_truth")
    for a, b in FOLDER_PAIRS:
        if (d / a).is_dir() and (d / b).is_dir():
            return f"{a}/{b}", _pair_by_key(_images(d / a), _images(d / b), d / a, d / b)
    if (d / "rainy_image").is_dir():
        raise DataError(f"'{d / 'rainy_image'}' has no sibling 'ground_truth'; add the clean images there")
    for a, b in FOLDER_PAIRS:
        if (d / a).is_dir():
            raise DataError(f"'{d / a}' has no sibling folder '{b}'; add the clean images as '{d / b}'")
    if d.is_dir():
        rainy, clean = _images(d, "rain"), _images(d, "norain")
        if rainy or clean:
            return "rain100", _pair_by_key(rainy, clean, d, d, "norain-")
    where = f" (split '{split}')" if split else ""
    raise DataError(f"no deraining layout in '{d}'{where}; expected {describe_derain_layouts()}")


def image_size(path: Path) -> tuple[int, int, str]:
    """``(H, W, mode)`` from the file header (Pillow, no decoding); ``DataError`` if unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
            mode = im.mode
            im.verify()
    except (OSError, UnidentifiedImageError, SyntaxError) as exc:
        raise DataError(f"cannot read image '{path}' ({exc.__class__.__name__}); replace or remove it") from None
    return h, w, mode


def check_pair_sizes(a: Path, b: Path) -> tuple[int, int]:
    """Header sizes of a (rainy, clean) pair; ``DataError`` naming both files when they differ."""
    ha, wa, _ = image_size(a)
    hb, wb, _ = image_size(b)
    if (ha, wa) != (hb, wb):
        raise DataError(f"'{a}' is {ha}x{wa} but its partner '{b}' is {hb}x{wb}; pairs must have equal sizes")
    return ha, wa


class DerainPairs(Dataset):
    """Rainy/clean image pairs of a deraining benchmark folder.

    Args:
        root: the benchmark folder (see the module docstring for the layouts).
        split: ``"train"``, ``"val"``, ``"test"`` or ``None``: use ``root/<split folder>`` when
            one exists (``SPLIT_DIRS``), else ``root`` itself.
        pad_multiple: pad the bottom/right of both images to a multiple of this (``size``
            keeps the original size).
    """

    def __init__(self, root: PathLike, split: Optional[str] = None, pad_multiple: int = 1) -> None:
        self.root = Path(root)
        self.layout, self.pairs = find_derain_pairs(self.root, split)
        self.pad_multiple = pad_multiple

    def __len__(self) -> int:
        return len(self.pairs)

    def verify(self, progress: bool = False) -> None:
        """Read every header; ``DataError`` for an unreadable file or a pair of different sizes."""
        for a, b in tqdm(self.pairs, desc="checking pairs", disable=not progress, leave=False):
            check_pair_sizes(a, b)

    def name(self, index: int) -> str:
        a, _ = self.pairs[index]
        return a.name

    def __getitem__(self, index: int) -> dict:
        a_path, b_path = self.pairs[index]
        a, b = read_image(a_path), read_image(b_path)
        if a.shape != b.shape:
            raise DataError(f"'{a_path}' is {a.shape[1]}x{a.shape[2]} but its partner '{b_path}' is "
                            f"{b.shape[1]}x{b.shape[2]}; pairs must have equal sizes")
        size = torch.tensor(a.shape[-2:])
        if self.pad_multiple > 1:
            a, _ = pad_to_multiple(a, self.pad_multiple)
            b, _ = pad_to_multiple(b, self.pad_multiple)
        return {"input": a, "target": b, "name": a_path.name, "size": size}
