"""Registration data read in place: neurite-OASIS folders (NIfTI through nibabel) and npz files.

Layouts (a folder ``root``; see ``LAYOUTS``):

* neurite-OASIS 2D: ``root/OASIS_OAS1_xxxx_MR1/slice_norm.nii.gz`` + ``slice_seg24.nii.gz``
  (stored ``[160, 192, 1]``; trailing singleton axes are dropped);
* neurite-OASIS 3D: ``root/OASIS_OAS1_xxxx_MR1/aligned_norm.nii.gz`` + ``aligned_seg35.nii.gz``
  (``[160, 192, 224]``);
* npz: ``root/*.npz``, each with an image ``vol`` and a label map ``seg`` of equal shape, or
  voxelmorph's older pairs ``NAME_vol.npz`` + ``NAME_seg.npz`` with ``vol_data`` in each
  (``datasets.registration_npz``).

Any sub-folder holding the image file of the layout counts as a subject. NIfTI needs the optional
extra: ``pip install -e .[registration]`` (nibabel, imported only when a NIfTI file is read).
Images become float32 ``[1, *S]`` (divided by their maximum when it exceeds 1, so values lie in
``[0, 1]``); label maps int64 ``[1, *S]`` (0 = background).

``VolumeFolder`` lists the volumes; ``RegistrationPairs`` makes (moving, fixed) items, scan-to-atlas
or scan-to-scan. Items: ``{"moving", "fixed": [1, *S] float32, "moving_seg", "fixed_seg": [1, *S]
int64, "name": "MOVING_to_FIXED", "size": LongTensor [dims]}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from datasets.errors import DataError, no_folder
from datasets.registration_npz import NPZ_LAYOUTS, find_npz, npz_shapes, npz_volume, read_npz
from datasets.transforms import item_seed

__all__ = ["LAYOUTS", "NIBABEL_HINT", "RegistrationPairs", "Volume", "VolumeFolder", "check_volumes",
           "fixed_pairs", "find_volumes", "load_atlas", "read_volume", "split_subjects", "volume_shapes"]

#: dims -> (image file, label file) inside a neurite-OASIS subject folder.
LAYOUTS: dict[int, tuple[str, str]] = {2: ("slice_norm.nii.gz", "slice_seg24.nii.gz"),
                                       3: ("aligned_norm.nii.gz", "aligned_seg35.nii.gz")}
NIBABEL_HINT = "pip install -e .[registration]"


@dataclass(frozen=True)
class Volume:
    """One image with its label map: two NIfTI files, one npz (``image == seg``) or two npz files."""

    name: str
    image: Path
    seg: Path


def _nibabel():
    try:
        import nibabel
    except ImportError:
        raise DataError(f"reading NIfTI files needs nibabel, which is not installed; run: {NIBABEL_HINT}") from None
    return nibabel


def _squeeze(shape: Sequence[int], dims: int) -> tuple[int, ...]:
    """Drop every trailing singleton axis (a ``[H, W, 1]`` slice is 2D whatever ``dims`` is)."""
    shape = tuple(int(s) for s in shape)
    while len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def volume_shapes(vol: Volume) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Raw (image, label) shapes from the file headers. ``DataError`` if unreadable."""
    try:
        if vol.image.suffix == ".npz":
            return npz_shapes(vol.image, vol.seg)
        nib = _nibabel()
        return tuple(nib.load(str(vol.image)).shape), tuple(nib.load(str(vol.seg)).shape)
    except DataError:
        raise
    except Exception as e:  # unreadable header: name the file
        raise DataError(f"cannot read '{vol.image}' ({type(e).__name__}: {' '.join(str(e).split())[:120]}); "
                        "replace or remove the file") from None


def read_volume(vol: Volume, dims: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(image [1, *S] float32 in [0, 1], seg [1, *S] int64)``."""
    if vol.image.suffix == ".npz":
        image, seg = read_npz(vol.image, vol.seg)
    else:
        nib = _nibabel()
        image = np.asarray(nib.load(str(vol.image)).dataobj)
        seg = np.asarray(nib.load(str(vol.seg)).dataobj)
    image = image.reshape(_squeeze(image.shape, dims)).astype(np.float32)
    seg = seg.reshape(_squeeze(seg.shape, dims))
    if image.ndim != dims or seg.shape != image.shape:
        raise DataError(f"'{vol.image}' holds shape {image.shape} / labels {seg.shape}; expected equal {dims}D shapes")
    peak = float(image.max()) if image.size else 0.0
    if peak > 1.0:
        image = image / peak
    return torch.from_numpy(image)[None], torch.from_numpy(np.rint(seg).astype(np.int64))[None]


def find_volumes(root: Path, dims: int) -> list[Volume]:
    """Subjects (sub-folders with the layout's image file) and ``*.npz`` files of ``root``, sorted."""
    if dims not in LAYOUTS:
        raise DataError(f"--dims must be 2 or 3, got {dims}")
    root = Path(root)
    if not root.is_dir():
        raise no_folder(root)
    image_name, seg_name = LAYOUTS[dims]
    other_image = LAYOUTS[5 - dims][0]
    vols: list[Volume] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        if (sub / image_name).is_file():
            if not (sub / seg_name).is_file():
                raise DataError(f"'{sub / image_name}' has no label map '{seg_name}' beside it; add it or remove the subject")
            vols.append(Volume(sub.name, sub / image_name, sub / seg_name))
        elif (sub / other_image).is_file():
            hint = "use --dims 2 (or add the aligned_norm/aligned_seg35 volumes)" if dims == 3 else "use --dims 3"
            raise DataError(f"'{sub}' holds only {5 - dims}D files ({other_image}), not {image_name}; {hint}")
    vols += [Volume(*v) for v in find_npz(root)]
    if not vols:
        raise DataError(f"no volumes in '{root}': expected sub-folders with {image_name} + {seg_name} "
                        f"(neurite-OASIS {dims}D), or npz files: {NPZ_LAYOUTS}")
    return vols


class VolumeFolder(Dataset):
    """Volumes of ``root`` (see the module docstring). Item ``i``: ``{"image", "seg", "name"}``."""

    def __init__(self, root: str | Path, dims: int) -> None:
        self.root, self.dims = Path(root), dims
        self.volumes = find_volumes(self.root, dims)

    def __len__(self) -> int:
        return len(self.volumes)

    def __getitem__(self, index: int) -> dict:
        image, seg = read_volume(self.volumes[index], self.dims)
        return {"image": image, "seg": seg, "name": self.volumes[index].name}

    def verify(self, progress: bool = False) -> tuple[int, ...]:
        """``check_volumes`` of this folder's volumes: their one shape."""
        return check_volumes(self.volumes, self.dims, progress)


def check_volumes(volumes: Sequence[Volume], dims: int, progress: bool = False) -> tuple[int, ...]:
    """Check every volume's headers: readable, ``dims`` axes, label map of the same shape, all
    volumes of one shape. Returns that shape; ``DataError`` naming the file otherwise."""
    from tqdm import tqdm

    first: Optional[tuple[int, ...]] = None
    for vol in tqdm(volumes, desc="verify", disable=not progress):
        raw_img, raw_seg = volume_shapes(vol)
        img, seg = _squeeze(raw_img, dims), _squeeze(raw_seg, dims)
        if len(img) != dims:
            what = "a 2D slice" if len(img) == 2 else f"{len(img)}D"
            raise DataError(f"'{vol.image}' is {what} (shape {list(raw_img)}) but --dims is {dims}; "
                            f"use --dims {len(img)} or {dims}D files")
        if seg != img:
            raise DataError(f"'{vol.seg}' label map has shape {list(raw_seg)}, its image '{vol.image}' "
                            f"{list(raw_img)}; they must be equal")
        if first is None:
            first = img
        elif img != first:
            raise DataError(f"'{vol.image}' has shape {list(img)}, other volumes {list(first)}; "
                            "all volumes of a set must share one shape (resample or crop them)")
    assert first is not None
    return first


def load_atlas(path: str | Path, dims: int) -> dict:
    """An atlas: an npz (``vol`` + ``seg``), a subject folder, or a layout image file whose label
    map sits beside it. Returns ``{"image", "seg", "name"}``; ``DataError`` otherwise."""
    p = Path(path)
    image_name, seg_name = LAYOUTS[dims]
    if p.is_dir():
        vol = Volume(p.name, p / image_name, p / seg_name)
    elif p.suffix == ".npz" and p.is_file():
        vol = Volume(*npz_volume(p))
    elif p.name == image_name:
        vol = Volume(p.parent.name, p, p.parent / seg_name)
    else:
        raise DataError(f"atlas '{p}' must be an npz ({NPZ_LAYOUTS}), a subject folder or a {image_name} file")
    for f in (vol.image, vol.seg):
        if not f.is_file():
            raise DataError(f"atlas file '{f}' does not exist; pass --atlas an existing npz or subject folder")
    check_volumes([vol], dims)
    image, seg = read_volume(vol, dims)
    return {"image": image, "seg": seg, "name": "atlas"}


def split_subjects(n: int, val_fraction: float, test_fraction: float, seed: int = 0) -> tuple[list[int], list[int], list[int]]:
    """Deterministic seeded split of ``n`` subjects into (train, val, test) index lists: one
    permutation from ``numpy.random.default_rng(seed)``; test takes ``round(n * test_fraction)``
    (at least 1 when the fraction is > 0), val the next ``round(n * val_fraction)`` (idem), train the
    rest (at least 1). Each list sorted."""
    perm = np.random.default_rng(seed).permutation(n).tolist()
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
    n_val = max(1, round(n * val_fraction)) if val_fraction > 0 else 0
    if n - n_test - n_val < 1:
        raise DataError(f"{n} volume(s) cannot be split into train/val/test ({val_fraction=}, {test_fraction=}): "
                        f"{n_test + n_val + 1} are needed; add volumes")
    test, val, train = perm[:n_test], perm[n_test:n_test + n_val], perm[n_test + n_val:]
    return sorted(train), sorted(val), sorted(test)


def fixed_pairs(indices: Sequence[int], count: int, seed: int) -> list[tuple[int, int]]:
    """``count`` seeded (moving, fixed) pairs of distinct indices, the same for every call."""
    idx = list(indices)
    if len(idx) < 2:
        raise DataError(f"scan-to-scan pairs need at least 2 volumes in the split, found {len(idx)}; add volumes or pass --atlas")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        a, b = rng.choice(len(idx), size=2, replace=False)
        out.append((idx[int(a)], idx[int(b)]))
    return out


class RegistrationPairs(Dataset):
    """(moving, fixed) items from ``folder``.

    * ``atlas`` given: item ``k`` registers volume ``indices[k]`` (moving) to the atlas (fixed);
    * ``pairs`` given (scan-to-scan, fixed pairs for validation/test): item ``k`` is ``pairs[k]``;
    * otherwise (scan-to-scan training): item ``k`` moves ``indices[k]`` to another volume of
      ``indices`` drawn from ``(seed, epoch, k)``; ``set_epoch`` draws new partners.
    """

    def __init__(self, folder: Dataset, indices: Sequence[int], atlas: Optional[dict] = None,
                 pairs: Optional[Sequence[tuple[int, int]]] = None, seed: int = 0) -> None:
        self.folder, self.indices, self.atlas = folder, list(indices), atlas
        self.pairs = None if pairs is None else [tuple(p) for p in pairs]
        self.seed, self.epoch = seed, 0
        if atlas is None and self.pairs is None and len(self.indices) < 2:
            raise DataError(f"scan-to-scan training needs at least 2 volumes, found {len(self.indices)}; add volumes or pass --atlas")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pairs) if self.pairs is not None else len(self.indices)

    def _partner(self, k: int) -> int:
        others = [i for i in self.indices if i != self.indices[k]]
        return others[int(np.random.default_rng(item_seed(self.seed, self.epoch, k)).integers(len(others)))]

    def __getitem__(self, k: int) -> dict:
        if self.pairs is not None:
            mi, fi = self.pairs[k]
            moving, fixed = self.folder[mi], self.folder[fi]
        else:
            moving = self.folder[self.indices[k]]
            fixed = self.atlas if self.atlas is not None else self.folder[self._partner(k)]
        if moving["image"].shape != fixed["image"].shape:
            raise DataError(f"'{moving['name']}' {list(moving['image'].shape[1:])} and '{fixed['name']}' "
                            f"{list(fixed['image'].shape[1:])} differ in shape; resample them to one grid")
        return {"moving": moving["image"], "fixed": fixed["image"], "moving_seg": moving["seg"],
                "fixed_seg": fixed["seg"], "name": f"{moving['name']}_to_{fixed['name']}",
                "size": torch.tensor(moving["image"].shape[1:])}
