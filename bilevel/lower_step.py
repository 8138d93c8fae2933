"""Differentiable lower-level update rules, shared by the one-step and unrolled methods.

Without an optimizer the rule is the plain step ``y <- y - lr * grad_y f``. Given a
``torch.optim.SGD`` lower optimizer, the rule is SGD exactly as PyTorch applies it (momentum,
dampening, Nesterov, weight decay), starting from the optimizer's current momentum buffers, so
the virtual step of DARTS and the unrolled trajectories see the update the loop will really make.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from .tensors import TensorDict, detached, grad


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

    @property
    def grad_coefficient(self) -> float:
        """``c`` in ``d y_new / d g = -lr * c`` for the first step from the current state."""
        if not self.momentum:
            return 1.0
        cb = (1.0 - self.dampening) if self.buffers else 1.0
        return 1.0 + self.momentum * cb if self.nesterov else cb


def rule_for(lower_optimizer: torch.optim.Optimizer | None, lower: TensorDict, lr: float | None,
             method: str) -> SGDRule:
    """The update rule: plain steps of size ``lr`` without an optimizer, else the optimizer's SGD.

    ``lower`` maps names to the problem's own lower tensors (the optimizer's keys)."""
    if lower_optimizer is None:
        if lr is None:
            raise ValueError(f"method {method!r} needs a step size: pass lr=... or a lower optimizer")
        return SGDRule(lr=lr)
    if type(lower_optimizer) is not torch.optim.SGD:
        raise NotImplementedError(
            f"method {method!r} differentiates through the lower update, which is implemented for "
            f"torch.optim.SGD (momentum, weight decay, Nesterov), not {type(lower_optimizer).__name__}; "
            "use SGD for the lower level, or call without lower_optimizer for plain gradient steps")
    groups = {id(p): grp for grp in lower_optimizer.param_groups for p in grp["params"]}
    settings = set()
    buffers: TensorDict = {}
    for name, p in lower.items():
        grp = groups.get(id(p))
        if grp is None:
            raise ValueError(f"lower variable {name!r} is not in the lower optimizer's parameters")
        settings.add((grp["lr"], grp["momentum"], grp["weight_decay"], grp["dampening"], grp["nesterov"]))
        buf = lower_optimizer.state.get(p, {}).get("momentum_buffer")
        if buf is not None:
            buffers[name] = buf.detach()
    if len(settings) != 1:
        raise NotImplementedError(f"method {method!r}: lower optimizer param groups with different settings")
    glr, mom, wd, damp, nest = settings.pop()
    if buffers and len(buffers) != len(lower):
        raise ValueError("lower optimizer has momentum buffers for some lower variables only")
    return SGDRule(lr=glr if lr is None else lr, momentum=mom, weight_decay=wd, dampening=damp,
                   nesterov=nest, buffers=buffers)


def unroll(ctx_f: Callable[[TensorDict], Tensor], y0: TensorDict, rule: SGDRule, steps: int, differentiable: bool,
           state: TensorDict | None = None) -> tuple[TensorDict, TensorDict | None, list[Tensor]]:
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

