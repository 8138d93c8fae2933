"""Settings fields the restoration applications share, declared once.

``RestorationSettings``: every restoration task (embedded data size, the weights' schedule and the
search's lower optimizer). ``ImageSettings``: the image tasks trained on random crops (low-light,
deraining, fusion): crop, flips, the retraining optimizer and the cosine floor. A task redeclares a
field to change its default or help, and narrows the choices in its own ``check``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tasks.settings import TrainingSettings, at_least, doc, in_range, one_of
from tasks.training import OPTIMIZERS, SCHEDULES

__all__ = ["ImageSettings", "RestorationSettings"]


@dataclass
class RestorationSettings(TrainingSettings):
    synthetic_count: int | None = field(default=None, metadata=doc("embedded training items (None: the task's count)"))
    lr_schedule: str = field(default="cosine", metadata=doc("cosine or constant"))
    lower_optimizer: str = field(default="sgd", metadata=doc("search: optimizer of the weights (the task says which)"))

    def check(self) -> None:
        super().check()
        at_least(self, "synthetic_count", 1, optional=True)
        one_of(self, "lr_schedule", SCHEDULES)  # lower_optimizer: each task checks the choices its search offers


@dataclass
class ImageSettings(RestorationSettings):
    crop: int | None = field(default=48, metadata=doc("random square training crop (None: whole items)"))
    flip: bool = field(default=True, metadata=doc("random flips"))
    lr_min: float = field(default=1e-3, metadata=doc("cosine floor of the weights' learning rate"))
    train_optimizer: str = field(default="adam", metadata=doc("train: adam or sgd"))

    def check(self) -> None:
        super().check()
        in_range(self, "lr_min", 0.0, float("inf"))
        one_of(self, "train_optimizer", OPTIMIZERS)
