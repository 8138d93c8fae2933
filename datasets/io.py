"""Image reading and writing through OpenCV.

Tensors are ``float32`` ``[3, H, W]`` RGB in ``[0, 1]``. ``read_image`` accepts 8-bit and 16-bit
files (PNG, JPEG, TIFF, BMP, ... whatever the installed OpenCV decodes) and always returns three
channels: a grayscale file is expanded on purpose, so that every network and metric in the suite
sees the same layout whether a benchmark ships gray or colour images; an alpha channel is dropped.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Optional, TypeVar, Union

import cv2
import numpy as np
import torch

from datasets.atomic import atomic_write_bytes
from datasets.errors import DataError

__all__ = ["IMAGE_EXTENSIONS", "checking", "decode_image", "is_image_file", "probe_image", "probe_pair", "read_image",
           "to_unit_range", "write_image"]

PathLike = Union[str, os.PathLike]
T = TypeVar("T")

#: File name endings (lower case) treated as images when scanning folders.
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
)


def is_image_file(path: PathLike) -> bool:
    """Whether ``path`` ends in one of ``IMAGE_EXTENSIONS`` (case-insensitive)."""
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def checking(items: Iterable[T], desc: str, progress: bool = True, total: Optional[int] = None) -> Iterable[T]:
    """``items`` with a progress bar that shows only when checking takes more than a second (large
    folders) and disappears when done; ``progress=False``: no bar."""
    if not progress:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="file", total=total, delay=1.0, leave=False, dynamic_ncols=True)


def probe_image(path: PathLike) -> tuple[int, int, int]:
    """``(height, width, channels)`` of an image file from its header, without decoding the pixels
    (Pillow; its ``verify`` also checks the chunk checksums of a PNG, so a truncated or damaged PNG
    is caught). Formats Pillow does not know are decoded with OpenCV instead.

    Raises:
        DataError: the file is missing, unreadable or not an image (one line naming it).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"image '{p}' does not exist; check the path")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(p) as im:
            bands = len(im.getbands()) if im.mode != "P" else (4 if "transparency" in im.info else 3)
            size = (im.height, im.width, bands)
            im.verify()
        return size
    except UnidentifiedImageError:
        pass  # not a format Pillow knows: let OpenCV decide below
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"cannot read image '{p}' ({exc.__class__.__name__}: damaged or truncated); "
                        "replace or remove it") from None
    arr = decode_image(p)
    return arr.shape[0], arr.shape[1], 1 if arr.ndim == 2 else arr.shape[2]


def decode_image(p: PathLike) -> np.ndarray:
    """``cv2.imread(IMREAD_UNCHANGED)`` without OpenCV's own warnings: ``[H, W]`` (one channel, also
    when the file stores it as ``[H, W, 1]``) or ``[H, W, C]`` (OpenCV's BGR(A) order); a missing or
    undecodable file is a ``DataError`` naming it."""
    if not Path(p).is_file():
        raise DataError(f"image '{p}' does not exist; check the path")
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # our error names the file
    try:
        arr = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if arr is None or arr.size == 0:
        raise DataError(f"cannot decode image '{p}' (corrupt or not an image); replace or remove it")
    return arr[:, :, 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr


def to_unit_range(arr: np.ndarray, path: PathLike) -> np.ndarray:
    """Integer or float image array -> float32 in ``[0, 1]``."""
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    if arr.dtype in (np.float32, np.float64):
        return np.clip(arr.astype(np.float32), 0.0, 1.0)
    raise DataError(
        f"image '{path}' has unsupported sample type {arr.dtype}; convert it to 8- or 16-bit"
    )


def read_image(path: PathLike) -> torch.Tensor:
    """Read an image file as an RGB tensor.

    Args:
        path: image file.

    Returns:
        ``float32`` tensor ``[3, H, W]`` in ``[0, 1]`` (8-bit divided by 255, 16-bit by 65535).
        Grayscale (and gray+alpha) files are expanded to three equal channels; alpha is dropped.

    Raises:
        DataError: the file is missing, unreadable, corrupt or has an unsupported layout.
    """
    p = Path(path)
    arr = decode_image(p)
    if arr.ndim == 2:
        arr = cv2.cvtColor(arr, cv2.COLOR_GRAY2RGB)
    elif arr.ndim == 3 and arr.shape[2] == 2:  # gray + alpha
        arr = cv2.cvtColor(np.ascontiguousarray(arr[:, :, 0]), cv2.COLOR_GRAY2RGB)
    elif arr.ndim == 3 and arr.shape[2] == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGB)
    else:
        raise DataError(
            f"image '{p}' has shape {arr.shape}; expected a gray, RGB or RGBA image"
        )
    arr = to_unit_range(arr, p)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def write_image(path: PathLike, image: torch.Tensor, bits: int = 8) -> Path:
    """Write an RGB (or gray) tensor as an image file, atomically.

    The data are encoded in memory, written to a temporary file in the target folder and moved
    into place with ``os.replace``, so a reader never sees a half-written file.

    Args:
        path: target file; the extension picks the format (``.png`` recommended; 16-bit needs
            ``.png`` or ``.tif``). Parent folders are created.
        image: ``[3, H, W]``, ``[1, H, W]`` or ``[H, W]`` in ``[0, 1]`` (clamped), any device.
        bits: 8 or 16.

    Returns:
        The written path.
    """
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    p = Path(path)
    x = image.detach().to("cpu", torch.float32)
    if x.ndim == 2:
        x = x.unsqueeze(0)
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"expected an image [3, H, W], [1, H, W] or [H, W]; got {tuple(image.shape)}")
    peak = 255.0 if bits == 8 else 65535.0
    dtype = np.uint8 if bits == 8 else np.uint16
    arr = (x.clamp(0.0, 1.0) * peak).round().numpy().astype(dtype).transpose(1, 2, 0)
    arr = arr[:, :, 0] if arr.shape[2] == 1 else cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    ext = p.suffix.lower() or ".png"
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(arr))
    if not ok:
        raise DataError(f"cannot encode '{p}' as {ext} at {bits} bits; use a .png file name")
    return atomic_write_bytes(p, buf.tobytes(), parents=True)


def probe_pair(a: PathLike, b: PathLike, check: Callable[[PathLike, int], None],
               mismatch: str) -> tuple[int, int, int, int]:
    """``(H, W, C_a, C_b)`` of two images of a pair from their headers, each image's channels checked by
    ``check(path, channels)``; a one-line ``DataError`` naming both files, then ``mismatch``, when their
    sizes differ."""
    ha, wa, ca = probe_image(a)
    hb, wb, cb = probe_image(b)
    check(a, ca)
    check(b, cb)
    if (ha, wa) != (hb, wb):
        raise DataError(f"'{a}' is {ha}x{wa} but '{b}' is {hb}x{wb}; {mismatch}")
    return ha, wa, ca, cb
