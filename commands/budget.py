"""The length of a search or training run: ``--max-steps N`` runs N steps, ``--epochs E`` E epochs.

A ``max_steps`` given by ``--max-steps`` or the ``--config`` file is exact: the run is that many steps
and takes ``ceil(N / steps_per_epoch)`` epochs (the last one partial when N is not a multiple). A
recipe's ``max_steps`` is a cap: the run is ``min(epochs x steps_per_epoch, max_steps)`` steps. Either
way the settings' ``epochs`` and ``max_steps`` become the run's before the schedules are built, so a
schedule over the epochs (cosine) spans the run actually made, and ``config.json`` and the checkpoint
record it (a resumed run goes on with exactly that). A ``--epochs`` flag given without ``--max-steps``
drops a ``max_steps`` of the recipe or of the checkpoint: the epochs asked for are run.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from tasks import Settings

__all__ = ["drop_recipe_max_steps", "load_schedulers", "max_steps_given", "step_budget"]


def drop_recipe_max_steps(s: Settings, args: Any, file_values: dict[str, Any] | None = None) -> Settings:
    """``s`` without ``max_steps`` when ``--epochs`` is given and neither ``--max-steps`` nor the config
    file (``file_values``) sets it."""
    if getattr(args, "epochs", None) is None or getattr(args, "max_steps", None) is not None:
        return s
    if file_values and file_values.get("max_steps") is not None:
        return s
    return s if s.max_steps is None else s.replace({"max_steps": None})


def max_steps_given(args: Any) -> bool:
    """Whether ``--max-steps`` or the ``--config`` file sets ``max_steps`` (then it is exact)."""
    if getattr(args, "max_steps", None) is not None:
        return True
    from .config import load_config_file  # here: config imports this module

    config = getattr(args, "config", None)
    return config is not None and load_config_file(config, args.task).get("max_steps") is not None


def step_budget(s: Settings, steps_per_epoch: int, exact: bool = True) -> tuple[Settings, int, str]:
    """``(settings with the run's epochs and max_steps, total steps, note)``: ``max_steps`` exact, or a cap
    on ``epochs x steps_per_epoch`` when not ``exact``; the note (empty when the epochs are run as set)
    says how the steps were turned into epochs."""
    full = s.epochs * steps_per_epoch
    if s.max_steps is None or (not exact and s.max_steps >= full):
        return (s if s.max_steps is None else s.replace({"max_steps": None}, source="max_steps")), full, ""
    total = int(s.max_steps)
    epochs = math.ceil(total / steps_per_epoch)
    if epochs == s.epochs:
        return s, total, ""
    last = total - (epochs - 1) * steps_per_epoch
    part = f", the last {last} step{'s' if last > 1 else ''}" if last != steps_per_epoch else ""
    what = f"--max-steps {total}" if exact else f"the recipe's max_steps {total}"
    note = (f"{what}: {epochs} epoch{'s' if epochs > 1 else ''} of {steps_per_epoch} steps{part} "
            f"(not the {s.epochs} set; the epoch schedules span these {epochs})")
    return s.replace({"epochs": epochs}, source="max_steps"), total, note


def load_schedulers(schedulers: Sequence[Any], states: Sequence[dict[str, Any]]) -> str:
    """Load the checkpoint's scheduler ``states``, keeping the length (``T_max``) each scheduler was
    built with now: a cosine schedule resumed under a longer or shorter budget goes on from the
    learning rate it had and reaches its floor at the new end. Returns a note when a length changed."""
    notes = []
    for sched, state in zip(schedulers, states):
        length = getattr(sched, "T_max", None)
        sched.load_state_dict(state)
        if length is not None and sched.T_max != length:
            notes.append(f"{type(sched).__name__} {sched.T_max} -> {length} epochs")
            sched.T_max = length
    return ("schedules resized to the new budget: " + ", ".join(notes)) if notes else ""
