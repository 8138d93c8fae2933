"""BVFIM (Liu, Liu, Yuan, Zeng, Zhang, ICML 2021): value-function-based interior-point method.
A joint method (see ``joint.py`` for the contract).

The bilevel problem is written with the lower value function as a constraint,
``min_{x,y} F(x, y) + mu1/2 ||y||^2`` s.t. ``f2(x, y) <= phi(x) + mu`` with
``f2 = f + mu2/2 ||y||^2`` (regularised lower loss), ``phi(x) = min_z f2(x, z)`` and a slack
``mu > 0``; the constraint enters through the log barrier ``-theta ln(s)``,
``s = mu + phi(x) - f2(x, y)``. ``phi`` is tracked by an auxiliary sequence ``z`` (method state,
started at ``y``, ``steps`` gradient steps on ``f2(x, .)`` per call; ``grad_x phi = grad_x f(x, z)``).

The barrier's gradient is that of a penalty with the adaptive weight ``w = theta / s``; as for the
other penalty methods the directions returned are the barrier gradient over ``w``:

    x direction: grad_x F / w + grad_x f(x, y) - grad_x f(x, z)
    y direction: (grad_y F + mu1 y) / w + grad_y f(x, y) + mu2 y

An infeasible point (``s <= 0``, e.g. before ``y`` has been trained) gets the limit ``w -> inf``:
pure descent of the gap ``f2(x, y) - phi(x)``. Near a fixed point ``w ~ theta / mu`` and the upper
optimum is reached to ``O(mu / theta)``; the schedule ``mu_k = mu / (1 + decay k)``,
``theta_k = theta / sqrt(1 + decay k)`` (regularisers as ``mu``) drives that to 0 over the calls.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ..base import Context, check_positive
from ..tensors import TensorDict, detached, grad
from .joint import StatefulMethod


@dataclass
class BVFIMConfig:
    """Options of ``bvfim``.

    mu: barrier slack at the first call; theta: barrier weight at the first call.
    decay: schedule rate (``mu_k = mu / (1 + decay k)``, ``theta_k = theta / sqrt(1 + decay k)``;
        0 keeps both constant).
    reg_upper, reg_lower: ``mu1`` and ``mu2`` at the first call (decay like ``mu``).
    steps: gradient steps of the auxiliary ``z`` on ``f2(x, .)`` per call; lr: their size.
    """

    mu: float = 0.01
    theta: float = 0.1
    decay: float = 0.01
    reg_upper: float = 0.0
    reg_lower: float = 0.0
    steps: int = 5
    lr: float = 0.1

    def __post_init__(self) -> None:
        check_positive("mu", self.mu)
        check_positive("theta", self.theta)
        check_positive("decay", self.decay, allow_zero=True)
        check_positive("reg_upper", self.reg_upper, allow_zero=True)
        check_positive("reg_lower", self.reg_lower, allow_zero=True)
        check_positive("steps", self.steps, integer=True)
        check_positive("lr", self.lr)

    def schedule(self, k: int) -> tuple[float, float, float, float]:
        """``(mu_k, theta_k, mu1_k, mu2_k)`` at call ``k`` (0-based)."""
        d = 1.0 + self.decay * k
        return self.mu / d, self.theta / math.sqrt(d), self.reg_upper / d, self.reg_lower / d


class BVFIM(StatefulMethod):
    """BVFIM: log barrier on the value-function constraint; auxiliary ``z`` tracks ``phi(x)``."""

    name = "bvfim"
    Config = BVFIMConfig
    updates_lower = True

    def compute(self, ctx: Context) -> tuple[TensorDict, dict[str, Any]]:
        cfg = self.config
        mu, theta, mu1, mu2 = cfg.schedule(self.iteration)
        self.iteration += 1
        x_fixed = detached(ctx.x)
        y = ctx.y

        def f2(v: TensorDict, x: TensorDict | None = None) -> torch.Tensor:
            return ctx.f(v, x) + 0.5 * mu2 * sum((t ** 2).sum() for t in v.values())

        z = {k: v.detach() for k, v in self._aux(y).items()}
        for _ in range(cfg.steps):
            z = {k: v.requires_grad_(True) for k, v in z.items()}
            g = grad(f2(z, x_fixed), z)
            z = {k: (z[k] - cfg.lr * g[k]).detach() for k in z}
        self.aux = z
        upper = ctx.F(y)
        Fx, Fy = ctx.partials(upper, y)
        lower = ctx.f(y)
        fx, fy = ctx.partials(lower, y)
        zx = grad(ctx.f(z), ctx.x)
        with torch.no_grad():
            slack = mu + float(f2(z, x_fixed)) - float(f2(detached(y), x_fixed))
            inv_w = slack / theta if slack > 0 else 0.0  # 1/w; infeasible: w -> inf
            ctx.lower_direction = {k: inv_w * (Fy[k] + mu1 * y[k]) + fy[k] + mu2 * y[k] for k in fy}
        return {k: inv_w * Fx[k] + fx[k] - zx[k] for k in Fx}, {
            "lower_loss": float(lower.detach()), "upper_loss": float(upper.detach()), "slack": slack,
            "penalty": (theta / slack) if slack > 0 else float("inf"), "mu": mu, "theta": theta}
