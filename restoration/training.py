"""The retraining most restoration tasks use: all network weights in one optimizer group on one loss."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tasks import TrainGroup, TrainSetup

__all__ = ["single_group_training"]


def single_group_training(network: nn.Module, s: Any) -> TrainSetup:
    """One group ``"weights"`` on the loss ``"loss"``: Adam (``s.train_optimizer == "adam"``) or SGD with
    ``s.momentum``, at ``s.lr`` and ``s.weight_decay``, gradients clipped to ``s.grad_clip``; cosine from
    ``s.lr`` to ``s.lr_min`` over ``s.epochs`` epochs unless ``s.lr_schedule == "constant"``."""
    if s.train_optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(network.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    else:
        opt = torch.optim.SGD(network.parameters(), lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    schedulers = [] if s.lr_schedule == "constant" else [
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=s.epochs, eta_min=s.lr_min)]
    return TrainSetup([TrainGroup("weights", opt, loss="loss", grad_clip=s.grad_clip)], schedulers)
