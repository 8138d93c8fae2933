"""The applications the commands can run: one map from task name to import path, imported lazily.

``get_task(name)`` imports only the application it returns, so a command starts without loading
the others. Adding an application is one line in ``TASKS`` (or ``register`` from a test or a
plug-in); no other shared code changes.
"""
from __future__ import annotations

import importlib
from typing import Callable

from tasks.base import Task

__all__ = ["TASKS", "TaskError", "get_task", "names_where", "register", "task_class"]

#: task name -> "module:Class" of its ``Task`` subclass
TASKS: dict[str, str] = {
    "lowlight": "restoration.lowlight.task:LowLightTask",
    "classification": "classification.task:ClassificationTask",
    "registration": "restoration.registration.task:RegistrationTask",
    "fusion": "restoration.fusion.task:FusionTask",
    "derain": "restoration.derain.task:DerainTask",
    "fewshot": "fewshot.task:FewShotTask",
}


class TaskError(ValueError):
    """An unknown task name, or a registered path that does not name a ``Task`` subclass."""


def register(name: str, path: str) -> None:
    """Add (or replace) the application ``name`` at ``"module:Class"``."""
    if ":" not in path:
        raise TaskError(f"task {name!r}: give its class as 'module:Class', got {path!r}")
    TASKS[name] = path


def task_class(name: str) -> type[Task]:
    """The ``Task`` subclass registered as ``name`` (its module imported now)."""
    if name not in TASKS:
        raise TaskError(f"unknown task {name!r}; available tasks: {', '.join(TASKS)}")
    module, _, attr = TASKS[name].partition(":")
    cls = getattr(importlib.import_module(module), attr, None)
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise TaskError(f"task {name!r}: {TASKS[name]} is not a Task subclass")
    return cls


def get_task(name: str) -> Task:
    """A new instance of the task ``name``, or a one-line ``TaskError`` listing the available ones."""
    return task_class(name)()


def names_where(test: Callable[[type[Task]], bool]) -> list[str]:
    """The names of the tasks whose class passes ``test`` (imports every application: for messages
    that list the tasks able to do something, not for start-up)."""
    return [name for name in TASKS if test(task_class(name))]
