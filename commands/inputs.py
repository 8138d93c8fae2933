"""``evaluate.py --save-inputs DIR``: the test set of a task as image files, for methods run elsewhere.

``DIR/inputs/NAME.png`` holds the input of each test item and ``DIR/references/NAME.png`` its
reference, where ``NAME`` is the item's name (its relative path, extension replaced by ``.png``):
the names ``evaluate.py --task T --predictions OUT`` matches, so a method run on ``DIR/inputs``
that writes ``OUT/NAME.*`` is scored on the same items (with the same ``--data`` / ``--pairs``, or
none for the embedded test split). Video items save their centre frame, one file per scored frame.
"""
from __future__ import annotations

import argparse
from pathlib import Path, PurePosixPath
from typing import Any

from datasets.io import write_image
from datasets.pairs import describe_data
from tasks import Task
from tasks.registry import get_task, names_where

from .config import given_flags, pairs_as_data
from .errors import UserError
from .runs import RunFolder, check_folder

#: What --save-inputs writes in its folder (``--force`` removes these, nothing else).
OWNED = ("inputs", "references")


def save_inputs(args: argparse.Namespace) -> int:
    """Write the test inputs and references of ``--task`` (``--data``/``--pairs`` or the embedded split)
    into ``args.save_inputs``, for a task that ``--predictions`` can score."""
    others = given_flags((("--checkpoint", args.checkpoint), ("--predictions", args.predictions),
                          ("--save-images", args.save_images), ("--out", args.out)))
    if others:
        raise UserError(f"--save-inputs DIR writes the test set and evaluates nothing: drop {', '.join(others)} "
                        "(run the other method on DIR/inputs, then score its folder with --predictions)")
    task = scoring_task(args.task, "--save-inputs needs --task, the task whose test set to write",
                        "cannot score outputs made elsewhere, so its inputs are not written", "")
    pairs_as_data(args, task)
    s = task.settings("train").replace({"data": args.data}, source="command line")
    out = check_folder(args.save_inputs, False, args.force, can_resume=False)
    folder = RunFolder(out, OWNED, args.force)
    dataset = task.test_data(args.data, s).test  # every file checked before anything is written
    folder.start()
    try:
        count, refs = _write(dataset, out)
    except BaseException:
        folder.abandon()
        raise
    where = describe_data(args.data) if args.data else "the embedded test split"
    print(f"wrote {count} test inputs of {task.name} ({where}) in {out / 'inputs'}"
          + (f" and their references in {out / 'references'}" if refs else " (the folder has no references)"))
    print(f"next: run the method on {out / 'inputs'}, writing OUT/NAME.png for each NAME, then python evaluate.py "
          f"--task {task.name} --predictions OUT" + (f" --data {args.data}" if isinstance(args.data, str) else
                                                     f" --pairs {' '.join(args.data)}" if args.data else ""))
    return 0


def _write(dataset: Any, out: Path) -> tuple[int, int]:
    """Each item's ``input`` and ``target`` (cropped to its ``size``) as ``inputs/NAME.png`` and
    ``references/NAME.png``; the counts of inputs and references written."""
    count = refs = 0
    for index in range(len(dataset)):
        item = dataset[index]
        name = PurePosixPath(Path(str(item["name"])).as_posix()).with_suffix(".png")
        h, w = (int(v) for v in item["size"]) if "size" in item else item["input"].shape[-2:]
        write_image(out / "inputs" / name, item["input"][..., :h, :w], bits=_bits(item["input"]))
        count += 1
        if "target" in item and item["target"] is not None:
            write_image(out / "references" / name, item["target"][..., :h, :w], bits=_bits(item["target"]))
            refs += 1
    return count, refs


def _bits(image: Any) -> int:
    """8 when every value of ``image`` (in [0, 1]) is a multiple of 1/255, else 16 (nothing is rounded off
    an 8-bit image; finer ones keep 16 bits)."""
    x = image.detach().float() * 255.0
    return 8 if bool((x - x.round()).abs().max() < 1e-3) else 16


def scoring_task(name: str | None, needs: str, cannot: str, fix: str) -> Task:
    """The task ``name`` when it scores outputs made elsewhere; else a one-line ``UserError``: ``needs`` (no
    task given) or ``cannot`` then ``fix``, each listing the tasks that can."""
    if name is None:
        raise UserError(f"{needs}: one of {', '.join(scoring_tasks())}")
    task = get_task(name)
    if not task.can_score_predictions:
        raise UserError(f"task {task.name!r} {cannot} (tasks that can: {', '.join(scoring_tasks())}){fix}")
    return task


def scoring_tasks() -> list[str]:
    """The tasks that score a folder of outputs made elsewhere (imports every application: messages only)."""
    return names_where(lambda cls: cls.can_score_predictions)
