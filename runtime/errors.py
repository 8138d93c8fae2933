"""``UserError``: a mistake in the command line, a file or a folder (printed as one line by the commands)."""
from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """A mistake in the command line, a file or a folder; the message says what to do."""
