"""Registered infrared/visible image pairs read in place from the benchmark folder layouts.

Layouts (folder names compared without case, e.g. ``IR``/``VI``):

* ``ROOT/{ir,vi}`` (TarDAL, M3FD, MSRS, MMIF-CDDFuse's TNO/RoadScene), ``ROOT/{ir,vis}``,
  ``ROOT/{infrared,visible}``, ``ROOT/{Inf,Vis}``: files pair by stem (case and extension aside,
  ``a.png`` ~ ``A.bmp``), else by the number in the name (``IR3.png`` ~ ``VIS3.png``);
* DIDFuse: one folder of ``IR<n>.*`` and ``VIS<n>.*`` (``Test_data_TNO/IR1.bmp`` + ``VIS1.bmp``),
  paired by ``n``;
* the same under split sub-folders ``ROOT/{train,val,test}/...`` (``val`` also ``valid``,
  ``validation``), or splits inside the modality folders ``ROOT/{infrared,visible}/{train,test}``
  (LLVIP). With ``split`` given and its sub-folder present, that sub-folder is read, otherwise
  ``ROOT`` itself must hold a pair layout. A folder of several sets (``Datasets/Test_data_{TNO,FLIR}``)
  reads the only one and refuses several, naming them;
* any two folders ``[IR_DIR, VI_DIR]`` (``--pairs``), matched the same way (``datasets.pairs``).

Files: 8- or 16-bit PNG/JPEG/TIFF/BMP...; the infrared image is single channel (a file of three
equal channels is read as that channel; another colour file is turned to gray, ``0.299 R + 0.587 G
+ 0.114 B``); the visible image is RGB or gray. A folder whose visible files are all gray gives
1-channel visible images, otherwise 3 channels (gray files are repeated). Alpha channels (2- or
4-channel files) are rejected: save the image as RGB or gray.

``verify()`` checks every pair before training: both files decodable (headers), equal sizes,
supported channel counts; the first problem is a one-line ``DataError`` naming the file and the fix.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from datasets.errors import DataError, no_folder
from datasets.io import PathLike, checking, decode_image, probe_image, probe_pair, to_unit_range
from datasets.pairs import folder_pairs, image_files, match_pairs, pair_dirs

__all__ = ["FUSION_DIRS", "FUSION_SPLIT_DIRS", "FusionFolder", "describe_fusion_layouts", "find_fusion_pairs",
           "has_split_folder", "probe_image", "read_fusion_image"]

#: (infrared folder, visible folder) names, tried in order (compared without case).
FUSION_DIRS: tuple[tuple[str, str], ...] = (("ir", "vi"), ("ir", "vis"), ("infrared", "visible"), ("Inf", "Vis"))
#: split -> sub-folder names tried in order.
FUSION_SPLIT_DIRS: dict[str, tuple[str, ...]] = {
    "train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",),
}
_IR = re.compile(r"^ir\d+$", re.IGNORECASE)
_VIS = re.compile(r"^vis?\d+$", re.IGNORECASE)
Pairs = list[tuple[Path, Path]]


def describe_fusion_layouts() -> str:
    """One line listing the recognised layouts (for ``--help`` and errors)."""
    pairs = ", ".join(f"ROOT/{{{a},{b}}}" for a, b in FUSION_DIRS)
    return (f"{pairs} (any case; files paired by name or number); DIDFuse ROOT/IR<n>.* + ROOT/VIS<n>.*; "
            "optionally under ROOT/{train,val,test}/ or ROOT/{infrared,visible}/{train,test}; any two folders: "
            "--pairs IR_DIR VI_DIR")


def _child(folder: Path, name: str) -> Optional[Path]:
    """The sub-folder of ``folder`` called ``name`` whatever its case, ``None`` when there is none."""
    if (folder / name).is_dir():
        return folder / name
    if not folder.is_dir():
        return None
    return next((p for p in sorted(folder.iterdir()) if p.is_dir() and p.name.lower() == name.lower()), None)


def _pair_dirs(folder: Path) -> Optional[tuple[Path, Path]]:
    for a, b in FUSION_DIRS:
        ir, vi = _child(folder, a), _child(folder, b)
        if ir is not None and vi is not None:
            return ir, vi
    return None


def _didfuse(folder: Path) -> Optional[Pairs]:
    """DIDFuse's ``IR<n>`` / ``VIS<n>`` files of one folder, paired by number; ``None`` without them."""
    if not folder.is_dir():
        return None
    files = image_files(folder)
    ir = [f for f in files if _IR.match(f.stem)]
    vi = [f for f in files if _VIS.match(f.stem)]
    if not ir and not vi:
        return None
    return match_pairs(ir, vi, f"{folder}/IR*", f"{folder}/VIS*", ("infrared", "visible"))


def _layout(folder: Path, split: Optional[str]) -> Optional[Pairs]:
    """The pairs of ``folder`` itself (split inside the modality folders first), ``None`` without a layout."""
    dirs = _pair_dirs(folder)
    if dirs is not None:
        for name in FUSION_SPLIT_DIRS.get(split, (split,)) if split else ():
            ir, vi = _child(dirs[0], name), _child(dirs[1], name)
            if ir is not None and vi is not None:
                return folder_pairs(ir, vi, ("infrared", "visible"))
        return folder_pairs(*dirs, what=("infrared", "visible"))
    return _didfuse(folder)


def _split_dirs(root: Path, split: Optional[str]) -> list[Path]:
    return [d for name in FUSION_SPLIT_DIRS.get(split, (split,)) for d in [_child(root, name)] if d] if split else []


def find_fusion_pairs(root: Union[PathLike, Sequence[PathLike]], split: Optional[str] = None) -> Pairs:
    """``[(infrared, visible), ...]`` of ``root`` for ``split`` (see the module docstring)."""
    dirs = pair_dirs(root)
    if dirs is not None:
        return folder_pairs(*dirs, what=("infrared", "visible"))
    root = Path(root)  # type: ignore[arg-type]
    if not root.is_dir():
        raise no_folder(root)
    for d in _split_dirs(root, split):
        found = _layout(d, None)
        if found is not None:
            return found
    found = _layout(root, split)
    if found is not None:
        return found
    for a, b in FUSION_DIRS:
        have, miss = (a, b) if _child(root, a) else (b, a)
        if _child(root, have) is not None:
            raise DataError(f"'{_child(root, have)}' has no sibling folder '{miss}'; add '{root / miss}' "
                            f"(layouts: {describe_fusion_layouts()})")
    split_names = {n for names in FUSION_SPLIT_DIRS.values() for n in names}
    sets = [p for p in sorted(root.iterdir()) if p.is_dir() and p.name.lower() not in split_names
            and (_pair_dirs(p) or any(_IR.match(f.stem) for f in image_files(p)))]
    if len(sets) == 1:
        found = _layout(sets[0], None)
        if found is not None:
            return found
    if len(sets) > 1:
        raise DataError(f"'{root}' holds several infrared/visible sets ({', '.join(p.name for p in sets)}); pass one "
                        f"of them to --data, e.g. '{sets[0]}'")
    where = f" (split '{split}')" if split else ""
    raise DataError(f"no infrared/visible layout in '{root}'{where}; expected {describe_fusion_layouts()}")


def has_split_folder(root: PathLike, split: str) -> bool:
    """Whether ``root`` holds a pair layout for ``split`` in a sub-folder (``FUSION_SPLIT_DIRS``) or inside
    its modality folders."""
    if pair_dirs(root) is not None:
        return False
    root = Path(root)
    if any(_pair_dirs(d) or _didfuse(d) for d in _split_dirs(root, split)):
        return True
    dirs = _pair_dirs(root)
    names = FUSION_SPLIT_DIRS.get(split, (split,))
    return dirs is not None and any(_child(dirs[0], n) and _child(dirs[1], n) for n in names)


def _check_channels(path: Path, channels: int) -> None:
    if channels not in (1, 3):
        what = "an alpha channel" if channels in (2, 4) else f"{channels} channels"
        raise DataError(f"image '{path}' has {what}; save it as RGB or gray (without alpha)")


def read_fusion_image(path: PathLike, gray: bool) -> torch.Tensor:
    """Read a source image: ``[1, H, W]`` (gray file, or ``gray=True``) or ``[3, H, W]`` RGB, in ``[0, 1]``.

    8-bit files are divided by 255, 16-bit by 65535.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"image '{p}' does not exist; check the path")
    arr = decode_image(p)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    _check_channels(p, 1 if arr.ndim == 2 else arr.shape[2])
    if arr.dtype not in (np.uint8, np.uint16):  # to_unit_range would clip float files: refused here
        raise DataError(f"image '{p}' has sample type {arr.dtype}; convert it to 8- or 16-bit")
    x = to_unit_range(arr, p)
    if x.ndim == 2:
        return torch.from_numpy(x)[None]
    rgb = torch.from_numpy(np.ascontiguousarray(x[:, :, ::-1].transpose(2, 0, 1)))
    if gray:
        if np.array_equal(x[:, :, 0], x[:, :, 1]) and np.array_equal(x[:, :, 0], x[:, :, 2]):
            return rgb[:1].clone()  # a gray image stored as three equal channels: that channel, exactly
        w = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
        return (rgb * w).sum(0, keepdim=True)
    return rgb


class FusionFolder(Dataset):
    """Infrared/visible pairs of a benchmark folder.

    Args:
        root: data folder (``describe_fusion_layouts()``), or two folders ``[IR_DIR, VI_DIR]``
            matched by name or number (``split`` is then ignored).
        split: ``"train"``, ``"val"``, ``"test"`` or ``None`` (see the module docstring).
        visible_channels: 1 or 3 to force the visible layout; ``None`` decides from the files
            (3 if any visible file is colour), by reading headers on first use.

    Items: ``{"ir": [1, H, W], "vi": [C, H, W], "name": str, "size": LongTensor [2]}`` in ``[0, 1]``,
    ``C = self.visible_channels``.
    """

    def __init__(self, root: Union[PathLike, Sequence[PathLike]], split: Optional[str] = None,
                 visible_channels: Optional[int] = None) -> None:
        if visible_channels not in (None, 1, 3):
            raise ValueError(f"visible_channels must be None, 1 or 3, got {visible_channels}")
        dirs = pair_dirs(root)
        self.root = Path(root) if dirs is None else dirs[0].parent  # type: ignore[arg-type]
        self.pairs = find_fusion_pairs(root, split)
        self._visible_channels = visible_channels
        self._verified = False

    def __len__(self) -> int:
        return len(self.pairs)

    def verify(self, progress: bool = False) -> None:
        """Check every pair from the image headers; raise a one-line ``DataError`` on the first problem."""
        colour = False
        for ir_path, vi_path in checking(self.pairs, f"checking {self.root}", progress):
            *_, c2 = probe_pair(ir_path, vi_path, _check_channels,
                                "registered pairs must have equal sizes (crop or resize one)")
            colour = colour or c2 == 3
        if self._visible_channels is None:
            self._visible_channels = 3 if colour else 1
        self._verified = True

    @property
    def visible_channels(self) -> int:
        """1 or 3: the channel count of every visible item."""
        if self._visible_channels is None:
            self.verify()
        return self._visible_channels  # type: ignore[return-value]

    def __getitem__(self, index: int) -> dict:
        ir_path, vi_path = self.pairs[index]
        ir = read_fusion_image(ir_path, gray=True)
        vi = read_fusion_image(vi_path, gray=self.visible_channels == 1)
        if ir.shape[-2:] != vi.shape[-2:]:
            raise DataError(f"'{ir_path}' is {ir.shape[1]}x{ir.shape[2]} but '{vi_path}' is "
                            f"{vi.shape[1]}x{vi.shape[2]}; registered pairs must have equal sizes (crop or resize one)")
        if vi.shape[0] == 1 and self.visible_channels == 3:
            vi = vi.expand(3, -1, -1).contiguous()
        return {"ir": ir, "vi": vi, "name": ir_path.name, "size": torch.tensor(ir.shape[-2:])}
