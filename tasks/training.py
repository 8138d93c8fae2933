"""From settings to optimizers and learning-rate schedules, by the names users type.

``make_optimizer`` takes ``sgd``, ``adam`` or ``adamw``; ``make_schedule`` takes ``cosine`` (to
``lr_min`` over the run's epochs, stepped once an epoch) or ``constant``. ``ARCH_BETAS`` are the Adam
betas of DARTS's architect, used by every search for its architecture weights.
"""
from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn

from tasks.base import TrainGroup, TrainSetup

__all__ = ["ARCH_BETAS", "OPTIMIZERS", "SCHEDULES", "make_optimizer", "make_schedule", "single_group_training"]

#: Adam betas of the architecture optimizer (DARTS's architect).
ARCH_BETAS = (0.5, 0.999)

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "constant")


def make_optimizer(name: str, params: Iterable[Any], lr: float, weight_decay: float = 0.0,
                   momentum: float = 0.9, betas: tuple[float, float] | None = None) -> torch.optim.Optimizer:
    """``torch.optim.SGD`` (with ``momentum``), ``Adam`` or ``AdamW`` (``betas``: torch's default when
    None) over ``params`` (tensors or param-group dicts)."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    extra = {} if betas is None else {"betas": betas}
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, **extra)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, **extra)
    raise ValueError(f"unknown optimizer {name!r}; one of {', '.join(OPTIMIZERS)}")


def make_schedule(name: str, optimizer: torch.optim.Optimizer, epochs: int | float,
                  lr_min: float = 0.0) -> list[Any]:
    """The schedulers of ``name`` (stepped once an epoch): ``cosine`` from the optimizer's rate to
    ``lr_min`` over ``epochs``; ``constant``: none."""
    if name == "constant":
        return []
    if name == "cosine":
        return [torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=lr_min)]
    raise ValueError(f"unknown schedule {name!r}; one of {', '.join(SCHEDULES)}")


def single_group_training(network: nn.Module, s: Any) -> TrainSetup:
    """One group ``"weights"`` on the loss ``"loss"``: ``s.train_optimizer`` at ``s.lr`` and
    ``s.weight_decay`` (SGD with ``s.momentum``), gradients clipped to ``s.grad_clip``, schedule
    ``s.lr_schedule`` to ``s.lr_min`` over ``s.epochs`` epochs. Parameters held fixed (``requires_grad``
    off, e.g. learned hyper-parameters) are left out."""
    params = [p for p in network.parameters() if p.requires_grad]
    opt = make_optimizer(s.train_optimizer, params, s.lr, s.weight_decay, s.momentum)
    return TrainSetup([TrainGroup("weights", opt, loss="loss", grad_clip=s.grad_clip)],
                      make_schedule(s.lr_schedule, opt, s.epochs, s.lr_min))
