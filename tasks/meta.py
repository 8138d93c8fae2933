"""What a meta-learning task shares: the searched module holding a learned initialisation, and a batch
of episodes split into the meta methods' ``bilevel.Tasks``.

A meta-learning search (``bilevel.methods.meta``) has the network's weights as lower variables and
the initialisation ``init/<name>`` (and, for Meta-SGD, the step sizes ``lr/<name>``) as upper ones.
``MetaInit`` holds them beside the network so that the search checkpoints them whole; the loop's
lower step copies the initialisation into the network's weights (``Method.lower_values``), so the
network itself is the learned initialisation a task's ``search_model`` returns.

An episode is a dict ``{"support": {...}, "query": {...}, "name": str}`` of two batches of the
task's items; collated, every tensor gets a leading episode axis ``E``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from bilevel import BilevelProblem, Group, LowerLevel, Tasks
from bilevel.problem import Loss
from tasks.training import make_optimizer

__all__ = ["MetaInit", "episode_tasks", "meta_group"]


class MetaInit(nn.Module):
    """``net`` with its initialisation ``init`` (one tensor per parameter, in ``named_parameters``
    order, started at the network's values) and, when ``rates`` is a number, Meta-SGD's per-parameter
    step sizes ``rates`` (same layout, started at that number)."""

    def __init__(self, net: nn.Module, rates: float | None = None) -> None:
        super().__init__()
        self.net = net
        self.names = [k for k, _ in net.named_parameters()]
        self.init = nn.ParameterList([nn.Parameter(p.detach().clone()) for p in net.parameters()])
        self.rates = None if rates is None else nn.ParameterList(
            [nn.Parameter(torch.full_like(p.detach(), float(rates))) for p in net.parameters()])

    def weights(self) -> dict[str, Tensor]:
        """The lower variables: the network's parameters by name."""
        return dict(self.net.named_parameters())

    def upper(self) -> dict[str, Tensor]:
        """The upper variables by the meta methods' names: ``init/<name>`` and ``lr/<name>``."""
        out = {f"init/{k}": p for k, p in zip(self.names, self.init)}
        if self.rates is not None:
            out.update({f"lr/{k}": p for k, p in zip(self.names, self.rates)})
        return out

    def initialisation(self) -> dict[str, Tensor]:
        """The learned initialisation by parameter name (detached, on the CPU)."""
        return {k: p.detach().cpu() for k, p in zip(self.names, self.init)}

    def step_sizes(self) -> dict[str, Tensor] | None:
        """Meta-SGD's learned step sizes by parameter name (detached, on the CPU), or None."""
        if self.rates is None:
            return None
        return {k: p.detach().cpu() for k, p in zip(self.names, self.rates)}


def meta_group(search: MetaInit, loss: Loss, inner: str, inner_lr: float, momentum: float, meta_lr: float,
               meta_weight_decay: float, grad_clip: float | None) -> Group:
    """The one group ``"init"`` of a meta-learning search over ``search``: the network's weights the lower
    variables, whose optimizer (``inner``: ``"sgd"``, ``"adam"`` or ``"adamw"`` at ``inner_lr``, with
    ``momentum`` for SGD, no weight decay) is the rule of the method's inner steps; the initialisation
    (and Meta-SGD's step sizes) the upper ones, Adam at ``meta_lr`` with ``meta_weight_decay``, the
    meta-gradient clipped to ``grad_clip``; ``loss(lower, upper, batch)`` both levels' loss (support and
    query sets)."""
    weights, upper = search.weights(), search.upper()
    problem = BilevelProblem(weights, upper, loss, loss, buffers={})
    lower = make_optimizer(inner, list(weights.values()), inner_lr, 0.0, momentum)
    meta = make_optimizer("adam", list(upper.values()), meta_lr, meta_weight_decay)
    return Group("init", problem, meta, LowerLevel("weights", lower), grad_clip=grad_clip)


def episode_tasks(batch: dict[str, Any], part: str) -> Tasks:
    """One ``part`` (``"support"`` or ``"query"``) per episode of a collated batch of episodes: every
    tensor of ``batch[part]`` indexed on its leading episode axis, other values (lists of names) too."""
    items = batch[part]
    count = next(len(v) for v in items.values() if isinstance(v, Tensor))
    return Tasks({k: v[e] for k, v in items.items()} for e in range(count))
