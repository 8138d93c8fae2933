"""Stochastic implicit methods with warm-started lower steps between calls: ``stocbio``, ``amigo``.

Each call is one upper iteration at the current ``(x_k, y_k)`` on one lower and one upper batch:
the hypergradient estimate ``grad_x F - H_xy v`` with ``v`` approximating ``H_yy^-1 grad_y F``.
The lower variables are not re-solved: the loop's lower steps after each upper step (``T``
stochastic steps from where ``y`` is, at the new ``x``: ``BilevelLoop(lower_steps=T)``,
``LowerLevel(steps=T)``) are the papers' warm-started inner loop, so over the iterations the
loop runs ``T`` lower steps, then the hypergradient at the reached ``y``, then the upper step.

* ``stocbio`` (Ji, Yang, Liang, ICML 2021): ``v = alpha * sum_{q=0..Q} (I - alpha H_yy)^q grad_y F``,
  the truncated Neumann series, from 0 at every call (``Q`` products). The paper draws a fresh
  Hessian minibatch for each factor; here every factor uses the call's lower batch. Truncation
  biases ``v`` by ``(I - alpha H_yy)^(Q+1) H_yy^-1 grad_y F``: up to ``(1 - alpha mu)^(Q+1)``
  relatively, ``mu`` the smallest eigenvalue of ``H_yy``.
* ``amigo`` (Arbel and Mairal, ICLR 2022, amortized implicit differentiation): ``v`` is method
  state, warm-started from the previous call's and moved by ``steps`` stochastic gradient steps
  on the quadratic ``0.5 v'H_yy v - v'grad_y F``: ``v <- v - lr (H_yy v - grad_y F)``; the
  hypergradient uses the ``v`` so reached. The warm start makes the error of ``v`` shrink over
  the iterations instead of being reset (at a fixed point it is the exact solution).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..base import check_positive
from ..solvers import neumann_series
from ..tensors import TensorDict
from .implicit import _Implicit


@dataclass
class StocBiOConfig:
    """Options of ``stocbio``.

    iters: ``Q``, the Neumann terms after the first (``Q`` Hessian-vector products per call).
    alpha: ``eta``, the series step; needs ``0 < alpha < 2 / lambda_max(H_yy)``.
    """

    iters: int = 20
    alpha: float = 0.1

    def __post_init__(self) -> None:
        check_positive("iters", self.iters, integer=True, allow_zero=True)
        check_positive("alpha", self.alpha)


class StocBiO(_Implicit):
    """StocBiO: the Neumann estimate of ``H_yy^-1 grad_y F`` from 0 at each call (no state)."""

    name = "stocbio"
    Config = StocBiOConfig
    warm = False

    def _solve(self, hvp, b: TensorDict, x0: TensorDict | None) -> tuple[TensorDict, dict[str, Any]]:
        v = neumann_series(hvp, b, self.config.iters, self.config.alpha)
        return v, {"neumann_terms": self.config.iters + 1, "hvps": self.config.iters}


@dataclass
class AmIGOConfig:
    """Options of ``amigo``.

    steps: gradient steps of ``v`` per call (Hessian-vector products per call).
    lr: their step size; needs ``lr < 2 / lambda_max(H_yy)``.
    """

    steps: int = 10
    lr: float = 0.1

    def __post_init__(self) -> None:
        check_positive("steps", self.steps, integer=True)
        check_positive("lr", self.lr)


class AmIGO(_Implicit):
    """AmIGO: ``v`` warm-started across calls (method state) and moved by a few gradient steps."""

    name = "amigo"
    Config = AmIGOConfig
    warm = True

    def _solve(self, hvp, b: TensorDict, x0: TensorDict | None) -> tuple[TensorDict, dict[str, Any]]:
        # ``steps`` Richardson steps from x0 are the gradient steps on the quadratic; from 0 the
        # first step is ``lr * b`` and needs no product
        n = self.config.steps
        v = neumann_series(hvp, b, n - 1, self.config.lr, x0=x0)
        return v, {"v_steps": n, "hvps": n if x0 is not None else n - 1}
