"""The one exception type for mistakes in user-supplied data (folders, files, options)."""

from __future__ import annotations

from pathlib import Path
from typing import Union

__all__ = ["DataError", "no_folder"]


class DataError(ValueError):
    """Bad user data. The message is one line naming the offending file or folder and the fix."""


def no_folder(root: Union[str, Path], what: str = "data folder", fix: str = "pass an existing folder to --data"
              ) -> DataError:
    """The error for a ``root`` that is no folder: a file given where a folder is wanted is named as
    such (``fix`` then says which folder to pass), anything else does not exist."""
    p = Path(root)
    if p.is_file():
        return DataError(f"{what} '{p}' is a file, not a folder; pass the folder that holds the data set "
                         "(layouts: docs/<task>.md), not one of its files")
    return DataError(f"{what} '{p}' does not exist; {fix}")
