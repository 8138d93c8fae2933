"""The network of a weight file, rebuilt from the file alone (evaluate.py, export.py), and the weights
``train.py --init`` starts from.

A weight file is a model.pt written by train.py, or a paper's released file that a task recognises by
its tensor names and shapes (``Task.released_weights``, e.g. RUAS's ``lol.pt``) and maps onto its own
network. In two steps, so that a command may change the settings in between (evaluate.py's ``--tile``):
``read_model`` (the checkpoint, its task and settings) then ``build_model`` (the network with the
checkpoint's weights, on the CPU).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from torch import Tensor, nn

from tasks import SearchResult, Settings, Task
from tasks.registry import get_task, names_where
from tasks.released import ReleasedWeights

from .errors import UserError
from .runs import load_torch

__all__ = ["InitWeights", "build_model", "load_init", "read_init", "read_model", "read_weights"]


def read_weights(path: str | os.PathLike[str], what: str = "checkpoint") -> dict[str, Any]:
    """The object stored at ``path`` (tensors, dicts, strings only): a checkpoint of the commands (it has
    ``kind`` and ``task``) or a state dict; one-line ``UserError`` (naming the file as ``what``) else."""
    fix = "give a model.pt written by train.py or a paper's released weights"
    return load_torch(path, what, fix, missing=fix, expected="a checkpoint or a state dict", any_dict=True)


def _is_checkpoint(obj: Mapping[str, Any]) -> bool:
    return "kind" in obj and "task" in obj


def released(path: str | os.PathLike[str], state: Mapping[str, Any],
             task_name: str | None = None) -> tuple[Task, ReleasedWeights]:
    """The task (``task_name``'s, else any task that offers ``released_weights``) that recognises the
    state dict ``state`` read from ``path``, and the mapped weights; one-line ``UserError`` otherwise."""
    names = [task_name] if task_name is not None else names_where(lambda cls: cls.reads_released)
    for name in names:
        task = get_task(name)
        if not task.reads_released:
            continue
        try:
            found = task.released_weights(dict(state), str(path))
        except ValueError as e:
            raise UserError(str(e)) from None
        if found is not None:
            return task, found
    tensors = sum(isinstance(v, Tensor) for v in state.values())
    first = next(iter(state), "")
    of = f"task {task_name!r}" if task_name is not None else "any task"
    raise UserError(f"{path} is not a model.pt written by train.py, and its {tensors} tensors (first {first!r}) are "
                    f"not released weights {of} recognises (RUAS's ckpt/*.pt and model/denoise.pt for lowlight)")


def read_model(path: str | os.PathLike[str], task_name: str | None = None) -> tuple[dict[str, Any], Task, Settings]:
    """The checkpoint at ``path``, its task and resolved settings; one-line ``UserError`` unless it is
    a model.pt (of task ``task_name`` when given) or released weights a task can evaluate. For released
    weights the checkpoint is built here and ``ckpt["released"]`` says what was recognised."""
    obj = read_weights(path)
    if not _is_checkpoint(obj):
        task, found = released(path, obj, task_name)
        if found.not_evaluable:
            raise UserError(found.not_evaluable)
        s = task.settings("train").replace(found.settings, source=str(path))
        ckpt = {"kind": "model", "task": task.name, **found.result.to_dict(), "config": s.to_dict(),
                "state_dict": found.state_dict, "released": found.description}
        return ckpt, task, s
    if obj["kind"] != "model":
        raise UserError(f"{path} is a {obj['kind']} checkpoint, not a trained model; pass the model.pt written "
                        "by train.py")
    if task_name is not None and task_name != obj["task"]:
        raise UserError(f"{path} is a model of task {obj['task']!r}, not {task_name!r}")
    task = get_task(obj["task"])
    return obj, task, task.Settings.from_dict(obj["config"], source=str(path))


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


@dataclass
class InitWeights:
    """Weights ``train.py --init`` starts from: ``state_dict`` (all of the network's when ``complete``),
    the search result and settings they fit (``None`` / empty: the run's own), and what they are."""

    path: str
    description: str
    state_dict: dict[str, Tensor]
    result: SearchResult | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    complete: bool = True


def read_init(path: str | os.PathLike[str], task: Task) -> InitWeights:
    """The ``--init`` weights at ``path`` for ``task``: a model.pt of that task or released weights it
    recognises (one-line ``UserError`` otherwise)."""
    obj = read_weights(path, "--init")
    if _is_checkpoint(obj):
        if obj["kind"] != "model" or obj["task"] != task.name:
            raise UserError(f"--init {path} is a {obj['kind']} checkpoint of task {obj['task']!r}; give a model.pt "
                            f"of task {task.name!r} (to continue a run, use --resume --out RUN_DIR)")
        return InitWeights(str(path), f"model.pt of step {obj.get('step', '?')}", dict(obj["state_dict"]),
                           SearchResult.from_dict(obj))
    _, found = released(path, obj, task.name)
    return InitWeights(str(path), found.description, found.state_dict, found.result, found.settings, found.complete)


def load_init(net: nn.Module, init: InitWeights) -> str:
    """Copy ``init``'s weights into ``net`` (every tensor when complete, else those it has, the rest
    left as initialised); returns what was loaded, in words. One-line ``UserError`` on a misfit."""
    own = net.state_dict()
    unknown = sorted(set(init.state_dict) - set(own))
    wrong = [k for k, v in init.state_dict.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    missing = sorted(set(own) - set(init.state_dict)) if init.complete else []
    problem = (f"{unknown[0]} is not in the network" if unknown else
               f"{wrong[0]} is {tuple(init.state_dict[wrong[0]].shape)}, the network's is {tuple(own[wrong[0]].shape)}"
               if wrong else f"no weights for {missing[0]}" if missing else None)
    if problem is not None:
        raise UserError(f"--init {init.path} does not fit the network being trained ({problem}); train the "
                        "genotype and sizes the weights were made with")
    net.load_state_dict(init.state_dict, strict=init.complete)
    if init.complete:
        return f"all {len(own)} tensors"
    return f"{len(init.state_dict)} of {len(own)} tensors (the rest from scratch)"
