"""The network of a model.pt written by train.py, rebuilt from the file alone (evaluate.py, export.py).

In two steps, so that a command may change the settings in between (evaluate.py's ``--tile``):
``read_model`` (the checkpoint, its task and settings) then ``build_model`` (the network with the
checkpoint's weights, on the CPU).
"""
from __future__ import annotations

import os
from typing import Any

from torch import nn

from tasks import SearchResult, Settings, Task

from .errors import UserError
from .registry import get_task
from .runs import load_torch

__all__ = ["build_model", "read_model"]


def read_model(path: str | os.PathLike[str], task_name: str | None = None) -> tuple[dict[str, Any], Task, Settings]:
    """The checkpoint at ``path``, its task and resolved settings; one-line ``UserError`` unless it is
    a model.pt (of task ``task_name`` when given)."""
    ckpt = load_torch(path, "checkpoint")
    if ckpt["kind"] != "model":
        raise UserError(f"{path} is a {ckpt['kind']} checkpoint, not a trained model; pass the model.pt written "
                        "by train.py")
    if task_name is not None and task_name != ckpt["task"]:
        raise UserError(f"{path} is a model of task {ckpt['task']!r}, not {task_name!r}")
    task = get_task(ckpt["task"])
    return ckpt, task, task.Settings.from_dict(ckpt["config"], source=str(path))


def build_model(task: Task, s: Settings, ckpt: dict[str, Any], path: str | os.PathLike[str]) -> nn.Module:
    """``task``'s network of the checkpoint's search result with its weights (on the CPU, train mode)."""
    result = SearchResult.from_dict(ckpt)
    task.check_result(result, source=str(path))
    net = task.build_network(result, s)
    try:
        net.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        first = str(e).splitlines()[1:2] or [""]
        raise UserError(f"{path}: weights do not fit the network of its genotype ({first[0].strip()})")
    return net
