"""Meta-learning as bilevel optimization: ``maml``, ``fomaml``, ``metasgd``, ``reptile``, ``imaml``.

The upper variables hold, for every lower variable ``k`` (shape ``S_k``), the initialisation
``theta_k`` (shape ``S_k``) under the name ``init/<k>``: a ``BilevelProblem`` cannot give an upper
and a lower variable one name. Pass it among the upper variables, or let ``setup`` add it as an
auxiliary upper variable initialised to the lower variable's value at the first call (as ``iaptt``
adds its initial point; a loop optimises it with the upper variables and checkpoints it). The
inner problem starts at ``y_0 = theta`` (the lower variables' own values are not read) and takes
``steps`` updates of the lower loss ``f`` on the lower batch (support set); the upper loss ``F`` is
taken at ``y_K`` on the upper batch (query set). Upper variables other than ``init/<k>`` (and
``metasgd``'s ``lr/<k>``) are hyper-parameters the losses read; they get their gradient too.
In a ``BilevelLoop`` the lower step sets the lower variables to ``theta`` (``lower_values``) instead
of training them, so the network they belong to holds the learned initialisation.

The inner updates of ``maml``, ``fomaml`` and ``reptile`` are plain steps ``y <- y - lr * grad_y f``,
or the lower optimizer's rule (SGD, Adam, AdamW: ``rule_for``) from a fresh state (each task's
inner loop is a new run: the optimizer's momentum buffers or moments are not used). ``metasgd``
and ``imaml`` take plain gradient steps by definition and do not use a lower optimizer.

A meta-batch: ``Tasks([support_1, ..., support_n])`` as the lower batch and ``Tasks([query_1, ...,
query_n])`` as the upper batch. Every method then runs each task separately (its own inner loop,
its own clone of the buffers) and returns the mean over the tasks of the gradients and of the
diagnostics, with ``tasks = n``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor

from ..base import Context, Method, check_positive
from ..lower_step import Rule, SGDRule, rule_for, unroll
from ..problem import BilevelProblem
from ..solvers import conjugate_gradient
from ..tensors import TensorDict, axpy, cloned, detached, grad, norm, scale, vjp
from .unrolled import UnrollConfig

INIT, LR = "init/", "lr/"


class Tasks(list):
    """A meta-batch: one lower (support) or upper (query) batch per task, in task order."""


@dataclass
class MAMLConfig(UnrollConfig):
    """Options of ``maml``, ``fomaml`` and ``reptile``: ``steps`` inner updates from ``theta``; ``lr`` as
    ``rad``'s (the lower optimizer's rule with this learning rate, given one; ``None``: the lower
    optimizer's learning rate, required without one)."""

    steps: int = 5


@dataclass
class MetaSGDConfig(MAMLConfig):
    """Options of ``metasgd``: ``steps`` as ``maml``; ``lr`` the step size of the lower variables
    without an upper variable ``lr/<k>`` (a number: the steps are plain gradient steps)."""

    lr: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("lr", self.lr)


@dataclass
class IMAMLConfig:
    """Options of ``imaml``.

    lam: weight of the proximal term ``lam/2 ||y - theta||^2`` of the inner problem.
    steps, lr: plain gradient steps on ``f(y) + lam/2 ||y - theta||^2`` from ``theta``
        (converging for ``lr < 2 / (lambda_max(H_yy) + lam)``).
    cg_iters: maximum conjugate-gradient iterations (Hessian-vector products) for
        ``(I + H_yy/lam) v = grad_y F``.
    cg_tol: stop early at relative residual ``cg_tol`` (0 runs all ``cg_iters``).
    """

    lam: float = 1.0
    steps: int = 20
    lr: float = 0.1
    cg_iters: int = 10
    cg_tol: float = 1e-10

    def __post_init__(self) -> None:
        check_positive("lam", self.lam)
        check_positive("steps", self.steps, integer=True)
        check_positive("lr", self.lr)
        check_positive("cg_iters", self.cg_iters, integer=True)
        check_positive("cg_tol", self.cg_tol, allow_zero=True)


@dataclass
class PerParameterSGD:
    """Meta-SGD's update ``y_k <- y_k - rates_k * g_k`` (elementwise; ``rates_k`` shaped like
    ``y_k``), ``y_k <- y_k - lr * g_k`` for the names without a rate. No state."""

    lr: float
    rates: TensorDict

    def initial_state(self) -> None:
        return None

    def step(self, y: TensorDict, g: TensorDict, state: None) -> tuple[TensorDict, None]:
        return {k: yk - self.rates.get(k, self.lr) * g[k] for k, yk in y.items()}, None


def _theta(ctx: Context) -> TensorDict:
    """The initialisation, by lower name (the leaves of ``ctx.x``, shapes of the lower variables)."""
    return {k: ctx.x[INIT + k] for k in ctx.y}


def _losses(losses: list[Tensor], upper: Tensor) -> dict[str, Any]:
    """Diagnostics: lower loss at ``theta`` and before the last step, upper loss at ``y_K``."""
    return {"lower_loss": float(losses[0]), "lower_loss_final": float(losses[-1]),
            "upper_loss": float(upper.detach())}


class _Meta(Method):
    """Adds the missing ``init/<k>`` variables, checks the prefixed ones, runs the tasks of a
    meta-batch; subclasses implement ``_task`` (one task: gradients by upper name, diagnostics)."""

    prefixes: ClassVar[tuple[str, ...]] = (INIT,)  # upper names that must name a lower variable

    def setup(self, problem: BilevelProblem) -> None:
        for k, y in problem.lower.items():
            if INIT + k not in problem.upper and INIT + k not in problem.auxiliary:
                problem.auxiliary[INIT + k] = y.detach().clone().requires_grad_(True)
        for name, t in problem.upper_variables().items():
            prefix = next((p for p in self.prefixes if name.startswith(p)), None)
            if prefix is None:
                continue
            low = problem.lower.get(name[len(prefix):])
            if low is None:
                raise ValueError(f"{self.name}: upper variable {name!r} names no lower variable "
                                 f"(lower: {', '.join(sorted(problem.lower))})")
            if t.shape != low.shape:
                raise ValueError(f"{self.name}: upper variable {name!r} has shape {tuple(t.shape)}, "
                                 f"its lower variable {tuple(low.shape)}")

    def lower_values(self, problem: BilevelProblem) -> TensorDict:
        """The initialisation ``theta``: a loop sets the lower variables to it instead of training them."""
        x = problem.upper_variables()
        return {k: x[INIT + k] for k in problem.lower}

    def compute(self, ctx: Context) -> tuple[TensorDict, dict[str, Any]]:
        lower, upper = ctx.lower_batch, ctx.upper_batch
        if not isinstance(lower, Tasks) and not isinstance(upper, Tasks):
            return self._task(ctx)
        if not (isinstance(lower, Tasks) and isinstance(upper, Tasks)) or len(lower) != len(upper) or not lower:
            raise ValueError(f"{self.name}: a meta-batch is Tasks of lower batches and Tasks of as many "
                             "upper batches (at least one)")
        results = [self._task(dataclasses.replace(ctx, lower_batch=s, upper_batch=q, buffers=cloned(ctx.buffers)))
                   for s, q in zip(lower, upper)]
        n = len(results)
        grads = {k: sum(g[k] for g, _ in results) / n for k in ctx.x}
        diagnostics = {k: sum(d[k] for _, d in results) / n for k in results[0][1]}
        return grads, {**diagnostics, "tasks": n}

    def _task(self, ctx: Context) -> tuple[TensorDict, dict[str, Any]]:
        raise NotImplementedError


class MAML(_Meta):
    """MAML: reverse mode through the ``steps`` inner updates from ``theta``: the exact
    ``dF(y_K)/d theta`` and ``dF(y_K)/dx`` for the hyper-parameters (memory grows with steps)."""

    name = "maml"
    Config = MAMLConfig

    def _rule(self, ctx: Context) -> Rule:
        return rule_for(ctx.lower_optimizer, ctx.problem.lower, self.config.lr, self.name)

    def _task(self, ctx: Context) -> tuple[TensorDict, dict[str, Any]]:
        y, _, losses = unroll(ctx.f, _theta(ctx), self._rule(ctx), self.config.steps, differentiable=True)
        upper = ctx.F(y)
        return grad(upper, ctx.x), _losses(losses, upper)


class MetaSGD(MAML):
    """Meta-SGD: MAML with plain inner steps whose step size is per parameter: an upper variable
    ``lr/<k>`` (shape of lower variable ``k``) is the step size of ``k`` and gets its gradient
    through the unroll; the config's ``lr`` serves the lower names without one."""

    name = "metasgd"
    Config = MetaSGDConfig
    prefixes = (INIT, LR)

    def _rule(self, ctx: Context) -> Rule:
        return PerParameterSGD(self.config.lr, {k: ctx.x[LR + k] for k in ctx.y if LR + k in ctx.x})


class FOMAML(_Meta):
    """First-order MAML: inner updates without a graph; ``theta`` gets ``grad_y F(y_K)``
    (``d y_K / d theta`` taken as the identity) plus ``F``'s own partial in ``theta``, the
    other upper variables ``F``'s partial ``d_x F(x, y_K)`` (the path through the inner updates
    dropped)."""

    name = "fomaml"
    Config = MAMLConfig

    def _init_grad(self, partial: Tensor, gy: Tensor, theta: Tensor, y: Tensor) -> Tensor:
        """The gradient for ``theta_k`` from ``F``'s partials in ``theta_k`` and ``y_k`` at ``y_K``."""
        return partial + gy

    def _task(self, ctx: Context) -> tuple[TensorDict, dict[str, Any]]:
        cfg = self.config
        rule = rule_for(ctx.lower_optimizer, ctx.problem.lower, cfg.lr, self.name)
        x_fixed = detached(ctx.x)
        theta = detached(_theta(ctx))
        y, _, losses = unroll(lambda yy: ctx.f(yy, x_fixed), theta, rule, cfg.steps, differentiable=False)
        y = detached(y, requires_grad=True)
        upper = ctx.F(y)
        gx, gy = ctx.partials(upper, y)
        for k in y:
            gx[INIT + k] = self._init_grad(gx[INIT + k], gy[k], theta[k], y[k].detach())
        return gx, _losses(losses, upper)


class Reptile(FOMAML):
    """Reptile: ``theta - y_K`` as the gradient for ``theta`` (the query loss is not used for it;
    ``upper_loss`` is reported at ``y_K``); the other upper variables get ``d_x F(x, y_K)`` as in
    ``fomaml``."""

    name = "reptile"

    def _init_grad(self, partial: Tensor, gy: Tensor, theta: Tensor, y: Tensor) -> Tensor:
        return theta - y


class IMAML(_Meta):
    """Implicit MAML: the inner problem ``min_y f(y) + lam/2 ||y - theta||^2`` solved
    approximately by ``steps`` gradient steps from ``theta`` to ``y_K``; at its solution
    ``dy/dtheta = (I + H/lam)^-1`` (``H = H_yy f``) and ``dy/dx = -(H + lam I)^-1 H_yx``, so with
    ``v = (I + H/lam)^-1 grad_y F(y_K)`` (conjugate gradient on Hessian-vector products) ``theta``
    gets ``v`` and every upper variable ``d_x F - H_xy v / lam`` besides. Memory does not grow
    with ``steps``. Diagnostics: ``lower_loss_final`` is the proximal objective before the last
    step, ``inner_grad_norm`` its gradient norm at ``y_K`` (how well the inner problem is solved)."""

    name = "imaml"
    Config = IMAMLConfig

    def _task(self, ctx: Context) -> tuple[TensorDict, dict[str, Any]]:
        cfg = self.config
        x_fixed = detached(ctx.x)
        theta = detached(_theta(ctx))

        def proximal(yy: TensorDict) -> Tensor:
            return ctx.f(yy, x_fixed) + cfg.lam / 2 * sum(((yy[k] - theta[k]) ** 2).sum() for k in yy)

        y, _, losses = unroll(proximal, theta, SGDRule(lr=cfg.lr), cfg.steps, differentiable=False)
        y = detached(y, requires_grad=True)
        upper = ctx.F(y)
        gx, gy = ctx.partials(upper, y)
        gyf = grad(ctx.f(y), y, create_graph=True)

        def matvec(v: TensorDict) -> TensorDict:  # (I + H/lam) v
            return axpy(1.0 / cfg.lam, vjp(gyf, y, v, retain_graph=True), v)

        v, iters, residual = conjugate_gradient(matvec, gy, cfg.cg_iters, cfg.cg_tol)
        mixed = vjp(gyf, ctx.x, scale(1.0 / cfg.lam, v))
        grads = {k: gx[k] - mixed[k] for k in ctx.x}
        for k in y:
            grads[INIT + k] = grads[INIT + k] + v[k]
        stationarity = axpy(cfg.lam, axpy(-1.0, theta, {k: t.detach() for k, t in y.items()}), gyf)
        return grads, {**_losses(losses, upper), "cg_iters": iters, "residual": residual,
                       "inner_grad_norm": float(norm(stationarity))}
