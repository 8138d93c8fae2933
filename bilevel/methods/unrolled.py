"""Unrolled methods: reverse mode (``rad``), truncated reverse mode (``trad``), forward mode (``fad``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..base import Context, Method, OptionError, check_positive
from ..lower_step import rule_for, unroll
from ..tensors import TensorDict, detached
from ..trajectory import trajectory_gradient


@dataclass
class UnrollConfig:
    """Options of ``fad``, and the first ones of ``rad``.

    steps: number of lower updates unrolled from the current lower variables.
    lr: step size of the lower update (plain ``y <- y - lr * grad_y f`` without a lower optimizer;
        the lower optimizer's SGD/Adam/AdamW rule with this learning rate with one); ``None``
        takes the lower optimizer's learning rate, and is required without one.
    """

    steps: int = 10
    lr: float | None = 0.1

    def __post_init__(self) -> None:
        check_positive("steps", self.steps, integer=True)
        if self.lr is not None:
            check_positive("lr", self.lr)


@dataclass
class RADConfig(UnrollConfig):
    """Options of ``rad``: ``steps`` and ``lr`` as above, and

    checkpoint_every: ``None`` keeps the graph of every step (memory ~ ``steps``); ``K`` keeps the
        lower state every ``K`` steps and recomputes one segment of ``K`` steps at a time in the
        backward pass (memory ~ ``steps/K`` states + ``K`` steps, for ``steps - K`` extra lower
        steps without a graph; ``K ~ sqrt(steps)`` balances them). Same hypergradient.
    """

    checkpoint_every: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.checkpoint_every is not None:
            check_positive("checkpoint_every", self.checkpoint_every, integer=True)


@dataclass
class TruncatedConfig(RADConfig):
    """Options of ``trad``: ``steps``, ``lr`` and ``checkpoint_every`` as ``rad``; only the last
    ``truncate`` of the ``steps`` updates are differentiated (the first ``steps - truncate`` run
    without a graph; ``checkpoint_every`` applies to the ``truncate`` differentiated ones)."""

    truncate: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("truncate", self.truncate, integer=True)
        if self.truncate > self.steps:
            raise OptionError(f"option truncate ({self.truncate}) must be <= steps ({self.steps})")


class RAD(Method):
    """Reverse-mode differentiation through ``steps`` lower updates: exact derivative of
    ``F(x, y_T(x))`` for the unrolled map. Keeps the whole trajectory (memory grows with steps)
    unless ``checkpoint_every`` is set."""

    name = "rad"
    Config = RADConfig

    def _truncate(self) -> int:
        return self.config.steps

    def compute(self, ctx: Context) -> tuple[TensorDict, dict[str, Any]]:
        cfg = self.config
        rule = rule_for(ctx.lower_optimizer, ctx.problem.lower, cfg.lr, self.name)
        k = self._truncate()
        f = lambda y: ctx.f(y)  # noqa: E731
        x_fixed = detached(ctx.x)
        f_head = lambda y: ctx.f(y, x_fixed)  # noqa: E731  (untracked steps: no graph towards x)
        y, state, head = unroll(f_head, ctx.y, rule, cfg.steps - k, differentiable=False, state=rule.initial_state())
        if cfg.steps - k:
            y = detached(y, requires_grad=True)
        tail: dict[int, torch.Tensor] = {}

        def advance(t: int, yy: TensorDict, ss: Any, differentiable: bool) -> tuple[TensorDict, Any]:
            yy, ss, loss = unroll(f if differentiable else f_head, yy, rule, 1, differentiable, ss)
            tail[t] = loss[0]
            return yy, ss

        grads, upper = trajectory_gradient(advance, y, state, k, ctx.F, ctx.x, cfg.checkpoint_every)
        losses = head + [tail[t] for t in range(k)]
        return grads, {"lower_loss": float(losses[0]), "lower_loss_final": float(losses[-1]),
                       "upper_loss": float(upper.detach())}


class TRAD(RAD):
    """Truncated reverse mode: backpropagates through the last ``truncate`` updates only
    (memory grows with ``truncate``, not ``steps``)."""

    name = "trad"
    Config = TruncatedConfig

    def _truncate(self) -> int:
        return self.config.truncate


class FAD(Method):
    """Forward-mode differentiation through ``steps`` lower updates (``torch.func.jvp``), one
    tangent per scalar upper variable: keeps no trajectory; equals ``rad``. Suited to a few upper
    variables (cost grows with their count). Lower updates use plain steps or the lower
    optimizer's rule (SGD, Adam, AdamW)."""

    name = "fad"
    Config = UnrollConfig

    def compute(self, ctx: Context) -> tuple[TensorDict, dict[str, Any]]:
        cfg = self.config
        rule = rule_for(ctx.lower_optimizer, ctx.problem.lower, cfg.lr, self.name)
        names = list(ctx.x)
        x0 = tuple(ctx.x[k].detach() for k in names)
        y0 = {k: v.detach() for k, v in ctx.y.items()}

        def objective(*xs: Tensor) -> Tensor:
            x = dict(zip(names, xs))
            y, state = y0, rule.initial_state()
            for _ in range(cfg.steps):
                g = torch.func.grad(lambda yy: ctx.f(yy, x))(y)
                y, state = rule.step(y, g, state)
            return ctx.F(y, x)

        value = None
        out: TensorDict = {}
        for i, name in enumerate(names):
            g_flat = torch.empty_like(x0[i]).reshape(-1)
            for j in range(x0[i].numel()):
                tangent = [torch.zeros_like(t) for t in x0]
                tangent[i].view(-1)[j] = 1.0
                value, d = torch.func.jvp(objective, x0, tuple(tangent))
                g_flat[j] = d
            out[name] = g_flat.view_as(x0[i])
        return out, {"upper_loss_final": float(value) if value is not None else float("nan"),
                     "tangents": sum(t.numel() for t in x0)}
