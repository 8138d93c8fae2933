"""Implicit methods: the implicit function theorem at the current lower variables.

At a lower solution ``grad_y f(x, y*) = 0``, so ``dy*/dx = -H_yy^-1 H_yx`` and the hypergradient is
``d_x F - H_xy v`` with ``H_yy v = d_y F``. ``cg`` solves for ``v`` by conjugate gradient,
``neumann`` by a truncated Neumann series. Both use Hessian-vector products of ``f`` (double
backward through one stored graph of ``grad_y f``) and keep no lower trajectory.

``warm_start=True``: the solve starts from the previous call's ``v`` (kept in the method object,
``state_dict``) instead of 0. Across the calls of a search the lower variables and ``x`` move a
little per step, so ``v`` does too: ``cg`` reaches its ``tol`` in fewer products, ``neumann``'s
truncation error shrinks with every call (its Richardson steps continue the previous ones).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from ..base import Context, Method, OptionError, check_positive
from ..solvers import conjugate_gradient, neumann_series
from ..tensors import TensorDict, cloned, full_precision, grad, norm, same_layout, vjp


@dataclass
class CGConfig:
    """Options of ``cg``.

    iters: maximum conjugate-gradient iterations (Hessian-vector products).
    tol: stop early when the relative residual ``||H v - d_y F|| / ||d_y F||`` is below it
        (0 runs all ``iters``, with no device synchronisation).
    warm_start: start CG from the previous call's solution instead of 0 (one more product for
        its residual; state kept in the method object).
    """

    iters: int = 20
    tol: float = 1e-10
    warm_start: bool = False

    def __post_init__(self) -> None:
        check_positive("iters", self.iters, integer=True)
        check_positive("tol", self.tol, allow_zero=True)
        check_flag("warm_start", self.warm_start)


@dataclass
class NeumannConfig:
    """Options of ``neumann``.

    iters: number of terms after the first (``K`` in ``alpha * sum_{j<=K} (I - alpha H)^j b``).
    alpha: series step; needs ``0 < alpha < 2 / lambda_max(H_yy)`` to converge.
    warm_start: run the series' ``K + 1`` Richardson steps ``v <- v + alpha (d_y F - H v)`` from
        the previous call's ``v`` instead of 0 (``K + 1`` products; state kept in the method object).
    """

    iters: int = 20
    alpha: float = 0.01
    warm_start: bool = False

    def __post_init__(self) -> None:
        check_positive("iters", self.iters, integer=True, allow_zero=True)
        check_positive("alpha", self.alpha)
        check_flag("warm_start", self.warm_start)


def check_flag(name: str, value: Any) -> None:
    """Raise ``OptionError`` unless ``value`` is a bool."""
    if not isinstance(value, bool):
        raise OptionError(f"option {name} must be true or false, got {value!r}")


class _Implicit(Method):
    """Implicit differentiation around a linear solver ``_solve``; ``warm`` methods keep the last
    solution ``v`` (lower shapes) and start the next solve from it."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.v: TensorDict | None = None

    @property
    def warm(self) -> bool:
        """Whether ``v`` is kept and the next solve starts from it (``cg``/``neumann``: the
        ``warm_start`` option; a subclass without that option sets ``warm`` as a class attribute)."""
        return self.config.warm_start

    def _solve(self, hvp, b: TensorDict, x0: TensorDict | None) -> tuple[TensorDict, dict[str, Any]]:
        raise NotImplementedError

    def _start(self, y: TensorDict) -> TensorDict | None:
        """The previous solution (``None`` on the first call, or when not warm)."""
        if not self.warm or self.v is None:
            return None
        if not same_layout(self.v, y):
            raise ValueError(f"method {self.name!r} holds a solution for other lower variables "
                             f"({sorted(self.v)}); build a new method for this problem")
        return {k: self.v[k].to(y[k]) for k in y}

    def state_dict(self) -> dict[str, Any]:
        if not self.warm:
            return {}
        return {"v": cloned(self.v)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not self.warm:
            return super().load_state_dict(state)
        unknown = set(state) - {"v"}
        if unknown:
            raise ValueError(f"unknown state keys {sorted(unknown)} for method {self.name!r}")
        self.v = cloned(state.get("v"))

    def replicated_state(self) -> list[Tensor]:
        """The kept solution, averaged over the processes of a data-parallel loop (each solves its
        own shard's system; the mean keeps the warm starts identical)."""
        return [] if self.v is None else list(self.v.values())

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
        gx, gy = ctx.partials(upper, y)
        lower = ctx.f(y, x)
        gyf = grad(lower, y, create_graph=True)

        def hvp(v: TensorDict) -> TensorDict:
            return vjp(gyf, y, v, retain_graph=True)

        v, diag = self._solve(hvp, gy, self._start(y))
        if self.warm:
            self.v = cloned(v)
        mixed = vjp(gyf, x, v)
        diag.update(lower_loss=float(lower.detach()), upper_loss=float(upper.detach()),
                    lower_grad_norm=float(norm(gyf)), v_norm=float(norm(v)))
        return {k: gx[k] - mixed[k] for k in x}, diag


class CG(_Implicit):
    """Implicit differentiation with ``H_yy v = d_y F`` solved by conjugate gradient."""

    name = "cg"
    Config = CGConfig

    def _solve(self, hvp, b: TensorDict, x0: TensorDict | None) -> tuple[TensorDict, dict[str, Any]]:
        v, iters, residual = conjugate_gradient(hvp, b, self.config.iters, self.config.tol, x0=x0)
        return v, {"cg_iters": iters, "residual": residual, "hvps": iters + (x0 is not None)}


class Neumann(_Implicit):
    """Implicit differentiation with ``H_yy^-1 d_y F`` approximated by a truncated Neumann series."""

    name = "neumann"
    Config = NeumannConfig

    def _solve(self, hvp, b: TensorDict, x0: TensorDict | None) -> tuple[TensorDict, dict[str, Any]]:
        v = neumann_series(hvp, b, self.config.iters, self.config.alpha, x0=x0)
        return v, {"neumann_terms": self.config.iters + 1, "hvps": self.config.iters + (x0 is not None)}


