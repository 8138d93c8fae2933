"""The one exception type for mistakes in user-supplied data (folders, files, options)."""

from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """Bad user data. The message is one line naming the offending file or folder and the fix."""
