"""Run folders: creation rules, atomic writes, metrics.csv, checkpoints that describe themselves."""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from datasets.atomic import atomic_write_bytes

from .errors import UserError


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def save_torch(path: str | os.PathLike[str], obj: Any) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_torch(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    """Load a checkpoint written by these commands (tensors, dicts, strings only)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist; give the path of a file written by the commands")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise UserError(f"{what} {path} cannot be read ({type(e).__name__}); is it a file written by the commands?")
    if not isinstance(obj, dict) or "kind" not in obj or "task" not in obj:
        raise UserError(f"{what} {path} is not a checkpoint written by the commands")
    return obj


def prepare_folder(out: str | os.PathLike[str], resume: bool, force: bool, marker: str,
                   owned: tuple[str, ...] = (), can_resume: bool = True) -> Path:
    """Create the run folder. An existing non-empty folder is refused unless ``resume`` (continued
    from ``marker`` when it holds one, else the run starts there) or ``force`` (the files the
    command writes, ``owned``, are removed first; nothing else is touched)."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {path} is a file; give a folder")
    if resume:
        path.mkdir(parents=True, exist_ok=True)
        return path
    if path.is_dir() and any(path.iterdir()):
        if not force:
            how = "--resume to continue it, " if can_resume else ""
            raise UserError(f"folder {path} exists and is not empty; pass {how}--force to start it again "
                            "(the files this command writes are replaced), or another --out")
        for name in owned:
            target = path / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    path.mkdir(parents=True, exist_ok=True)
    return path


def open_run(args: Any, kind: str, owned: tuple[str, ...]) -> tuple[Path, dict[str, Any] | None]:
    """The run folder of ``args.out`` (default ``runs/KIND-TASK``) and, on ``--resume`` when the
    folder holds one, its checkpoint (which must be a ``kind`` run of ``args.task``)."""
    run_dir = prepare_folder(args.out or f"runs/{kind}-{args.task}", args.resume, args.force, "checkpoint.pt",
                             owned)
    marker = run_dir / "checkpoint.pt"
    if not args.resume:
        return run_dir, None
    if not marker.is_file():
        print(f"no checkpoint.pt in {run_dir} yet: starting the run there")
        return run_dir, None
    ckpt = load_torch(marker, "checkpoint")
    if ckpt["kind"] != kind or ckpt["task"] != args.task:
        raise UserError(f"{marker} is a {ckpt['kind']} checkpoint of task "
                        f"{ckpt['task']!r}, not a {kind} run of {args.task!r}")
    return run_dir, ckpt


def resumed_settings(task: Any, ckpt: dict[str, Any], args: Any) -> Any:
    """The checkpoint's settings with the budget flags given now (``--epochs``, ``--max-steps``,
    ``--save-every``) applied."""
    budget = {k: getattr(args, k) for k in ("epochs", "max_steps", "save_every") if getattr(args, k) is not None}
    return task.Settings.from_dict(ckpt["config"], source="checkpoint").replace(budget, source="command line")


class MetricsCSV:
    """``metrics.csv``: one row per epoch; columns fixed by the first row (new keys are added by
    rewriting the file)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def rows(self) -> list[dict[str, str]]:
        if not self.path.is_file():
            return []
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))

    def append(self, row: dict[str, Any]) -> None:
        rows = self.rows()
        rows.append({k: _fmt(v) for k, v in row.items()})
        keys: list[str] = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_bytes(self.path, buf.getvalue().encode())

    def truncate(self, epochs: int) -> None:
        """Keep the rows of epochs ``1..epochs`` (on resume, drop rows of a partial epoch)."""
        rows = [r for r in self.rows() if int(r.get("epoch", 0)) <= epochs]
        if not self.path.is_file():
            return
        self.path.unlink()
        for r in rows:
            self.append(r)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)
