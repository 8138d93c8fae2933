"""Registration volumes stored as npz files, in voxelmorph's two conventions.

* one file ``NAME.npz`` holding the image ``vol`` and its label map ``seg`` (voxelmorph's current
  ``data/test_scan.npz``, and ``atlas_norm.npz``); the image may also be called ``vol_data``;
* two files ``NAME_vol.npz`` (image) + ``NAME_seg.npz`` (label map), each with the key
  ``vol_data`` (voxelmorph's older ``data/test_vol.npz`` + ``test_seg.npz``); ``vol`` / ``seg``
  are accepted in them too.

Keys are checked from the zip directory (nothing decoded) when a folder is listed, so a file with
other arrays is refused before any split, naming the keys it holds and the ones expected.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Optional

import numpy as np

from datasets.errors import DataError

__all__ = ["IMAGE_KEYS", "LABEL_KEYS", "NPZ_LAYOUTS", "find_npz", "npz_keys", "npz_shapes", "npz_volume", "read_npz"]

#: Keys of the image array, tried in order.
IMAGE_KEYS: tuple[str, ...] = ("vol", "vol_data")
#: Keys of the label map: ``seg`` in a one-file npz; ``seg`` or ``vol_data`` in a ``NAME_seg.npz``.
LABEL_KEYS: tuple[str, ...] = ("seg", "vol_data")
NPZ_LAYOUTS = ("NAME.npz with 'vol' (image) and 'seg' (label map), or NAME_vol.npz + NAME_seg.npz with 'vol_data' "
               "each (voxelmorph's older files)")
_VOL, _SEG = "_vol", "_seg"


def npz_keys(path: Path) -> list[str]:
    """The array names of an npz from its zip directory (no data read); ``DataError`` if unreadable."""
    try:
        with zipfile.ZipFile(path) as z:
            return [m.removesuffix(".npy") for m in z.namelist()]
    except (OSError, zipfile.BadZipFile) as e:
        raise DataError(f"cannot read '{path}' ({type(e).__name__}: not an npz or damaged); replace or remove "
                        "the file") from None


def _key(path: Path, keys: list[str], wanted: tuple[str, ...], what: str) -> str:
    found = next((k for k in wanted if k in keys), None)
    if found is None:
        expected = " or ".join(f"'{k}'" for k in wanted)
        raise DataError(f"'{path}' holds arrays {keys} but no {what} {expected}; expected {NPZ_LAYOUTS}")
    return found


def _keys_of(image: Path, seg: Path) -> tuple[str, str]:
    """(image key, label key) of a volume; ``DataError`` naming the keys found and the ones expected."""
    keys = npz_keys(image)
    if image == seg:
        if not any(k in keys for k in IMAGE_KEYS):
            raise DataError(f"'{image}' holds arrays {keys}; expected {NPZ_LAYOUTS}")
        if "seg" not in keys:
            raise DataError(f"'{image}' holds arrays {keys} but no label map 'seg'; add 'seg' to it, or store the "
                            f"image as '{image.stem}{_VOL}.npz' and the labels as '{image.stem}{_SEG}.npz' "
                            "(key 'vol_data')")
        return _key(image, keys, IMAGE_KEYS, "image"), "seg"
    return _key(image, keys, IMAGE_KEYS, "image"), _key(seg, npz_keys(seg), LABEL_KEYS, "label map")


def npz_volume(path: Path) -> tuple[str, Path, Path]:
    """``(name, image file, label file)`` of one npz: ``NAME_vol.npz`` / ``NAME_seg.npz`` name their partner
    (which must exist), any other file holds both arrays. Keys are checked."""
    stem = path.stem
    if stem.endswith((_VOL, _SEG)):
        name = stem[: -len(_VOL)]
        image, seg = path.with_name(f"{name}{_VOL}.npz"), path.with_name(f"{name}{_SEG}.npz")
        missing = seg if path == image else image
        keys = npz_keys(path)
        if not missing.is_file() and "seg" in keys and any(k in keys for k in IMAGE_KEYS):
            name, image, seg = stem, path, path  # both arrays in this one file
        elif not missing.is_file():
            what = "label file" if missing == seg else "image file"
            raise DataError(f"'{path}' has no {what} '{missing.name}' beside it; add it (key 'vol_data'), or store "
                            f"image and labels in one npz as 'vol' and 'seg'")
    else:
        name, image, seg = stem, path, path
    _keys_of(image, seg)
    return name, image, seg


def find_npz(root: Path) -> list[tuple[str, Path, Path]]:
    """``(name, image file, label file)`` of every volume stored as npz directly in ``root``, sorted."""
    out: dict[str, tuple[str, Path, Path]] = {}
    for p in sorted(root.glob("*.npz")):
        name, image, seg = npz_volume(p)
        out.setdefault(str(image), (name, image, seg))
    return sorted(out.values(), key=lambda v: v[1].name)


def npz_shapes(image: Path, seg: Path) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Raw (image, label) shapes from the npy headers inside the npz files (no data read)."""
    ki, ks = _keys_of(image, seg)
    return _member_shape(image, ki), _member_shape(seg, ks)


def _member_shape(path: Path, key: str) -> tuple[int, ...]:
    with zipfile.ZipFile(path) as z, z.open(f"{key}.npy") as f:
        major, _ = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        return tuple(read(f)[0])


def read_npz(image: Path, seg: Optional[Path] = None) -> tuple[np.ndarray, np.ndarray]:
    """``(image array, label array)`` of a volume (``seg`` defaults to ``image``: one file)."""
    seg = image if seg is None else seg
    ki, ks = _keys_of(image, seg)
    with np.load(image) as z:
        img = np.asarray(z[ki])
    with np.load(seg) as z:
        lab = np.asarray(z[ks])
    return img, lab
