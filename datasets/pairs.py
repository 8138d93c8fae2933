"""Two folders of image pairs given explicitly (``--pairs INPUT_DIR TARGET_DIR``), matched by name or
by number.

The ``data`` setting of the image tasks is a folder in one of the task's layouts, or the list
``[INPUT_DIR, TARGET_DIR]`` (what ``--pairs`` stores in ``config.json``). The images directly inside
the two folders are matched, in this order, by the first rule that pairs every file:

1. identical file stem, ignoring case and extension (``12.png`` ~ ``12.PNG`` ~ ``12.jpg``);
2. the number in the stem, its last run of digits (``rain-12.png`` ~ ``norain-12.png``,
   ``IR3.bmp`` ~ ``VIS3.bmp``, ``low7.png`` ~ ``normal007.png``), when every file of both folders
   carries one and no two files of a folder share it.

A file left without a partner is a one-line ``DataError`` naming a few of them. The matched pairs
are one set: search and training hold out a seeded validation slice of it
(``datasets.splits.split_train_val``), evaluation scores all of it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

from datasets.errors import DataError
from datasets.io import is_image_file

__all__ = ["describe_data", "folder_pairs", "image_files", "match_pairs", "natural_key", "pair_dirs", "stem_number"]

Key = Union[int, str]
_DIGITS = re.compile(r"(\d+)(?!.*\d)")
#: How many unmatched files an error names.
SHOWN = 3


def image_files(folder: Path) -> list[Path]:
    """The non-hidden image files directly inside ``folder``, sorted by name."""
    return [f for f in sorted(folder.iterdir()) if f.is_file() and not f.name.startswith(".") and is_image_file(f)]


def stem_number(path: Path) -> Optional[int]:
    """The last run of digits of the file stem as a number (``IR12.bmp`` -> 12), ``None`` without one."""
    m = _DIGITS.search(path.stem)
    return int(m.group(1)) if m else None


def pair_dirs(data: Any) -> Optional[tuple[Path, Path]]:
    """``(input folder, target folder)`` when ``data`` is a ``[INPUT_DIR, TARGET_DIR]`` list, ``None`` for
    a folder (a string or path) or ``None``. ``DataError`` for any other value or a missing folder."""
    if data is None or isinstance(data, (str, Path)):
        return None
    if not isinstance(data, (list, tuple)) or len(data) != 2 or not all(isinstance(d, (str, Path)) for d in data):
        raise DataError(f"data {data!r} must be a folder or two folders [INPUT_DIR, TARGET_DIR] (--pairs); fix "
                        "the data setting")
    dirs = Path(data[0]), Path(data[1])
    for d in dirs:
        if not d.is_dir():
            raise DataError(f"--pairs folder '{d}' does not exist; pass two existing folders INPUT_DIR TARGET_DIR")
    if dirs[0].resolve() == dirs[1].resolve():
        raise DataError(f"--pairs got the folder '{dirs[0]}' twice; pass the inputs and the targets as two folders")
    return dirs


def describe_data(data: Any) -> str:
    """``data`` for messages: the folder, or ``INPUT_DIR + TARGET_DIR`` for two folders."""
    if isinstance(data, (list, tuple)):
        return " + ".join(str(d) for d in data)
    return str(data)


def _keyed(files: Sequence[Path], key: Callable[[Path], Optional[Key]]) -> tuple[Optional[dict[Key, Path]], str]:
    """``(key -> file, "")``, or ``(None, why)`` when a file has no key or two files share one."""
    out: dict[Key, Path] = {}
    for f in files:
        k = key(f)
        if k is None:
            return None, f"'{f.name}' has no number"
        if k in out:
            return None, f"'{out[k].name}' and '{f.name}' share {k!r}"
        out[k] = f
    return out, ""


def _names(files: Sequence[Path]) -> str:
    return ", ".join(f.name for f in files[:SHOWN]) + (", ..." if len(files) > SHOWN else "")


def natural_key(path: Path) -> tuple[Any, ...]:
    """Sort key of a file name with its numbers compared as numbers (``IR2`` before ``IR10``)."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", path.name) if t)


def match_pairs(inputs: Sequence[Path], targets: Sequence[Path], input_where: str, target_where: str,
                what: tuple[str, str] = ("input", "target")) -> list[tuple[Path, Path]]:
    """Match two lists of files by stem, else by number (module docstring); pairs in the natural order of
    the input names.

    ``input_where`` / ``target_where`` name where the files come from in errors.

    Raises:
        DataError: a list is empty, or files are left without a partner (a few are named).
    """
    if not inputs:
        raise DataError(f"no {what[0]} images in '{input_where}'; add image files or fix the path")
    if not targets:
        raise DataError(f"no {what[1]} images in '{target_where}'; add image files or fix the path")
    best: Optional[tuple[list[Path], list[Path]]] = None
    why = ""
    for key in (lambda f: f.stem.lower(), stem_number):
        (a, why_a), (b, why_b) = _keyed(inputs, key), _keyed(targets, key)
        if a is None or b is None:
            why = why_a or why_b
            continue
        if a.keys() == b.keys():
            return sorted(((a[k], b[k]) for k in a), key=lambda p: natural_key(p[0]))
        unmatched = (sorted((a[k] for k in set(a) - set(b)), key=natural_key),
                     sorted((b[k] for k in set(b) - set(a)), key=natural_key))
        if best is None or sum(map(len, unmatched)) < sum(map(len, best)):
            best = unmatched
    by_number = f" (not by number: {why})" if why else ""
    if best is None:
        raise DataError(f"the files of '{input_where}' and '{target_where}' match neither by name nor by "
                        f"number{by_number}; name each pair alike, e.g. 12.png and 12.png")
    lonely = [(f, target_where) for f in best[0]] + [(f, input_where) for f in best[1]]
    first, other = lonely[0]
    more = f" ({len(lonely)} unmatched: {_names([f for f, _ in lonely])})" if len(lonely) > 1 else ""
    raise DataError(f"'{first}' has no partner in '{other}'{more}; pairs match by name or by the number in the "
                    f"name{by_number}: add the partners or remove those files")


def folder_pairs(input_dir: Path, target_dir: Path,
                 what: tuple[str, str] = ("input", "target")) -> list[tuple[Path, Path]]:
    """The matched image pairs of two folders (``match_pairs`` on their images)."""
    return match_pairs(image_files(input_dir), image_files(target_dir), str(input_dir), str(target_dir), what)

