"""Outputs made elsewhere: find the prediction of each test item in a folder, by file name.

``PredictionFolder(folder)`` indexes the images under ``folder`` by their path relative to it
without the extension (``a.png`` -> ``"a"``, ``sub/b.jpg`` -> ``"sub/b"``); ``read(name, size)``
reads the prediction of the test item ``name`` (any image extension) as ``[3, H, W]`` in [0, 1]
and checks its size. A missing, ambiguous or resized prediction is a one-line ``DataError``.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Sequence

import torch

from datasets.errors import DataError
from datasets.io import is_image_file, read_image

__all__ = ["PredictionFolder"]


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

    def read(self, name: str, size: Sequence[int]) -> torch.Tensor:
        """The prediction of ``name`` as RGB ``[3, H, W]`` in [0, 1]; it must be ``size`` (H, W)."""
        path = self.path(name)
        image = read_image(path)
        h, w = (int(v) for v in size)
        if tuple(image.shape[-2:]) != (h, w):
            raise DataError(f"'{path}' is {image.shape[-2]}x{image.shape[-1]} but '{name}' is {h}x{w}; "
                            "predictions must keep the size of their input")
        return image
