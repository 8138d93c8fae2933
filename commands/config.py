"""Command-line flags shared by the commands, and the resolved configuration of a run."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

import torch

from bilevel import METHODS

from .errors import UserError
from .registry import TASKS, get_task

BUDGET_KEYS = ("epochs", "max_steps")


def parse_option(text: str) -> tuple[str, Any]:
    """``name=value`` of a method option; numbers, true/false/none are converted."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"option {text!r} must look like name=value, e.g. iters=10")
    for cast in (int, float):
        try:
            return key, cast(value)
        except ValueError:
            pass
    return key, {"true": True, "false": False, "none": None}.get(value.lower(), value)


def task_from_argv(argv: Sequence[str] | None) -> str | None:
    """The ``--task`` value, read before the full parser exists (it adds the task's flags)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task")
    known, _ = pre.parse_known_args(argv)
    return known.task


def add_common(parser: argparse.ArgumentParser, stage: str, task_name: str | None) -> None:
    """Flags of ``search`` and ``train``: task, data, budget, output, device, seed, resume."""
    parser.add_argument("--task", required=True, choices=sorted(TASKS),
                        help="application to run; '--task T --help' lists the task's own flags too")
    parser.add_argument("--data", default=None,
                        help="dataset folder (layouts in the README); default: the task's embedded synthetic data")
    parser.add_argument("--epochs", type=int, default=None, help="number of epochs (default: the task's)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="stop after this many optimisation steps in total (default: no limit)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (default: the task's)")
    parser.add_argument("--out", default=None, help=f"run folder (default: runs/{stage}-TASK)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="auto: cuda when available, else cpu")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    parser.add_argument("--workers", type=int, default=None, help="data loader worker processes (default 0)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint.pt")
    parser.add_argument("--force", action="store_true", help="write into an existing, non-empty --out")
    parser.add_argument("--config", default=None,
                        help="JSON file of settings (keys as in a run's config.json); flags given override it")
    if task_name in TASKS:
        TASKS[task_name]().add_arguments(parser, stage)


def add_search_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", default=None, choices=sorted(METHODS),
                        help="hypergradient method (default: the task's, darts2 for the DARTS tasks)")
    parser.add_argument("--option", action="append", type=parse_option, default=[], metavar="NAME=VALUE",
                        help="option of the method's config, repeatable (e.g. --method cg --option iters=10)")


def load_config_file(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise UserError(f"config file {p} does not exist")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"config file {p} is not valid JSON ({e}); fix it or drop --config")
    if not isinstance(data, dict):
        raise UserError(f"config file {p} must hold a JSON object of settings")
    return data


def resolve(args: argparse.Namespace, stage: str) -> dict[str, Any]:
    """Task defaults, then the ``--config`` file, then the flags given on the command line."""
    task = get_task(args.task)
    defaults = dict(task.search_defaults if stage == "search" else task.train_defaults)
    config: dict[str, Any] = {"task": args.task, "seed": 0, "workers": 0, "max_steps": None, **defaults}
    config.update(load_config_file(args.config))
    skip = {"config", "resume", "force", "out", "option", "genotype", "task"}
    for key, value in vars(args).items():
        if key not in skip and value is not None:
            config[key] = value
    if stage == "search":
        config["method"] = config.get("method") or task.default_method
        config["method_options"] = {**config.get("method_options", {}), **dict(args.option)}
    for key in ("epochs", "batch_size"):
        if not isinstance(config.get(key), int) or config[key] < 1:
            raise UserError(f"{key} must be a positive integer, got {config.get(key)!r}")
    if config["max_steps"] is not None and config["max_steps"] < 1:
        raise UserError(f"--max-steps must be >= 1, got {config['max_steps']}")
    return config


def device_of(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA device is available; use --device cpu or auto")
    return torch.device(name)
