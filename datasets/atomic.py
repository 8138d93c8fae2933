"""One atomic file writer for every package: a temporary file in the target folder, then a rename,
so a reader never sees half a file; the file gets the permissions of the user's umask (``mkstemp``
alone makes 0600)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, parents: bool = False) -> Path:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``; ``parents``: create
    missing parent folders (else a missing folder is ``FileNotFoundError``)."""
    path = Path(path)
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str, parents: bool = False) -> Path:
    """``atomic_write_bytes`` of UTF-8 ``text``."""
    return atomic_write_bytes(path, text.encode("utf-8"), parents)
