"""Joint methods: value-function and penalty formulations that move ``x`` and ``y`` together.

They solve ``min_{x,y} F(x, y)`` subject to ``f(x, y) <= f*(x)`` (``f*`` the lower value function,
estimated by a few gradient steps on ``f`` from a starting point), without second derivatives.
Each ``compute`` is one iteration of the method: it returns the upper direction and sets the lower
variables' direction ``ctx.lower_direction``; the caller steps both optimizers with them (the loop
writes ``.lower`` into ``.grad``). The penalty methods return the gradient of ``F / w + p``
(``p`` the penalty, ``w`` its weight) for both: the lower direction is on the scale of
``grad_y f``, and so is the upper one's curvature (``w`` times that of the hypergradient's
objective): give the upper optimizer a step size like the lower one's (the papers use one step
size ``O(1/w)`` for ``F + w p``; a hypergradient-sized upper step diverges).

* ``bome`` (Liu, Ye, Wright, Stone, Liu, NeurIPS 2022): ``q = f(x, y) - f(x, theta_T)``, the
  direction ``grad F + lam grad q`` with ``lam = max((eta ||grad q||^2 - <grad F, grad q>) /
  ||grad q||^2, 0)`` for both ``x`` and ``y`` (the dynamic barrier: ``q`` decreases at rate
  ``eta ||grad q||^2``).
* ``pbgd`` (V-PBGD, Shen and Chen, ICML 2023): gradient descent on the penalty ``F + gamma p``,
  ``p = f(x, y) - f(x, y_hat)``; ``x``: ``grad_x F / gamma + grad_x f(x, y) - grad_x f(x, y_hat)``
  (Danskin), ``y``: ``grad_y F / gamma + grad_y f(x, y)``.
* ``f2sa`` (Kwon, Kwon, Wright, Nowak, ICML 2023): the same Lagrangian with a multiplier
  ``lam_k`` that grows by ``lam_step`` per call up to ``lam_max``, and an auxiliary lower copy ``z``
  (method state) that follows ``grad_z f(x, z)`` across calls instead of being re-solved.

At a fixed point of the penalty methods ``gamma A e = -grad_y F`` (``A`` the lower Hessian,
``e = y - y*(x)``), so ``gamma`` times the ``x`` direction equals the exact hypergradient at
``y*(x) + e`` with ``||e|| = O(1/gamma)``: the upper optimum is reached to ``O(1/gamma)``
(``O(1/lam_max)``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..base import Context, Method, OptionError, check_positive
from ..tensors import TensorDict, cloned, detached, dot, grad, norm, same_layout


def descend(ctx: Context, start: TensorDict, steps: int, lr: float,
            anchor: TensorDict | None = None, prox: float = 0.0) -> TensorDict:
    """``steps`` plain gradient steps on ``f(x, .)`` (``+ prox/2 ||. - anchor||^2``) from ``start``,
    with ``x`` held fixed; no graph is kept. Returns detached tensors."""
    x = detached(ctx.x)
    z = detached(start)
    for _ in range(steps):
        z = detached(z, requires_grad=True)
        g = grad(ctx.f(z, x), z)
        with torch.no_grad():
            if anchor is not None and prox:
                g = {k: g[k] + prox * (z[k] - anchor[k]) for k in g}
            z = {k: z[k] - lr * g[k] for k in z}
    return detached(z)


class StatefulMethod(Method):
    """A method keeping a lower-shaped auxiliary variable and an iteration counter across calls."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.aux: TensorDict | None = None
        self.iteration = 0

    def _aux(self, y: TensorDict) -> TensorDict:
        """The auxiliary variable, started at the lower variables on the first call."""
        if self.aux is None:
            self.aux = cloned(y)
        elif not same_layout(self.aux, y):
            raise ValueError(f"method {self.name!r} holds state for other lower variables "
                             f"({sorted(self.aux)}); build a new method for this problem")
        return self.aux

    def replicated_state(self) -> list[Tensor]:
        """The state a data-parallel loop averages over the processes after each call (each
        process moves the auxiliary variable on its own shard; the mean keeps them identical)."""
        return [] if self.aux is None else list(self.aux.values())

    def state_dict(self) -> dict[str, Any]:
        return {"aux": cloned(self.aux), "iteration": self.iteration}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        unknown = set(state) - {"aux", "iteration"}
        if unknown:
            raise ValueError(f"unknown state keys {sorted(unknown)} for method {self.name!r}")
        self.aux = cloned(state.get("aux"))
        self.iteration = int(state.get("iteration", 0))


@dataclass
class BOMEConfig:
    """Options of ``bome``.

    steps: gradient steps on ``f(x, .)`` from ``y`` giving ``theta_T`` (``f(x, theta_T)``
        estimates the value function ``f*(x)``).
    lr: their step size.
    eta: barrier rate (``phi = eta ||grad q||^2``; the paper's default 0.5).
    """

    steps: int = 10
    lr: float = 0.1
    eta: float = 0.5

    def __post_init__(self) -> None:
        check_positive("steps", self.steps, integer=True, allow_zero=True)
        check_positive("lr", self.lr)
        check_positive("eta", self.eta)


class BOME(Method):
    """BOME: one direction ``grad F + lam grad q`` for ``(x, y)`` (no state)."""

    name = "bome"
    Config = BOMEConfig
    updates_lower = True

    def compute(self, ctx: Context) -> tuple[TensorDict, dict[str, Any]]:
        cfg = self.config
        theta = descend(ctx, ctx.y, cfg.steps, cfg.lr)
        upper = ctx.F(ctx.y)
        Fx, Fy = ctx.partials(upper, ctx.y)
        lower = ctx.f(ctx.y)
        q = lower - ctx.f(theta)
        qx, qy = ctx.partials(q, ctx.y)
        qq = dot(qx, qx) + dot(qy, qy)
        Fq = dot(Fx, qx) + dot(Fy, qy)
        lam = torch.clamp((cfg.eta * qq - Fq) / qq, min=0.0) if float(qq) > 0 else torch.zeros_like(qq)
        ctx.lower_direction = {k: Fy[k] + lam * qy[k] for k in Fy}
        return {k: Fx[k] + lam * qx[k] for k in Fx}, {
            "lower_loss": float(lower.detach()), "upper_loss": float(upper.detach()),
            "q": float(q.detach()), "lambda": float(lam)}


@dataclass
class PBGDConfig:
    """Options of ``pbgd`` (V-PBGD).

    gamma: penalty weight (error of the reached upper optimum ``O(1/gamma)``).
    steps: gradient steps on ``f(x, .)`` from ``y`` giving ``y_hat`` (value function estimate).
    lr: their step size.
    """

    gamma: float = 10.0
    steps: int = 10
    lr: float = 0.1

    def __post_init__(self) -> None:
        check_positive("gamma", self.gamma)
        check_positive("steps", self.steps, integer=True, allow_zero=True)
        check_positive("lr", self.lr)


def penalty_directions(ctx: Context, z: TensorDict, weight: float) -> tuple[TensorDict, dict[str, Any]]:
    """The gradient of ``F / w + f(x, y) - f(x, z)`` (``z`` held fixed): the upper direction
    ``grad_x F / w + grad_x f(x, y) - grad_x f(x, z)``, and into ``ctx`` the lower one
    ``grad_y F / w + grad_y f(x, y)``. Three backward passes, each graph freed before the next
    forward (one pass of the sum would hold all three graphs at once: twice the peak memory on
    benchmarks/hypergrad.py's CNN)."""
    upper = ctx.F(ctx.y)
    Fx, Fy = ctx.partials(upper, ctx.y)
    lower = ctx.f(ctx.y)
    fx, fy = ctx.partials(lower, ctx.y)
    lower_z = ctx.f(z)
    zx = grad(lower_z, ctx.x)
    inv = 1.0 / weight
    ctx.lower_direction = {k: torch.add(fy[k], Fy[k], alpha=inv) for k in fy}
    gap = float(lower.detach() - lower_z.detach())  # f(x, z) from the pass above, not a new one
    return {k: torch.add(fx[k] - zx[k], Fx[k], alpha=inv) for k in Fx}, {
        "lower_loss": float(lower.detach()), "upper_loss": float(upper.detach()), "gap": gap,
        "penalty": weight}


class PBGD(Method):
    """V-PBGD: ``y_hat`` re-solved from ``y`` each call (no state), penalty weight ``gamma``."""

    name = "pbgd"
    Config = PBGDConfig
    updates_lower = True

    def compute(self, ctx: Context) -> tuple[TensorDict, dict[str, Any]]:
        cfg = self.config
        y_hat = descend(ctx, ctx.y, cfg.steps, cfg.lr)
        return penalty_directions(ctx, y_hat, cfg.gamma)


@dataclass
class F2SAConfig:
    """Options of ``f2sa``.

    lam: multiplier at the first call; it grows by ``lam_step`` per call up to ``lam_max``
        (error of the reached upper optimum ``O(1/lam_max)``).
    steps: gradient steps of the auxiliary copy ``z`` on ``f(x, .)`` per call (warm-started:
        ``z`` is method state, started at the lower variables).
    lr: their step size.
    """

    lam: float = 1.0
    lam_step: float = 0.1
    lam_max: float = 100.0
    steps: int = 1
    lr: float = 0.1

    def __post_init__(self) -> None:
        check_positive("lam", self.lam)
        check_positive("lam_step", self.lam_step, allow_zero=True)
        check_positive("lam_max", self.lam_max)
        if self.lam_max < self.lam:
            raise OptionError(f"option lam_max ({self.lam_max}) must be >= lam ({self.lam})")
        check_positive("steps", self.steps, integer=True)
        check_positive("lr", self.lr)

    def multiplier(self, k: int) -> float:
        """``lam_k = min(lam + lam_step * k, lam_max)`` at call ``k`` (0-based)."""
        return min(self.lam + self.lam_step * k, self.lam_max)


class F2SA(StatefulMethod):
    """F2SA: penalty direction with a growing multiplier and a warm-started auxiliary copy ``z``."""

    name = "f2sa"
    Config = F2SAConfig
    updates_lower = True

    def compute(self, ctx: Context) -> tuple[TensorDict, dict[str, Any]]:
        cfg = self.config
        z = descend(ctx, self._aux(ctx.y), cfg.steps, cfg.lr)
        self.aux = z
        grads, diag = penalty_directions(ctx, z, cfg.multiplier(self.iteration))
        self.iteration += 1
        diag["z_dist"] = float(norm({k: ctx.y[k].detach() - z[k] for k in z}))
        return grads, diag
