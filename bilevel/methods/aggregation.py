"""Methods beyond the lower-level singleton: Bi-level Descent Aggregation (``bda``) and
IAPTT-GM (``iaptt``: initialization auxiliary + pessimistic trajectory truncation)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..base import Context, Method, OptionError, check_positive
from ..lower_step import rule_for, unroll
from ..problem import BilevelProblem
from ..tensors import TensorDict, detached, grad
from ..trajectory import trajectory_gradient
from .unrolled import RADConfig

INIT_PREFIX = "iaptt_init/"


@dataclass
class BDAConfig(RADConfig):
    """Options of ``bda`` (Liu et al., ICML 2020).

    steps: lower updates unrolled (and differentiated) from the current lower variables.
    lr: ``s_l``, the step on the lower gradient; ``None`` takes the lower optimizer's.
    checkpoint_every: as ``rad``'s (``None``: keep the whole graph; ``K``: recompute segments of
        ``K`` steps in the backward pass).
    upper_lr: ``s_u``, the step on the upper gradient ``grad_y F``.
    mu: aggregation weight at the first step, in (0, 1).
    mu_decay: ``None`` for ``mu_k = mu / (k + 1)`` (the paper's schedule: ``mu_k -> 0``,
        ``sum mu_k = inf``); a number ``r`` in (0, 1] for ``mu_k = mu * r**k``.
    Update: ``y <- y - (mu_k * s_u * grad_y F(x, y) + (1 - mu_k) * s_l * grad_y f(x, y))``; with a
    lower optimizer, its rule (momentum, Adam moments) is applied to the direction
    ``(mu_k * s_u / s_l) * grad_y F + (1 - mu_k) * grad_y f`` with learning rate ``s_l``.
    """

    upper_lr: float = 0.1
    mu: float = 0.5
    mu_decay: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("upper_lr", self.upper_lr, allow_zero=True)
        if not 0.0 < self.mu < 1.0:
            raise OptionError(f"option mu must be in (0, 1), got {self.mu!r}")
        if self.mu_decay is not None and not 0.0 < self.mu_decay <= 1.0:
            raise OptionError(f"option mu_decay must be in (0, 1] or None, got {self.mu_decay!r}")

    def weight(self, k: int) -> float:
        """Aggregation weight ``mu_k`` of step ``k`` (0-based)."""
        return self.mu / (k + 1) if self.mu_decay is None else self.mu * self.mu_decay ** k


class BDA(Method):
    """Bi-level Descent Aggregation: the lower trajectory descends an aggregation of the upper and
    lower gradients, and the hypergradient backpropagates through it."""

    name = "bda"
    Config = BDAConfig

    def compute(self, ctx: Context) -> tuple[TensorDict, dict[str, Any]]:
        cfg = self.config
        rule = rule_for(ctx.lower_optimizer, ctx.problem.lower, cfg.lr, self.name)
        x_fixed = detached(ctx.x)
        first: list[float] = []

        def advance(k: int, y: TensorDict, state: Any, differentiable: bool) -> tuple[TensorDict, Any]:
            mu = cfg.weight(k)
            x = ctx.x if differentiable else x_fixed
            if not differentiable:
                y = detached(y, requires_grad=True)
            lower = ctx.f(y, x)
            upper = ctx.F(y, x)
            ratio = mu * cfg.upper_lr / rule.lr
            # ratio * grad_y F + (1 - mu) * grad_y f as one backward pass of the weighted sum
            g = grad(ratio * upper + (1.0 - mu) * lower, y, create_graph=differentiable)
            if k == 0 and not first:
                first.extend((float(lower.detach()), float(upper.detach())))
            if differentiable:
                return rule.step(y, g, state)
            with torch.no_grad():
                return rule.step(y, g, state)

        grads, upper = trajectory_gradient(advance, ctx.y, rule.initial_state(), cfg.steps, ctx.F, ctx.x,
                                           cfg.checkpoint_every)
        return grads, {"lower_loss": first[0], "upper_loss": first[1],
                       "upper_loss_final": float(upper.detach())}


@dataclass
class IAPTTConfig(RADConfig):
    """Options of ``iaptt`` (Liu et al., ICML 2021).

    steps: length ``T`` of the lower trajectory.
    lr: lower step size (``None``: the lower optimizer's).
    checkpoint_every: as ``rad``'s, for the ``k*`` differentiated steps.
    auxiliary_init: start the trajectory from a learnable initial point ``z`` (an auxiliary upper
        variable per lower variable, named ``iaptt_init/<name>``, initialised to the lower
        variables at the first call); ``False`` starts from the current lower variables.
    init_optimizer, init_lr, init_momentum: the initial point's own optimizer
        (``"sgd"`` or ``"adam"``; no weight decay), built by ``auxiliary_optimizer``.
    Pessimistic truncation: the gradient is that of ``F(x, y_k*)`` with
    ``k* = argmax_{1<=k<=T} F(x, y_k)``, backpropagated through the first ``k*`` steps. The
    trajectory is first run without a graph to find ``k*``, then its first ``k*`` steps are run
    again with one: the graph (memory) follows ``k*``, not ``T``, for ``T + k*`` lower steps.
    """

    auxiliary_init: bool = True
    init_optimizer: str = "sgd"
    init_lr: float = 0.01
    init_momentum: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.init_optimizer not in ("sgd", "adam"):
            raise OptionError(f"option init_optimizer must be 'sgd' or 'adam', got {self.init_optimizer!r}")
        check_positive("init_lr", self.init_lr)
        check_positive("init_momentum", self.init_momentum, allow_zero=True)


class IAPTT(Method):
    """IAPTT-GM: learnable initial point and pessimistic trajectory truncation.

    The initial point is one tensor per lower tensor and per method object: problems (upper
    groups) that share lower variables and one method object share one initial point."""

    name = "iaptt"
    Config = IAPTTConfig

    def __init__(self, config: IAPTTConfig) -> None:
        super().__init__(config)
        self._points: dict[int, torch.Tensor] = {}  # id(lower tensor) -> its initial point
        self._pending: list[torch.Tensor] = []  # loaded values for points not created yet

    def setup(self, problem: BilevelProblem) -> None:
        if not self.config.auxiliary_init:
            return
        for name, y in problem.lower.items():
            key = INIT_PREFIX + name
            if key in problem.auxiliary:  # created earlier, or restored by the caller
                self._points.setdefault(id(y), problem.auxiliary[key])
                continue
            point = self._points.get(id(y))
            if point is None:
                start = self._pending.pop(0) if self._pending else y.detach()
                if start.shape != y.shape:
                    raise ValueError(f"iaptt: loaded initial point of shape {tuple(start.shape)} for lower "
                                     f"variable {name!r} of shape {tuple(y.shape)}")
                point = start.detach().clone().to(y.device, y.dtype).requires_grad_(True)
                self._points[id(y)] = point
            problem.auxiliary[key] = point

    def auxiliary_optimizer(self, params: list[torch.Tensor]) -> torch.optim.Optimizer | None:
        cfg = self.config
        if not params:
            return None
        if cfg.init_optimizer == "adam":
            return torch.optim.Adam(params, lr=cfg.init_lr)
        return torch.optim.SGD(params, lr=cfg.init_lr, momentum=cfg.init_momentum)

    def state_dict(self) -> dict[str, Any]:
        return {"points": [p.detach().clone() for p in self._points.values()]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        points = list(state.get("points", []))
        if not self._points:  # before the first call: the points are created from these
            self._pending = [p.detach().clone() for p in points]
            return
        if len(points) != len(self._points):
            raise ValueError(f"iaptt state holds {len(points)} initial points, this method {len(self._points)}")
        with torch.no_grad():
            for mine, saved in zip(self._points.values(), points):
                mine.copy_(saved)

    def compute(self, ctx: Context) -> tuple[TensorDict, dict[str, Any]]:
        cfg = self.config
        rule = rule_for(ctx.lower_optimizer, ctx.problem.lower, cfg.lr, self.name)
        if cfg.auxiliary_init:
            y0 = {name: ctx.x[INIT_PREFIX + name] for name in ctx.y}
        else:
            y0 = ctx.y
        f = lambda yy: ctx.f(yy)  # noqa: E731
        x_fixed = detached(ctx.x)
        f_fixed = lambda yy: ctx.f(yy, x_fixed)  # noqa: E731  (no graph towards x)
        # pass 1, no graph: the upper loss along the trajectory, to find k*
        y, state = detached(y0), rule.initial_state()
        values = []
        for _ in range(cfg.steps):
            y, state, _ = unroll(f_fixed, y, rule, 1, differentiable=False, state=state)
            with torch.no_grad():
                values.append(ctx.F(y))
        best_k = int(torch.argmax(torch.stack(values))) + 1  # first maximiser, as a strict '>' scan
        # pass 2: the first k* steps again, with the graph

        def advance(t: int, yy: TensorDict, ss: Any, differentiable: bool) -> tuple[TensorDict, Any]:
            yy, ss, _ = unroll(f if differentiable else f_fixed, yy, rule, 1, differentiable, ss)
            return yy, ss

        grads, upper = trajectory_gradient(advance, y0, rule.initial_state(), best_k, ctx.F, ctx.x,
                                           cfg.checkpoint_every)
        return grads, {"pessimistic_step": best_k, "upper_loss": float(upper.detach()),
                       "upper_loss_final": float(values[-1])}
