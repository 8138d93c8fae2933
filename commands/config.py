"""Command-line flags shared by the commands, and the resolved configuration of a run."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

import torch

from bilevel import METHODS, MULTILEVEL_METHODS
from runtime.options import parse_option
from runtime.speed import add_speed_flags
from runtime.threads import add_threads_flag
from tasks import Settings, Task
from tasks.registry import TASKS, get_task, names_where
from tasks.results import read_json_object
from tasks.settings import unknown_keys

from .budget import drop_recipe_max_steps
from .errors import UserError


def given_flags(flags: Sequence[tuple[str, Any]]) -> list[str]:
    """The names of the ``(flag, value)`` pairs whose flag was given (a value other than None and False)."""
    return [flag for flag, value in flags if value not in (None, False)]


def task_from_argv(argv: Sequence[str] | None) -> str | None:
    """The ``--task`` value, read before the full parser exists (it adds the task's flags)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task")
    known, _ = pre.parse_known_args(argv)
    return known.task


def add_common(parser: argparse.ArgumentParser, stage: str, task_name: str | None) -> None:
    """Flags of ``search`` and ``train``: task, recipe, data, budget, output, device, seed, resume."""
    parser.add_argument("--task", required=True, metavar="TASK",
                        help=f"application to run (required): {', '.join(sorted(TASKS))}; '--task T --help' lists the "
                             "task's own flags and recipes too")
    parser.add_argument("--recipe", default=None,
                        help="named recipe of defaults (default: 'default'; e.g. lowlight's 'ruas' is the "
                             "paper's procedure as published); the task's --help lists them")
    add_data_flags(parser, "the task's embedded synthetic data")
    parser.add_argument("--epochs", type=int, default=None, help="number of epochs (default: the recipe's)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="stop after this many optimisation steps in total (default: no limit)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (default: the recipe's)")
    parser.add_argument("--out", default=None, help=f"run folder (default: runs/{stage}-TASK)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where the network runs (default auto: cuda when available, else cpu)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    parser.add_argument("--workers", type=int, default=None, help="data loader worker processes (default 0)")
    add_threads_flag(parser)
    add_speed_flags(parser, stage)
    parser.add_argument("--save-every", type=int, default=None, metavar="N",
                        help="write checkpoint.pt every N steps (default: about every 10 minutes); it is "
                             "also written at every epoch end and on Ctrl-C / SIGTERM")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its checkpoint.pt (a folder without one starts "
                             "the run there)")
    parser.add_argument("--force", action="store_true",
                        help="start clean in an existing --out: the files this command writes are removed first")
    parser.add_argument("--config", default=None,
                        help="JSON file of settings (keys as in a run's config.json; unknown keys are errors); "
                             "flags given override it (default: none, the recipe's settings)")
    if task_name in TASKS:
        task = get_task(task_name)
        task.add_arguments(parser, stage)
        if stage in ("search", "train"):
            recipes = ", ".join(task.recipes)
            pairs = f"; {task.pairs_help}" if task.pairs_help else ""
            parser.epilog = f"task {task_name!r}: recipes {recipes}; data: {task.data_help}{pairs}"


def add_data_flags(parser: argparse.ArgumentParser, default: str) -> None:
    """``--data DIR`` or ``--pairs INPUT_DIR TARGET_DIR`` (exclusive); both end up in the ``data`` setting."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--data", default=None,
                       help=f"dataset folder (layouts: docs/<task>.md); default: {default}")
    group.add_argument("--pairs", nargs=2, default=None, metavar=("INPUT_DIR", "TARGET_DIR"),
                       help="instead of --data: two folders of images paired by name or by the number in the name "
                            "(rain-12.png ~ norain-12.png, IR3.png ~ VIS3.png, 12.png ~ 12.png); lowlight: low-light "
                            "and reference, derain: rainy and clean, fusion: infrared and visible. One set: search "
                            "and train hold out a seeded validation slice, evaluate scores all of it (default: none, --data "
                            "says what to read)")


def pairs_as_data(args: argparse.Namespace, task: Task) -> None:
    """Move ``--pairs`` into ``args.data`` as ``[INPUT_DIR, TARGET_DIR]``; an error for a task that reads
    no pairs of folders."""
    pairs = getattr(args, "pairs", None)
    if pairs is None:
        return
    if not task.pairs_help:
        able = ", ".join(names_where(lambda cls: bool(cls.pairs_help)))
        raise UserError(f"task {task.name!r} does not read --pairs (tasks that do: {able}); pass its folder with "
                        "--data")
    args.data = [str(p) for p in pairs]


def add_search_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", default=None, choices=sorted(set(METHODS) | set(MULTILEVEL_METHODS)),
                        help="hypergradient method (default: the task's, darts2 for the DARTS tasks); a search over "
                             f"more than two levels (derain --recipe tmics) takes {', '.join(MULTILEVEL_METHODS)}")
    parser.add_argument("--option", action="append", type=parse_option, default=[], metavar="NAME=VALUE",
                        help="option of the method's config, repeatable (e.g. --method cg --option iters=10; "
                             "default: the recipe's method options, else the method's own)")


def load_config_file(path: str | None, task: str) -> dict[str, Any]:
    """The settings of a ``--config`` JSON file (``task`` may appear only with the value of ``--task``)."""
    if path is None:
        return {}
    p = Path(path)
    data = read_json_object(p, UserError, "config file", invalid="; fix it or drop --config", holds=" of settings")
    if "task" in data and data.pop("task") != task:
        raise UserError(f"config file {p} sets task; the task comes from --task only (remove the key)")
    for key in ("stage", "split"):  # written by the runs for the record, not settings
        data.pop(key, None)
    return data


#: flags that are not settings
NOT_SETTINGS = {"config", "resume", "force", "out", "option", "genotype", "hparams", "from_run", "init", "pairs", "task",
                "device", "threads", "threads_note"}


def resolve(args: argparse.Namespace, stage: str) -> Settings:
    """The recipe's defaults for ``stage``, then the ``--config`` file, then the flags given."""
    task = get_task(args.task)
    pairs_as_data(args, task)
    file_values = load_config_file(args.config, args.task)
    recipe = args.recipe or file_values.get("recipe") or "default"
    settings = task.settings(stage, recipe)
    settings = settings.replace(file_values, source=f"config file {args.config}")
    flags = _flags(args)
    if stage == "search":
        flags["method_options"] = {**settings.method_options, **dict(args.option)}
    settings = drop_recipe_max_steps(settings.replace(flags, source="command line"), args, file_values)
    if stage == "search" and settings.method is None:
        settings = settings.replace({"method": task.default_method})
    return settings


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags: every argument that is a setting and was given (not ``None``)."""
    return {k: v for k, v in vars(args).items() if k not in NOT_SETTINGS and v is not None}


def given_settings(args: argparse.Namespace, task: Any) -> dict[str, tuple[str, Any]]:
    """The settings given on the command line, ``key -> (how it was given, value)``: the keys of a
    ``--config`` file, then the flags (``--batch-size``, ``--pairs`` as ``data``, ``--option`` as
    ``method_options``); a flag wins over the file."""
    pairs_as_data(args, task)
    file_values = load_config_file(args.config, args.task)
    given = {k: (f"{k} of --config {args.config}", v) for k, v in file_values.items()}
    unknown_keys(task.Settings, file_values, f"config file {args.config}")
    for k, v in _flags(args).items():
        given[k] = ("--pairs" if k == "data" and getattr(args, "pairs", None) else "--" + k.replace("_", "-"), v)
    options = dict(getattr(args, "option", None) or [])
    if options:
        given["method_options"] = ("--option", options)
    return given


def device_of(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA device is available; use --device cpu or auto")
    return torch.device(name)
