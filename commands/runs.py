"""Run folders: creation rules, atomic writes, metrics.csv, checkpoints that describe themselves."""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import torch

from datasets.atomic import atomic_write_bytes

from .errors import UserError
from .torchfile import holds, unreadable


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def save_torch(path: str | os.PathLike[str], obj: Any) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_torch(path: str | os.PathLike[str], what: str, fix: str = "give the path of a file those commands wrote",
               missing: str = "give the path of a file written by the commands",
               expected: str = "a checkpoint written by train.py/search.py", any_dict: bool = False) -> dict[str, Any]:
    """Load a checkpoint written by these commands (tensors, dicts, strings only; with ``any_dict``, any
    dict such as a state dict); one-line ``UserError`` otherwise: a missing file (then ``missing``), or
    what the file is or holds, that it is not ``expected``, and ``fix``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist; {missing}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise UserError(f"{what} {path} is {unreadable(path)}, not {expected}; {fix}") from None
    if not isinstance(obj, dict) or not (any_dict or ("kind" in obj and "task" in obj)):
        raise UserError(f"{what} {path} holds {holds(obj)}, not {expected}; {fix}")
    return obj


def check_folder(out: str | os.PathLike[str], resume: bool, force: bool, can_resume: bool = True) -> Path:
    """The run folder ``out``, checked but not touched: an existing non-empty folder is refused
    unless ``resume`` or ``force``. Nothing is created or removed here (``start_folder`` does it
    once the data and the network are known to be good)."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {path} is a file; give a folder")
    if not resume and not force and path.is_dir() and any(path.iterdir()):
        how = "--resume to continue it, " if can_resume else ""
        raise UserError(f"folder {path} exists and is not empty; pass {how}--force to start it again "
                        "(the files this command writes are removed first), or another --out")
    return path


class RunFolder:
    """The folder a command writes, made only when the run starts (``start``): with ``force`` the
    files the command writes (``owned``) are removed first, nothing else. ``abandon`` undoes a start
    that failed before the run had anything to keep: it removes what the command wrote and the
    folder itself when the command made it, so a failed start leaves nothing behind."""

    def __init__(self, path: Path, owned: tuple[str, ...], force: bool = False) -> None:
        self.path, self.owned, self.force = path, owned, force
        self.created = False

    def start(self) -> Path:
        self.created = not self.path.exists()
        if self.force and not self.created:
            self._remove_owned()
        self.path.mkdir(parents=True, exist_ok=True)
        return self.path

    def abandon(self) -> None:
        if not self.path.is_dir():
            return
        self._remove_owned()
        if self.created and not any(self.path.iterdir()):
            self.path.rmdir()

    def run_until_checkpoint(self, body: Callable[[], int]) -> int:
        """``start`` the folder and run ``body``; if it fails before ``checkpoint.pt`` exists, ``abandon``
        the start (a failed start leaves no folder behind) and re-raise."""
        run_dir = self.start()
        try:
            return body()
        except BaseException:
            if not (run_dir / "checkpoint.pt").is_file():
                self.abandon()
            raise

    def _remove_owned(self) -> None:
        for name in self.owned:
            target = self.path / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()


def open_run(args: Any, kind: str, owned: tuple[str, ...]) -> tuple[RunFolder, dict[str, Any] | None]:
    """The run folder of ``args.out`` (default ``runs/KIND-TASK``), not yet created, and, on
    ``--resume`` when the folder holds one, its checkpoint (which must be a ``kind`` run of
    ``args.task``)."""
    run_dir = check_folder(args.out or f"runs/{kind}-{args.task}", args.resume, args.force)
    folder = RunFolder(run_dir, owned, args.force and not args.resume)
    marker = run_dir / "checkpoint.pt"
    if not args.resume:
        return folder, None
    if not marker.is_file():
        print(f"no checkpoint.pt in {run_dir} yet: starting the run there")
        return folder, None
    ckpt = load_torch(marker, "checkpoint", f"move it out of {run_dir} to start the run there, or pass another --out")
    if ckpt["kind"] != kind or ckpt["task"] != args.task:
        raise UserError(f"{marker} is a {ckpt['kind']} checkpoint of task "
                        f"{ckpt['task']!r}, not a {kind} run of {args.task!r}")
    return folder, ckpt


#: settings a resumed run takes from the command line: the budget, how often it saves, and the data
#: loader's worker processes (the batches are the same with any number)
RESUMABLE = ("epochs", "max_steps", "save_every", "save_minutes", "workers")


def resumed_settings(task: Any, ckpt: dict[str, Any], args: Any) -> Any:
    """The checkpoint's settings with the budget flags given now (``RESUMABLE``) applied, one line
    printed per value changed. Any other setting given (flag or ``--config`` key) that differs from the
    checkpoint's is a one-line ``UserError`` naming each flag and both values."""
    from .config import given_settings  # the flags' names are the config module's

    saved = task.Settings.from_dict(ckpt["config"], source="checkpoint")
    given = given_settings(args, task)
    differ = {k: (name, v) for k, (name, v) in given.items() if not same_value(v, getattr(saved, k))}
    clashes = [f"{name} {show(v)} (the run has {show(run_value(saved, k, v))})"
               for k, (name, v) in differ.items() if k not in RESUMABLE]
    if clashes:
        where = Path(args.out or f"runs/{ckpt['kind']}-{ckpt['task']}") / "checkpoint.pt"
        raise UserError(f"{' and '.join(clashes)}: a resumed run keeps the settings of {where}; drop "
                        f"{'it' if len(clashes) == 1 else 'them'} to continue it, or start a new run "
                        "with another --out (or --force)")
    for k, (name, v) in differ.items():
        print(f"resuming with {name} {show(v)} (the checkpoint had {show(getattr(saved, k))})")
    return saved.replace({k: v for k, (_, v) in given.items() if k in RESUMABLE}, source="command line")


def run_value(saved: Any, key: str, given: Any) -> Any:
    """The run's value of ``key``; of ``method_options``, only the options given."""
    value = getattr(saved, key)
    if key == "method_options":
        return {k: value.get(k, "(default)") for k in given}
    return value


def show(value: Any) -> str:
    """A settings value as the command line spells it (``None``: ``none``)."""
    if value is None:
        return "none"
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items()) or "(none)"
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


def same_value(a: Any, b: Any) -> bool:
    """Equal settings values; paths that exist compare as the files they name (``./x`` is ``x``);
    ``a``'s options (a dict) are the same when ``b`` holds each of them with the same value."""
    if isinstance(a, dict) and isinstance(b, dict):
        return all(k in b and same_value(v, b[k]) for k, v in a.items())
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, str) and isinstance(b, str) and a != b and Path(a).exists():
        return Path(a).resolve() == Path(b).resolve()
    return a == b


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
