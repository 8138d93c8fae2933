"""Typed, validated settings of a run: one dataclass per task, named recipes of defaults.

A task's settings class subclasses ``Settings`` (the fields every command shares) and adds its
own fields, each with a default and a ``help`` in its metadata. Values resolve in this order:
the dataclass defaults, the chosen recipe's values for the stage (``search`` or ``train``), the
``--config`` file, the flags given on the command line. An unknown key or an out-of-range value is
a ``SettingsError`` (one line naming the key and the valid ones); ``check`` holds the ranges.
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

__all__ = ["Recipes", "Settings", "SettingsError", "TrainingSettings"]

#: recipe name -> stage ("search" | "train") -> field values over the dataclass defaults
Recipes = dict[str, dict[str, dict[str, Any]]]


class SettingsError(ValueError):
    """A settings key that does not exist, or a value out of its range; the message says which."""


@dataclass
class Settings:
    """Settings every task has. Budgets: ``epochs`` (or ``max_steps`` in all); ``save_every``:
    checkpoint every N steps (None: about every ``save_minutes`` of wall time)."""

    recipe: str = field(default="default", metadata={"help": "named recipe of defaults"})
    data: str | list[str] | None = field(default=None, metadata={
        "help": "dataset folder, or two folders [INPUT_DIR, TARGET_DIR] (--pairs); None: embedded default"})
    epochs: int = field(default=1, metadata={"help": "number of epochs"})
    max_steps: int | None = field(default=None, metadata={"help": "stop after this many steps in all"})
    batch_size: int = field(default=1, metadata={"help": "batch size"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    workers: int = field(default=0, metadata={"help": "data loader worker processes"})
    method: str | None = field(default=None, metadata={"help": "hypergradient method (search)"})
    method_options: dict[str, Any] = field(default_factory=dict, metadata={"help": "method options"})
    save_every: int | None = field(default=None, metadata={"help": "checkpoint every N steps"})
    save_minutes: float = field(default=10.0, metadata={"help": "checkpoint every M minutes of wall time"})
    amp: str | None = field(default=None, metadata={"help": "mixed precision of the forward passes: None "
                                                           "(float32), 'bf16' or 'fp16' (CUDA)"})
    channels_last: bool = field(default=False, metadata={"help": "network and 4D inputs in channels-last memory format"})
    compile: bool = field(default=False, metadata={"help": "torch.compile the network (train)"})

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "settings") -> "Settings":
        """Settings from ``values`` (unknown keys: ``SettingsError`` naming them and the valid ones)."""
        unknown_keys(cls, values, source)
        obj = cls(**dict(values))
        obj.check()
        return obj

    def replace(self, values: Mapping[str, Any], source: str = "settings") -> "Settings":
        """A copy with ``values`` applied, validated."""
        unknown_keys(type(self), values, source)
        obj = dataclasses.replace(self, **dict(values))
        obj.check()
        return obj

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # -- validation ---------------------------------------------------------------------------
    def check(self) -> None:
        """Raise ``SettingsError`` for a value out of range (subclasses call ``super().check()``)."""
        at_least(self, "epochs", 1)
        at_least(self, "batch_size", 1)
        at_least(self, "workers", 0)
        at_least(self, "max_steps", 1, optional=True)
        at_least(self, "save_every", 1, optional=True)
        positive(self, "save_minutes")
        one_of(self, "amp", (None, "bf16", "fp16"))
        for name in ("channels_last", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise SettingsError(f"setting {name} must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.method_options, dict):
            raise SettingsError(f"method_options must be a JSON object of name: value, got {self.method_options!r}")


def unknown_keys(cls: type, values: Mapping[str, Any], source: str) -> None:
    valid = [f.name for f in dataclasses.fields(cls)]
    bad = [k for k in values if k not in valid]
    if bad:
        key = bad[0]
        close = difflib.get_close_matches(key, valid, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SettingsError(f"{source}: unknown setting {key!r}{hint}; valid settings: {', '.join(sorted(valid))}")


def _number(obj: Any, name: str, optional: bool) -> float | None:
    value = getattr(obj, name)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SettingsError(f"setting {name} must be a number, got {value!r}")
    return value


def at_least(obj: Any, name: str, low: float, optional: bool = False, integer: bool = True) -> None:
    """``getattr(obj, name) >= low`` (an int when ``integer``), or None when ``optional``."""
    value = _number(obj, name, optional)
    if value is None:
        return
    if integer and not isinstance(value, int):
        raise SettingsError(f"setting {name} must be an integer, got {value!r}")
    if value < low:
        raise SettingsError(f"setting {name} must be >= {low}, got {value!r}")


def positive(obj: Any, name: str, optional: bool = False) -> None:
    """``getattr(obj, name) > 0`` (or None when ``optional``)."""
    value = _number(obj, name, optional)
    if value is not None and not value > 0:
        raise SettingsError(f"setting {name} must be > 0, got {value!r}")


def in_range(obj: Any, name: str, low: float, high: float, optional: bool = False) -> None:
    """``low <= getattr(obj, name) <= high``."""
    value = _number(obj, name, optional)
    if value is not None and not low <= value <= high:
        raise SettingsError(f"setting {name} must be in [{low}, {high}], got {value!r}")


def one_of(obj: Any, name: str, choices: tuple[Any, ...]) -> None:
    value = getattr(obj, name)
    if value not in choices:
        raise SettingsError(f"setting {name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def doc(text: str) -> dict[str, str]:
    """Field metadata carrying its help text: ``field(default=3, metadata=doc("cells"))``."""
    return {"help": text}


def flag_group(parser: argparse.ArgumentParser, task: str, stage: str, recipes: str) -> Callable[..., Any]:
    """``add_argument`` of the group of a task's flags for ``stage``, titled with its ``recipes``."""
    return parser.add_argument_group(f"task {task!r} ({stage}); recipes: {recipes}").add_argument


# argparse types for task flags (a bad value is argparse's one-line usage error)
def int_at_least(low: int, words: str, name: str) -> Callable[[str], int]:
    """An argparse type: an integer >= ``low``, else "must be ``words``, got TEXT"; ``name`` names it in
    argparse's message for text that is no integer."""
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {words}, got {text}")
        return value
    parse.__name__ = name
    return parse


positive_int = int_at_least(1, "a positive integer", "positive_int")
non_negative_int = int_at_least(0, ">= 0", "non_negative_int")


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


@dataclass
class TrainingSettings(Settings):
    """The fields every shipped application has beside the run's: validation, the weights' optimizer,
    the architecture optimizer and the clips. A task redeclares a field to change its default or help."""

    val_fraction: float = field(default=0.1, metadata=doc("share of a training folder held out for validation"))
    eval_batch_size: int = field(default=1, metadata=doc("validation/test batch size"))
    lr: float = field(default=0.01, metadata=doc("learning rate of the network weights"))
    momentum: float = field(default=0.9, metadata=doc("SGD momentum of the weights"))
    weight_decay: float = field(default=3e-4, metadata=doc("weight decay of the weights"))
    arch_lr: float = field(default=3e-3, metadata=doc("search: Adam learning rate of the alphas"))
    arch_weight_decay: float = field(default=1e-3, metadata=doc("search: weight decay of the alphas"))
    grad_clip: float | None = field(default=5.0, metadata=doc("search: hypergradient clip; train: weights clip"))
    lower_grad_clip: float | None = field(default=5.0, metadata=doc("search: clip of the weights' gradient"))

    def check(self) -> None:
        super().check()
        at_least(self, "eval_batch_size", 1)
        in_range(self, "val_fraction", 0.0, 0.5)
        in_range(self, "momentum", 0.0, 1.0)
        for key in ("lr", "arch_lr"):
            positive(self, key)
        for key in ("weight_decay", "arch_weight_decay"):
            in_range(self, key, 0.0, float("inf"))
        positive(self, "grad_clip", optional=True)
        positive(self, "lower_grad_clip", optional=True)
