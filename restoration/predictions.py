"""Outputs made elsewhere: find the prediction of each test item in a folder, by file name.

``PredictionFolder(folder)`` indexes the images under ``folder`` by their path relative to it
without the extension (``a.png`` -> ``"a"``, ``sub/b.jpg`` -> ``"sub/b"``); ``read(name, size)``
reads the prediction of the test item ``name`` (any image extension) as ``[3, H, W]`` in [0, 1]
and checks its size. A missing, ambiguous or resized prediction is a one-line ``DataError``.

A grayscale prediction (a gray file, or three equal channels) of a colour reference is scored as
the field's tools score it: where the metrics are taken on luma (deraining's Y channel) the gray
image is its own luma (expanded to three equal channels, its Y is ``16/255 + 219/255 * gray``, the
Y of a colour image of that luma), compared with the reference's Y; where they are taken on RGB
(low-light, deraining without the Y channel) it is a one-line ``DataError``, as BasicSR's and
scikit-image's PSNR refuse images of different shapes: the RGB scores of a gray image against a
colour reference would count the missing colour as error.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Sequence

import torch

from datasets.errors import DataError
from datasets.io import is_image_file, read_image

__all__ = ["PredictionFolder", "is_gray"]


class PredictionFolder:
    """The image files under ``folder``, by relative path without extension (see the module docstring)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise DataError(f"predictions folder '{self.folder}' does not exist; pass the folder of output images")
        self.files: dict[str, list[Path]] = {}
        for path in sorted(self.folder.rglob("*")):
            if path.is_file() and is_image_file(path):
                key = path.relative_to(self.folder).with_suffix("").as_posix()
                self.files.setdefault(key, []).append(path)

    def path(self, name: str) -> Path:
        """The prediction file of the test item ``name`` (matched without extension)."""
        key = str(PurePosixPath(Path(name).as_posix()).with_suffix(""))
        found = self.files.get(key, [])
        if not found:
            raise DataError(f"no prediction for '{name}' in '{self.folder}' (looked for '{key}.*', any image "
                            "extension); add it, or check --predictions and --data")
        if len(found) > 1:
            raise DataError(f"'{found[0]}' and '{found[1]}' both match '{name}'; keep one of them")
        return found[0]

    def read(self, name: str, size: Sequence[int], reference: torch.Tensor | None = None,
             luma: bool = False) -> torch.Tensor:
        """The prediction of ``name`` as RGB ``[3, H, W]`` in [0, 1]; it must be ``size`` (H, W). With the
        colour ``reference`` ``[3, H, W]`` of metrics on RGB (``luma`` False), a gray prediction is a
        ``DataError`` (see the module docstring)."""
        path = self.path(name)
        image = read_image(path)
        h, w = (int(v) for v in size)
        if tuple(image.shape[-2:]) != (h, w):
            raise DataError(f"'{path}' is {image.shape[-2]}x{image.shape[-1]} but '{name}' is {h}x{w}; "
                            "predictions must keep the size of their input")
        if reference is not None and not luma and is_gray(image) and not is_gray(reference):
            raise DataError(f"'{path}' is grayscale but the reference of '{name}' is in colour, and this task "
                            "scores the RGB channels; save the method's colour output (a gray image can only be "
                            "scored on luma, as deraining's Y-channel metrics do)")
        return image


def is_gray(image: torch.Tensor) -> bool:
    """Whether the three channels of ``image`` ``[3, H, W]`` are equal (a gray image as read)."""
    return bool(torch.equal(image[0], image[1]) and torch.equal(image[1], image[2]))
