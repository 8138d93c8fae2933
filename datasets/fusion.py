"""Registered infrared/visible image pairs read in place from the benchmark folder layouts.

Layouts (files paired by IDENTICAL file name in the two folders):

* ``ROOT/{ir,vi}`` (TarDAL, M3FD, MSRS), ``ROOT/{infrared,visible}``, ``ROOT/{Inf,Vis}``;
* the same under split sub-folders ``ROOT/{train,val,test}/...`` (``val`` also ``valid``,
  ``validation``). With ``split`` given and its sub-folder present, that sub-folder is read,
  otherwise ``ROOT`` itself must hold a pair layout.

Files: 8- or 16-bit PNG/JPEG/TIFF/BMP...; the infrared image is single channel (a colour file is
turned to gray, ``0.299 R + 0.587 G + 0.114 B``); the visible image is RGB or gray. A folder whose
visible files are all gray gives 1-channel visible images, otherwise 3 channels (gray files are
repeated). Alpha channels (2- or 4-channel files) are rejected: save the image as RGB or gray.

``verify()`` checks every pair before training: both files decodable (headers), equal sizes,
supported channel counts; the first problem is a one-line ``DataError`` naming the file and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from datasets.errors import DataError
from datasets.io import PathLike, checking, decode_image, probe_image
from datasets.paired import find_pairs

__all__ = ["FUSION_DIRS", "FUSION_SPLIT_DIRS", "FusionFolder", "describe_fusion_layouts", "has_split_folder", "probe_image",
           "read_fusion_image", "resolve_fusion_dirs"]

#: (infrared folder, visible folder) names, tried in order.
FUSION_DIRS: tuple[tuple[str, str], ...] = (("ir", "vi"), ("infrared", "visible"), ("Inf", "Vis"))
#: split -> sub-folder names tried in order.
FUSION_SPLIT_DIRS: dict[str, tuple[str, ...]] = {
    "train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",),
}


def describe_fusion_layouts() -> str:
    """One line listing the recognised layouts (for ``--help`` and errors)."""
    pairs = ", ".join(f"ROOT/{{{a},{b}}}" for a, b in FUSION_DIRS)
    return f"{pairs} with identical file names, optionally under ROOT/{{train,val,test}}/"


def _pair_dirs(folder: Path) -> Optional[tuple[Path, Path]]:
    for a, b in FUSION_DIRS:
        if (folder / a).is_dir() and (folder / b).is_dir():
            return folder / a, folder / b
    return None


def resolve_fusion_dirs(root: PathLike, split: Optional[str] = None) -> tuple[Path, Path]:
    """The (infrared, visible) folders of ``root`` for ``split`` (see the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder '{root}' does not exist; pass an existing folder")
    if split is not None:
        for name in FUSION_SPLIT_DIRS.get(split, (split,)):
            found = _pair_dirs(root / name)
            if found:
                return found
    found = _pair_dirs(root)
    if found:
        return found
    for a, b in FUSION_DIRS:
        if (root / a).is_dir() or (root / b).is_dir():
            have, miss = (a, b) if (root / a).is_dir() else (b, a)
            raise DataError(f"'{root / have}' has no sibling folder '{miss}'; add '{root / miss}'")
    where = f" (split '{split}')" if split else ""
    raise DataError(f"no infrared/visible layout in '{root}'{where}; expected {describe_fusion_layouts()}")


def has_split_folder(root: PathLike, split: str) -> bool:
    """Whether ``root`` holds a pair layout in a sub-folder for ``split`` (``FUSION_SPLIT_DIRS``)."""
    return any(_pair_dirs(Path(root) / name) for name in FUSION_SPLIT_DIRS.get(split, (split,)))


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
    if arr.dtype == np.uint8:
        x = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        x = arr.astype(np.float32) / 65535.0
    else:
        raise DataError(f"image '{p}' has sample type {arr.dtype}; convert it to 8- or 16-bit")
    if x.ndim == 2:
        return torch.from_numpy(x)[None]
    rgb = torch.from_numpy(np.ascontiguousarray(x[:, :, ::-1].transpose(2, 0, 1)))
    if gray:
        w = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
        return (rgb * w).sum(0, keepdim=True)
    return rgb


class FusionFolder(Dataset):
    """Infrared/visible pairs of a benchmark folder.

    Args:
        root: data folder (``describe_fusion_layouts()``).
        split: ``"train"``, ``"val"``, ``"test"`` or ``None`` (see the module docstring).
        visible_channels: 1 or 3 to force the visible layout; ``None`` decides from the files
            (3 if any visible file is colour), by reading headers on first use.

    Items: ``{"ir": [1, H, W], "vi": [C, H, W], "name": str, "size": LongTensor [2]}`` in ``[0, 1]``,
    ``C = self.visible_channels``.
    """

    def __init__(self, root: PathLike, split: Optional[str] = None, visible_channels: Optional[int] = None) -> None:
        if visible_channels not in (None, 1, 3):
            raise ValueError(f"visible_channels must be None, 1 or 3, got {visible_channels}")
        self.root = Path(root)
        self.ir_dir, self.vi_dir = resolve_fusion_dirs(self.root, split)
        self.pairs = find_pairs(self.ir_dir, self.vi_dir)
        self._visible_channels = visible_channels
        self._verified = False

    def __len__(self) -> int:
        return len(self.pairs)

    def verify(self, progress: bool = False) -> None:
        """Check every pair from the image headers; raise a one-line ``DataError`` on the first problem."""
        colour = False
        for ir_path, vi_path in checking(self.pairs, f"checking {self.ir_dir.parent}", progress):
            h1, w1, c1 = probe_image(ir_path)
            h2, w2, c2 = probe_image(vi_path)
            _check_channels(ir_path, c1)
            _check_channels(vi_path, c2)
            if (h1, w1) != (h2, w2):
                raise DataError(f"'{ir_path}' is {h1}x{w1} but '{vi_path}' is {h2}x{w2}; "
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
