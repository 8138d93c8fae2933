"""Differentiable lower-level update rules, shared by the one-step and unrolled methods.

Without an optimizer the rule is the plain step ``y <- y - lr * grad_y f``. Given a lower
optimizer, the rule is that optimizer's update exactly as PyTorch applies it, starting from its
current state, so the virtual step of DARTS and the unrolled trajectories see the update the loop
will really make: ``torch.optim.SGD`` (momentum, dampening, Nesterov, weight decay; here) and
``torch.optim.Adam`` / ``torch.optim.AdamW`` (moments, step count, amsgrad, coupled or decoupled
weight decay; ``lower_adam.py``).

A rule is an object with ``lr``, ``initial_state()`` and ``step(y, g, state) -> (y, state)``; its
state is a dict of tensors (and, for Adam, int step counts) by ``<slot>/<name>`` or by name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import torch
from torch import Tensor

from .lower_adam import RuleState, adam_rule
from .tensors import TensorDict, detached, grad


class Rule(Protocol):
    """A differentiable lower update (``SGDRule``, ``AdamRule``)."""

    lr: float

    def initial_state(self) -> RuleState | None: ...

    def step(self, y: TensorDict, g: TensorDict, state: RuleState | None) -> tuple[TensorDict, RuleState | None]: ...


@dataclass
class SGDRule:
    """``buf <- momentum*buf + (1-dampening)*(g + wd*y)``; ``y <- y - lr*(buf or g + wd*y)``."""

    lr: float
    momentum: float = 0.0
    weight_decay: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False
    buffers: TensorDict = field(default_factory=dict)  # momentum buffers at the start, by name

    def step(self, y: TensorDict, g: TensorDict, state: TensorDict | None) -> tuple[TensorDict, TensorDict | None]:
        """One update. ``state`` is the momentum buffer dict (or None before the first step)."""
        new_y: TensorDict = {}
        new_state: TensorDict = {}
        for k, yk in y.items():  # fused ops (torch.add with alpha): fewer graph nodes to unroll
            d = torch.add(g[k], yk, alpha=self.weight_decay) if self.weight_decay else g[k]
            if self.momentum:
                prev = None if state is None else state.get(k)
                buf = d if prev is None else torch.add(self.momentum * prev, d, alpha=1 - self.dampening)
                new_state[k] = buf
                d = torch.add(d, buf, alpha=self.momentum) if self.nesterov else buf
            new_y[k] = torch.add(yk, d, alpha=-self.lr)
        return new_y, (new_state if self.momentum else None)

    def initial_state(self) -> TensorDict | None:
        return dict(self.buffers) if self.momentum and self.buffers else None


RULES = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW)  # exact types differentiated through


# the param-group settings that enter the update (not its parameters, implementation flags or
# a scheduler's bookkeeping)
UPDATE_SETTINGS = ("lr", "momentum", "dampening", "nesterov", "weight_decay", "betas", "eps", "amsgrad", "maximize",
                   "decoupled_weight_decay")


def _settings(group: dict[str, Any]) -> tuple:
    """A param group's update settings, comparable across groups."""
    return tuple((k, repr(group[k])) for k in UPDATE_SETTINGS if k in group)


def rule_for(lower_optimizer: torch.optim.Optimizer | None, lower: TensorDict, lr: float | None,
             method: str) -> Rule:
    """The update rule: plain steps of size ``lr`` without an optimizer, else the optimizer's own
    (its learning rate replaced by ``lr`` unless ``lr`` is None).

    ``lower`` maps names to the problem's own lower tensors (the optimizer's keys)."""
    if lower_optimizer is None:
        if lr is None:
            raise ValueError(f"method {method!r} needs a step size: pass lr=... or a lower optimizer")
        return SGDRule(lr=lr)
    if type(lower_optimizer) not in RULES:
        raise NotImplementedError(
            f"method {method!r} differentiates through the lower update, which is implemented for "
            f"torch.optim.SGD, Adam and AdamW, not {type(lower_optimizer).__name__}; use one of them for "
            "the lower level, or call without lower_optimizer for plain gradient steps")
    groups = {id(p): grp for grp in lower_optimizer.param_groups for p in grp["params"]}
    settings = set()
    for name, p in lower.items():
        grp = groups.get(id(p))
        if grp is None:
            raise ValueError(f"lower variable {name!r} is not in the lower optimizer's parameters")
        settings.add(_settings(grp))
    if len(settings) != 1:
        raise NotImplementedError(f"method {method!r}: lower optimizer param groups with different settings")
    group = groups[id(next(iter(lower.values())))]
    if isinstance(lower_optimizer, torch.optim.Adam):
        return adam_rule(lower_optimizer, lower, group, lr, method)
    if group.get("maximize", False):
        raise NotImplementedError(f"method {method!r}: lower SGD with maximize=True is not supported")
    buffers: TensorDict = {}
    for name, p in lower.items():
        buf = lower_optimizer.state.get(p, {}).get("momentum_buffer")
        if buf is not None:
            buffers[name] = buf.detach()
    glr, mom, wd, damp, nest = (group[k] for k in ("lr", "momentum", "weight_decay", "dampening", "nesterov"))
    if buffers and len(buffers) != len(lower):
        raise ValueError("lower optimizer has momentum buffers for some lower variables only")
    return SGDRule(lr=glr if lr is None else lr, momentum=mom, weight_decay=wd, dampening=damp,
                   nesterov=nest, buffers=buffers)


def detach_state(state: RuleState | None, requires_grad: bool = False) -> RuleState | None:
    """The rule state with fresh leaf tensors (floating ones requiring grad if asked); ints kept."""
    if state is None:
        return None
    return {k: v.detach().requires_grad_(requires_grad and v.is_floating_point()) if isinstance(v, Tensor) else v
            for k, v in state.items()}


def unroll(ctx_f: Callable[[TensorDict], Tensor], y0: TensorDict, rule: Rule, steps: int, differentiable: bool,
           state: RuleState | None = None) -> tuple[TensorDict, RuleState | None, list[Tensor]]:
    """``steps`` updates of ``rule`` on ``ctx_f(y) -> loss``. With ``differentiable`` the graph is
    kept (create_graph) so the result can be differentiated w.r.t. whatever ``y0`` and the loss
    depend on; otherwise each step is detached. Returns final y, rule state and the (detached)
    loss before each step."""
    y = y0
    losses: list[Tensor] = []
    for _ in range(steps):
        if not differentiable:
            y = detached(y, requires_grad=True)
        loss = ctx_f(y)
        g = grad(loss, y, create_graph=differentiable)
        if differentiable:
            y, state = rule.step(y, g, state)
        else:
            with torch.no_grad():  # the step builds no graph: its results are plain tensors
                y, state = rule.step(y, g, state)
        losses.append(loss.detach())
    return y, state, losses

