"""One-step methods: first-order (``darts1``) and DARTS's second-order approximation (``darts2``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..base import Context, Method, OptionError, check_positive
from ..lower_step import rule_for
from ..tensors import TensorDict, axpy, detached, dot, full_precision, grad, norm, vjp


@dataclass
class Darts1Config:
    """``darts1`` has no options: it returns ``d_x F(x, y)`` at the current ``y``."""


class Darts1(Method):
    """First-order approximation: ``dF/dx ~ d_x F(x, y)`` (treats ``y`` as independent of ``x``)."""

    name = "darts1"
    Config = Darts1Config

    def compute(self, ctx: Context) -> tuple[TensorDict, dict[str, Any]]:
        upper = ctx.F(ctx.y)
        return grad(upper, ctx.x), {"upper_loss": float(upper.detach())}


@dataclass
class Darts2Config:
    """Options of ``darts2``.

    xi: virtual step size; ``None`` takes the lower optimizer's learning rate (as DARTS does),
        or 0.01 without a lower optimizer.
    hvp: ``"finite_difference"`` (central difference of ``d_x f`` at ``y +/- eps*w``, DARTS) or
        ``"exact"`` (double backward); ``w`` as in ``Darts2``.
    eps_scale: the finite-difference points lie at distance ``eps_scale`` from ``y``
        (``eps = eps_scale / ||w||``; DARTS: 0.01, with ``w`` parallel to ``v``).
    """

    xi: float | None = None
    hvp: str = "finite_difference"
    eps_scale: float = 0.01

    def __post_init__(self) -> None:
        if self.xi is not None:
            check_positive("xi", self.xi, allow_zero=True)
        if self.hvp not in ("finite_difference", "exact"):
            raise OptionError(f"option hvp must be 'finite_difference' or 'exact', got {self.hvp!r}")
        check_positive("eps_scale", self.eps_scale)


class Darts2(Method):
    """DARTS second order: virtual step ``y' = step(y, grad_y f(x, y))`` (plain ``y - xi * g``, or
    the lower optimizer's rule from its current state: SGD momentum and weight decay, Adam/AdamW
    moments), then ``dF(x, y'(x))/dx = d_x F(x, y') + H_xy w`` with ``v = d_y F(x, y')``,
    ``w = (d y' / d g)^T v`` (one vector-Jacobian product through the elementwise rule; ``-xi * v``
    for plain steps, ``-xi * c * v`` for SGD with momentum) and ``H_xy w`` the mixed second
    derivative of ``f`` at ``y`` applied to ``w``: by central finite difference of ``d_x f`` at
    ``y +/- eps * w``, ``eps = eps_scale / ||w||`` (for plain steps the points ``y -/+
    eps_scale * v / ||v||`` of DARTS), or exactly by double backward."""

    name = "darts2"
    Config = Darts2Config

    def compute(self, ctx: Context) -> tuple[TensorDict, dict[str, Any]]:
        cfg = self.config
        xi = cfg.xi
        if xi is None:
            xi = 0.01 if ctx.lower_optimizer is None else None
        rule = rule_for(ctx.lower_optimizer, ctx.problem.lower, xi, "darts2")
        xi = rule.lr
        y = ctx.y
        x_fixed = detached(ctx.x)
        lower = ctx.f(y, x_fixed)
        g = detached(grad(lower, y), requires_grad=True)
        with torch.enable_grad():
            y_step, _ = rule.step(detached(y), g, rule.initial_state())
        y_virtual = detached(y_step, requires_grad=True)
        upper = ctx.F(y_virtual, ctx.x)
        gx, v = ctx.partials(upper, y_virtual)
        w = vjp(y_step, g, v)  # (d y'/d g)^T v: elementwise rule, no second derivative of f
        w_norm = norm(w)
        diag: dict[str, Any] = {"lower_loss": float(lower.detach()), "upper_loss": float(upper.detach()),
                                "xi": xi, "v_norm": float(norm(v)), "w_norm": float(w_norm)}
        if float(w_norm) == 0.0:
            return gx, diag
        if cfg.hvp == "exact":
            gy = grad(ctx.f(y, ctx.x), y, create_graph=True)
            mixed = grad(dot(gy, w), ctx.x)
            return {k: gx[k] + mixed[k] for k in ctx.x}, diag
        eps = cfg.eps_scale / diag["w_norm"]
        with torch.no_grad():
            y_plus = axpy(eps, w, y)
            y_minus = axpy(-eps, w, y)
        # Two backward passes, each graph freed before the next forward. One backward pass of
        # f(y+) - f(y-) gives the same difference but keeps both graphs alive at once: where x
        # sits inside the network (DARTS) that is a second set of activations (peak memory
        # +17% on a NAS-like toy, CPU time -1% on benchmarks/hypergrad.py's CNN).
        with full_precision(y):  # under mixed precision the difference would cancel to noise
            g_plus = grad(ctx.f(y_plus, ctx.x), ctx.x)
            g_minus = grad(ctx.f(y_minus, ctx.x), ctx.x)
        diag["eps"] = eps
        step = 1.0 / (2 * eps)  # gx + (g_plus - g_minus) / (2 eps), one fused op
        return {k: torch.add(gx[k], g_plus[k] - g_minus[k], alpha=step) for k in ctx.x}, diag
