"""Single-image deraining benchmark folders, read in place.

Layouts recognised in a folder ``D`` (``D`` is ``ROOT`` or, when ``split`` is given and such a
folder exists, ``ROOT/<split folder>`` from ``SPLIT_DIRS``, e.g. ``ROOT/train`` or
``ROOT/testing``), tried in this order:

* Rain1400 (DDN): ``D/rainy_image/<id>_<k>.jpg`` -> ``D/ground_truth/<id>.jpg`` (14 renderings
  ``k = 1..14`` per clean image; every rendering is one item).
* ``D/input`` + ``D/target`` (Rain13K, Test100, Test1200, Test2800 of recent repositories).
* ``D/inputcrop`` + ``D/cleancrop`` (MSPFN's test sets).
* ``D/rainy`` + ``D/norain`` (also ``D/rain`` + ``D/norain``; JORDER's ``D/rain/X2/norain-XXXx2.png``
  + ``D/norain/norain-XXX.png``).
* Rain100L / Rain100H as commonly distributed: ``D/rainy/rain-XXX.png`` with ``D/norain-XXX.png``
  at the root of ``D``.
* RainTrainL/H: ``rain-XXX.png`` next to ``norain-XXX.png`` in ``D``.
* A folder of several sets (``test/{Rain100H,Rain100L}/...``): the only one is read; several are
  refused with their names (pass one).

Except for Rain1400, files pair by KEY: the file stem without a leading ``rain-`` / ``norain-``
(or ``_``) prefix (and JORDER's ``x2`` suffix), and a number when the rest is digits
(``rain-1.png`` pairs ``norain-001.png``; ``input/7.png`` pairs ``target/7.jpg``). Every rainy file
needs its clean partner and vice versa. ``root`` may also be two folders ``[RAINY_DIR, CLEAN_DIR]``
(``--pairs``), matched by name or number (``datasets.pairs``).

Items: ``{"input": [3, H, W] rainy, "target": [3, H, W] clean, "name": str (rainy file name, with
``<id>_<k>`` for Rain1400), "size": LongTensor [2]}`` in ``[0, 1]``.

``verify()`` checks every file before training: readable headers, equal sizes within a pair.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Union

import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from datasets.errors import DataError, no_folder
from datasets.io import PathLike, is_image_file, read_image
from datasets.pairs import folder_pairs, pair_dirs
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
FOLDER_PAIRS: tuple[tuple[str, str], ...] = (("input", "target"), ("inputcrop", "cleancrop"), ("rainy", "norain"),
                                              ("rain", "norain"))
#: JORDER's sub-folder of the rainy images (``rain/X2``).
JORDER_SUB = "X2"
_PREFIX = re.compile(r"^(no)?rain[-_]", re.IGNORECASE)
_JORDER = re.compile(r"^(\d+)x2$", re.IGNORECASE)
_RAIN1400 = re.compile(r"^(?P<id>.+)_(?P<k>\d+)$")


def describe_derain_layouts() -> str:
    """One line listing the layouts (for ``--help`` and errors)."""
    return ("Rain1400 DIR/rainy_image/<id>_<k>.jpg + DIR/ground_truth/<id>.jpg; DIR/{input,target} (Rain13K); "
            "DIR/{inputcrop,cleancrop} (MSPFN); DIR/{rainy,norain}; Rain100L/H DIR/rainy/rain-XXX.png + "
            "DIR/norain-XXX.png; DIR/rain-XXX.png + DIR/norain-XXX.png; JORDER DIR/rain/X2 + DIR/norain; videos "
            "DIR/<video>/rfc-<k>.jpg + gtc-<k>.jpg; each optionally under DIR/{train,training,test,testing,val}; "
            "any two folders: --pairs RAINY_DIR CLEAN_DIR")


def pair_key(path: Path) -> Union[int, str]:
    """The pairing key of a file: its stem without a ``rain-``/``norain-`` prefix, as a number
    when it is all digits. ``rain-001.png`` -> 1, ``norain-1.png`` -> 1, ``x7.png`` -> ``"x7"``."""
    stem = _PREFIX.sub("", path.stem)
    jorder = _JORDER.match(stem)
    if jorder:
        return int(jorder.group(1))
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


def _has_layout(d: Path) -> bool:
    """Whether ``d`` itself holds one of the single-image layouts (a cheap look at names only)."""
    if (d / "rainy_image").is_dir() or any((d / a).is_dir() for a, _ in FOLDER_PAIRS):
        return True
    return bool(_images(d, "rain") or _images(d, "norain"))


def _layout(d: Path) -> Optional[tuple[str, list[tuple[Path, Path]]]]:
    """``(layout name, pairs)`` of the layout ``d`` holds itself, ``None`` when it holds none."""
    if (d / "rainy_image").is_dir() and (d / "ground_truth").is_dir():
        return "rain1400", _rain1400(d / "rainy_image", d / "ground_truth")
    for a, b in FOLDER_PAIRS:
        if (d / a).is_dir() and (d / b).is_dir():
            rainy_dir, name = d / a, f"{a}/{b}"
            if a == "rain" and not _images(rainy_dir) and (rainy_dir / JORDER_SUB).is_dir():
                rainy_dir, name = rainy_dir / JORDER_SUB, "jorder"
            return name, _pair_by_key(_images(rainy_dir), _images(d / b), rainy_dir, d / b)
    clean_here = _images(d, "norain")
    for a in ("rainy", "rain"):
        if (d / a).is_dir() and clean_here:
            return f"{a}/+norain", _pair_by_key(_images(d / a), clean_here, d / a, d, "norain-")
    if (d / "rainy_image").is_dir():
        raise DataError(f"'{d / 'rainy_image'}' has no sibling 'ground_truth'; add the clean images there "
                        f"(layouts: {describe_derain_layouts()})")
    for a, b in FOLDER_PAIRS:
        if (d / a).is_dir():
            raise DataError(f"'{d / a}' has no sibling folder '{b}' nor clean images norain-XXX.png beside it; add "
                            f"the clean images as '{d / b}' (layouts: {describe_derain_layouts()})")
    rainy = _images(d, "rain")
    if rainy or clean_here:
        return "rain100", _pair_by_key(rainy, clean_here, d, d, "norain-")
    return None


def find_derain_pairs(root: Union[PathLike, list], split: Optional[str] = None) -> tuple[str, list[tuple[Path, Path]]]:
    """``(layout name, [(rainy, clean), ...])`` for ``root`` and ``split`` (module docstring)."""
    dirs = pair_dirs(root)
    if dirs is not None:
        return "pairs", folder_pairs(*dirs, what=("rainy", "clean"))
    root = Path(root)  # type: ignore[arg-type]
    if not root.is_dir():
        raise no_folder(root)
    d = split_folder(root, split) or root
    found = _layout(d)
    if found is not None:
        return found
    split_names = {n.lower() for names in SPLIT_DIRS.values() for n in names}
    sets = [p for p in sorted(d.iterdir()) if p.is_dir() and p.name.lower() not in split_names and _has_layout(p)]
    if len(sets) == 1:
        found = _layout(sets[0])
        if found is not None:
            return found
    if len(sets) > 1:
        names = ", ".join(p.name for p in sets)
        raise DataError(f"'{d}' holds several deraining sets ({names}); pass one of them to --data, e.g. "
                        f"'{sets[0]}'")
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
        root: the benchmark folder (see the module docstring for the layouts), or two folders
            ``[RAINY_DIR, CLEAN_DIR]`` (``split`` is then ignored).
        split: ``"train"``, ``"val"``, ``"test"`` or ``None``: use ``root/<split folder>`` when
            one exists (``SPLIT_DIRS``), else ``root`` itself.
        pad_multiple: pad the bottom/right of both images to a multiple of this (``size``
            keeps the original size).
    """

    def __init__(self, root: Union[PathLike, list], split: Optional[str] = None, pad_multiple: int = 1) -> None:
        dirs = pair_dirs(root)
        self.root = Path(root) if dirs is None else dirs[0].parent  # type: ignore[arg-type]
        self.layout, self.pairs = find_derain_pairs(root, split)
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
