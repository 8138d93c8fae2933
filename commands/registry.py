"""``TASKS``: every application the commands can run, by name (a plain dict, explicit imports)."""
from __future__ import annotations

from nas.classification import ClassificationTask
from restoration.derain.task import DerainTask
from restoration.fusion.task import FusionTask
from restoration.lowlight.task import LowLightTask
from restoration.registration.task import RegistrationTask
from tasks import Task

from .errors import UserError

TASKS: dict[str, type[Task]] = {
    "lowlight": LowLightTask,
    "classification": ClassificationTask,
    "registration": RegistrationTask,
    "fusion": FusionTask,
    "derain": DerainTask,
}

# Named in the design, not built yet: asking for them is an error that says so.
PLANNED: tuple[str, ...] = ()


def get_task(name: str) -> Task:
    """The task instance for ``name``, or a one-line error listing the available ones."""
    if name in TASKS:
        return TASKS[name]()
    if name in PLANNED:
        raise UserError(f"task {name!r} is not implemented yet; available tasks: {', '.join(TASKS)}")
    raise UserError(f"unknown task {name!r}; available tasks: {', '.join(TASKS)}")
