"""Implicit methods: the implicit function theorem at the current lower variables.

At a lower solution ``grad_y f(x, y*) = 0``, so ``dy*/dx = -H_yy^-1 H_yx`` and the hypergradient is
``d_x F - H_xy v`` with ``H_yy v = d_y F``. ``cg`` solves for ``v`` by conjugate gradient,
``neumann`` by a truncated Neumann series. Both use Hessian-vector products of ``f`` (double
backward through one stored graph of ``grad_y f``) and keep no lower trajectory.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..base import Context, Method, check_positive
from ..solvers import conjugate_gradient, neumann_series
from ..tensors import TensorDict, full_precision, grad, norm, vjp


@dataclass
class CGConfig:
    """Options of ``cg``.

    iters: maximum conjugate-gradient iterations (Hessian-vector products).
    tol: stop early when the relative residual ``||H v - d_y F|| / ||d_y F||`` is below it
        (0 runs all ``iters``, with no device synchronisation).
    """

    iters: int = 20
    tol: float = 1e-10

    def __post_init__(self) -> None:
        check_positive("iters", self.iters, integer=True)
        check_positive("tol", self.tol, allow_zero=True)


@dataclass
class NeumannConfig:
    """Options of ``neumann``.

    iters: number of terms after the first (``K`` in ``alpha * sum_{j<=K} (I - alpha H)^j b``).
    alpha: series step; needs ``0 < alpha < 2 / lambda_max(H_yy)`` to converge.
    """

    iters: int = 20
    alpha: float = 0.01

    def __post_init__(self) -> None:
        check_positive("iters", self.iters, integer=True, allow_zero=True)
        check_positive("alpha", self.alpha)


class _Implicit(Method):
    def _solve(self, hvp, b: TensorDict) -> tuple[TensorDict, dict[str, Any]]:
        raise NotImplementedError

    def compute(self, ctx: Context) -> tuple[TensorDict, dict[str, Any]]:
        # Under a caller's mixed precision the whole system H_yy v = d_y F is float32: its right-hand
        # side, the graph the Hessian-vector products run through, the solve. A solve amplifies a
        # perturbed right-hand side by up to H_yy's condition number (20 CG iterations on a conv toy
        # with bf16 forward passes: an error 32 times the float32 hypergradient's norm).
        with full_precision(ctx.y):
            return self._compute(ctx)

    def _compute(self, ctx: Context) -> tuple[TensorDict, dict[str, Any]]:
        y, x = ctx.y, ctx.x
        upper = ctx.F(y, x)
        both = grad(upper, {**x, **{"\0" + k: v for k, v in y.items()}})
        gx = {k: both[k] for k in x}
        gy = {k: both["\0" + k] for k in y}
        lower = ctx.f(y, x)
        gyf = grad(lower, y, create_graph=True)

        def hvp(v: TensorDict) -> TensorDict:
            return vjp(gyf, y, v, retain_graph=True)

        v, diag = self._solve(hvp, gy)
        mixed = vjp(gyf, x, v)
        diag.update(lower_loss=float(lower.detach()), upper_loss=float(upper.detach()),
                    lower_grad_norm=float(norm(gyf)), v_norm=float(norm(v)))
        return {k: gx[k] - mixed[k] for k in x}, diag


class CG(_Implicit):
    """Implicit differentiation with ``H_yy v = d_y F`` solved by conjugate gradient."""

    name = "cg"
    Config = CGConfig

    def _solve(self, hvp, b: TensorDict) -> tuple[TensorDict, dict[str, Any]]:
        v, iters, residual = conjugate_gradient(hvp, b, self.config.iters, self.config.tol)
        return v, {"cg_iters": iters, "residual": residual}


class Neumann(_Implicit):
    """Implicit differentiation with ``H_yy^-1 d_y F`` approximated by a truncated Neumann series."""

    name = "neumann"
    Config = NeumannConfig

    def _solve(self, hvp, b: TensorDict) -> tuple[TensorDict, dict[str, Any]]:
        v = neumann_series(hvp, b, self.config.iters, self.config.alpha)
        return v, {"neumann_terms": self.config.iters + 1}


