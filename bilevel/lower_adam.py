"""Differentiable Adam and AdamW lower steps, as ``torch.optim.Adam`` / ``torch.optim.AdamW`` take them.

One step from state ``(m, v, t)`` with gradient ``g`` (every tensor elementwise, shapes of the
lower variable)::

    t <- t + 1
    y <- y * (1 - lr * wd)          (AdamW: decoupled weight decay)   | g <- g + wd * y   (Adam)
    m <- lerp(m, g, 1 - beta1)
    v <- beta2 * v + (1 - beta2) * g * g
    v_max <- max(v_max, v)          (amsgrad; the denominator then uses v_max)
    y <- y - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

in the same operations and order as PyTorch's single-tensor implementation, so a step from the
optimizer's state gives its result to the last bit on CPU (its multi-tensor CUDA kernels may round
differently in the last place).

The square root at ``v = 0``: PyTorch adds ``eps`` after the root, and ``d sqrt(v)/dv`` is
infinite at 0; a coordinate whose gradient has been exactly zero at every step so far (dead units,
all-zero input features) would turn the backward pass into ``0 * inf = nan``. Such a coordinate
also has ``m = 0``, so the update ``m / (sqrt(v) + eps)`` has derivative ``dm / eps`` there: the
root's term is multiplied by ``m = 0`` (and ``sqrt`` of the sum of squares is Lipschitz). The
root is therefore taken with derivative 0 at ``v = 0`` (``_sqrt``), which gives the exact,
finite derivative of the update. The one case it does not cover is ``v`` underflowing to 0 while
``m`` does not (gradients below ~1e-23 in float32), where the true derivative is itself huge.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .tensors import TensorDict

RuleState = dict[str, Any]


def _sqrt(v: Tensor) -> Tensor:
    """``sqrt(v)`` for ``v >= 0`` with derivative 0 (not inf) at ``v == 0``, in reverse and forward mode."""
    positive = v > 0
    return torch.where(positive, torch.where(positive, v, 1.0).sqrt(), 0.0)


@dataclass
class AdamRule:
    """Adam (``decoupled=False``) or AdamW (``decoupled=True``) from a given state.

    ``start`` holds the optimizer's state by lower-variable name: ``exp_avg/<name>``,
    ``exp_avg_sq/<name>``, ``max_exp_avg_sq/<name>`` (tensors shaped like the variable) and
    ``step/<name>`` (int); a name without state starts from zeros at step 0, as PyTorch does."""

    lr: float
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    decoupled: bool = False
    amsgrad: bool = False
    start: RuleState = field(default_factory=dict)

    def initial_state(self) -> RuleState:
        return dict(self.start)

    def step(self, y: TensorDict, g: TensorDict, state: RuleState | None) -> tuple[TensorDict, RuleState]:
        """One update of every lower tensor; returns the new ``y`` and the new state."""
        state = {} if state is None else state
        new_y: TensorDict = {}
        new: RuleState = {}
        for k, yk in y.items():
            t = int(state.get("step/" + k, 0)) + 1
            gk = g[k]
            if self.weight_decay:
                if self.decoupled:
                    yk = yk * (1.0 - self.lr * self.weight_decay)
                else:
                    gk = torch.add(gk, yk, alpha=self.weight_decay)
            m = state.get("exp_avg/" + k)
            v = state.get("exp_avg_sq/" + k)
            m = torch.lerp(torch.zeros_like(gk) if m is None else m, gk, 1.0 - self.beta1)
            v = torch.addcmul((torch.zeros_like(gk) if v is None else v) * self.beta2, gk, gk, value=1.0 - self.beta2)
            new["step/" + k], new["exp_avg/" + k], new["exp_avg_sq/" + k] = t, m, v
            if self.amsgrad:
                v_max = state.get("max_exp_avg_sq/" + k)
                v = v if v_max is None else torch.maximum(v_max, v)
                new["max_exp_avg_sq/" + k] = v
            step_size = self.lr / (1.0 - self.beta1 ** t)
            denom = _sqrt(v) / (1.0 - self.beta2 ** t) ** 0.5 + self.eps
            new_y[k] = torch.addcdiv(yk, m, denom, value=-step_size)
        return new_y, new


ADAM_SLOTS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")


def adam_rule(optimizer: torch.optim.Adam, lower: TensorDict, group: dict[str, Any], lr: float | None,
              method: str) -> AdamRule:
    """The rule of ``optimizer`` (``torch.optim.Adam`` or ``AdamW``) for the tensors ``lower``
    (all in ``group``), from the optimizer's current state."""
    if group.get("maximize", False):
        raise NotImplementedError(f"method {method!r}: lower Adam with maximize=True is not supported")
    if any(isinstance(group[key], Tensor) and group[key].requires_grad for key in ("lr", "weight_decay")):
        raise NotImplementedError(f"method {method!r}: lower Adam with a learnable lr or weight decay")
    start: RuleState = {}
    for name, p in lower.items():
        if p.is_complex():
            raise NotImplementedError(f"method {method!r}: lower Adam on the complex tensor {name!r}")
        st = optimizer.state.get(p, {})
        if not st:
            continue
        start["step/" + name] = int(float(st["step"]))
        for slot in ADAM_SLOTS:
            if slot in st:
                start[slot + "/" + name] = st[slot].detach()
    beta1, beta2 = (float(b) for b in group["betas"])
    decoupled = isinstance(optimizer, torch.optim.AdamW) or bool(group.get("decoupled_weight_decay", False))
    return AdamRule(lr=float(group["lr"]) if lr is None else lr, beta1=beta1, beta2=beta2, eps=float(group["eps"]),
                    weight_decay=float(group["weight_decay"]), decoupled=decoupled,
                    amsgrad=bool(group["amsgrad"]), start=start)
