"""MEHA (Liu, Liu, Yao, Zeng, Zhang, ICML 2024): the Moreau-envelope reformulation, single loop,
Hessian-free. A joint method (see ``joint.py`` for the contract).

The Moreau envelope of the lower loss ``v(x, y) = min_theta f(x, theta) + ||theta - y||^2 / (2 gamma)``
is ``<= f(x, y)``, with equality exactly at the lower stationary points; the bilevel problem
becomes ``min F`` s.t. ``f(x, y) - v(x, y) <= 0``, penalised with a weight ``c_k = c0 (k + 1)^p``
that grows over the calls. Per call ``k``, with the proximal variable ``theta`` as method state
(started at ``y``):

    theta <- theta - eta (grad_theta f(x, theta) + (theta - y) / gamma)
    x direction: grad_x F / c_k + grad_x f(x, y) - grad_x f(x, theta)
    y direction: grad_y F / c_k + grad_y f(x, y) - (y - theta) / gamma

(the gradient of ``F / c_k + f - v`` with ``grad_x v = grad_x f(x, theta*)`` and ``grad_y v =
(y - theta*) / gamma``; as for ``pbgd``, give the upper optimizer a step like the lower one's).
Near a fixed point the error of the reached upper optimum is ``O(1/c_k)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..base import Context, check_positive
from ..tensors import TensorDict, detached, grad
from .joint import StatefulMethod, descend


@dataclass
class MEHAConfig:
    """Options of ``meha``.

    gamma: proximal parameter of the Moreau envelope (the paper needs ``gamma < 1/rho`` for a
        ``rho``-weakly convex lower loss: any ``gamma > 0`` when it is convex).
    eta: step size of the proximal variable ``theta``.
    steps: ``theta`` steps per call.
    c0, p: penalty weight ``c_k = c0 (k + 1)^p`` (the paper: ``p`` in (0, 1/2); ``p = 0`` keeps
        the weight constant).
    """

    gamma: float = 1.0
    eta: float = 0.1
    steps: int = 1
    c0: float = 10.0
    p: float = 0.25

    def __post_init__(self) -> None:
        check_positive("gamma", self.gamma)
        check_positive("eta", self.eta)
        check_positive("steps", self.steps, integer=True)
        check_positive("c0", self.c0)
        check_positive("p", self.p, allow_zero=True)

    def weight(self, k: int) -> float:
        """Penalty weight ``c_k`` at call ``k`` (0-based)."""
        return self.c0 * (k + 1) ** self.p


class MEHA(StatefulMethod):
    """MEHA: Moreau-envelope penalty, proximal variable ``theta`` kept across calls."""

    name = "meha"
    Config = MEHAConfig
    updates_lower = True

    def compute(self, ctx: Context) -> tuple[TensorDict, dict[str, Any]]:
        cfg = self.config
        y = ctx.y
        theta = descend(ctx, self._aux(y), cfg.steps, cfg.eta, anchor=detached(y), prox=1.0 / cfg.gamma)
        self.aux = theta
        c = cfg.weight(self.iteration)
        self.iteration += 1
        upper = ctx.F(y)
        Fx, Fy = ctx.partials(upper, y)
        lower = ctx.f(y)
        fx, fy = ctx.partials(lower, y)
        tx = grad(ctx.f(theta), ctx.x)
        with torch.no_grad():
            ctx.lower_direction = {k: Fy[k] / c + fy[k] - (y[k] - theta[k]) / cfg.gamma for k in fy}
            envelope = ctx.f(theta) + sum(((theta[k] - y[k]) ** 2).sum() for k in y) / (2 * cfg.gamma)
        return {k: Fx[k] / c + fx[k] - tx[k] for k in Fx}, {
            "lower_loss": float(lower.detach()), "upper_loss": float(upper.detach()),
            "gap": float(lower.detach() - envelope), "penalty": c}
