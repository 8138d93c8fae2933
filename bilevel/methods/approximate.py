"""The applications' own hypergradient estimators.

* ``ias``: TIMFusion's Implicit Architecture Search (Liu et al., TPAMI 2023). The implicit
  hypergradient ``d_x F - H_xy H_yy^-1 d_y F`` with both second derivatives of ``f`` replaced by
  their Gauss-Newton (outer product) forms ``H_yy ~ g g^T``, ``H_xy ~ d_x f g^T`` (``g = grad_y f``)
  and the pseudo-inverse of the rank-one ``H_yy``: ``H_yy^+ d_y F = g <g, d_y F> / ||g||^4``, so

      dF/dx ~ d_x F - s * d_x f,      s = <grad_y f, d_y F> / ||grad_y f||^2

  No virtual step, no Hessian-vector product: one extra gradient of ``f``. The sign is the
  derivation's; the released search code adds the term instead (and scales it by the lower
  learning rate): ``scale`` reproduces that factor (``scale=-lr``), the default 1 is the
  derivation. Exact when the lower variable is a scalar and ``f = a/2 (y - h(x))^2`` (then
  ``d_x f / grad_y f = -h'(x) = H_xy / H_yy``); a term of ``f`` in ``x`` alone breaks this
  (``d_x f`` stays nonzero at the lower solution while ``s ~ 1/||grad_y f||``: the estimate
  blows up as the lower problem is solved; see the many-solution table in docs/library.md).
* ``fdhg``: the hyper-parameter gradient of the bilevel registration work (Liu et al., TPAMI 2021,
  "learning deformable image registration from optimization"; its public hyper-optimizer):
  one virtual lower step (following the lower SGD optimizer's momentum and weight decay), then
  ``d_x F(x, y') - xi H_xy d_y F(x, y')`` with the mixed product by a central finite difference
  of ``d_x f`` at ``y +/- r v / ||v||``. That is DARTS's second-order estimator with the finite
  difference fixed; it is ``darts2`` with ``hvp="finite_difference"``, under the name and option
  (``r``) of the registration work.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..base import Context, Method, OptionError, check_positive
from ..tensors import TensorDict, dot
from .one_step import Darts2


@dataclass
class IASConfig:
    """Options of ``ias``.

    scale: factor of the implicit term (1: the derivation ``d_x F - s d_x f``).
    eps: added to ``||grad_y f||^2`` in the ratio ``s`` (damps it near a lower solution; at
        ``grad_y f = 0`` exactly the term is 0 in any case). The default 0 keeps the estimator
        exact on its family, where ``s d_x f`` stays finite as ``grad_y f -> 0``.
    """

    scale: float = 1.0
    eps: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.scale, (int, float)) or isinstance(self.scale, bool):
            raise OptionError(f"option scale must be a number, got {self.scale!r}")
        check_positive("eps", self.eps, allow_zero=True)


class IAS(Method):
    """TIMFusion's IAS: ``d_x F - s d_x f`` with ``s = <grad_y f, d_y F> / ||grad_y f||^2``."""

    name = "ias"
    Config = IASConfig

    def compute(self, ctx: Context) -> tuple[TensorDict, dict[str, Any]]:
        cfg = self.config
        upper = ctx.F(ctx.y)
        Fx, Fy = ctx.partials(upper, ctx.y)
        lower = ctx.f(ctx.y)
        fx, fy = ctx.partials(lower, ctx.y)
        gg = dot(fy, fy)
        s = dot(fy, Fy) / (gg + cfg.eps) if float(gg) + cfg.eps > 0 else gg * 0.0  # 0/0 -> 0
        return {k: Fx[k] - cfg.scale * s * fx[k] for k in Fx}, {
            "lower_loss": float(lower.detach()), "upper_loss": float(upper.detach()), "ratio": float(s)}


@dataclass
class FDHGConfig:
    """Options of ``fdhg``.

    xi: virtual step size; ``None`` takes the lower optimizer's learning rate (as the
        registration work does), or 0.01 without a lower optimizer.
    r: the finite-difference radius is ``r / ||v||`` (the registration work: 0.01).
    """

    xi: float | None = None
    r: float = 0.01

    def __post_init__(self) -> None:
        if self.xi is not None:
            check_positive("xi", self.xi, allow_zero=True)
        check_positive("r", self.r)

    @property
    def hvp(self) -> str:
        return "finite_difference"

    @property
    def eps_scale(self) -> float:
        return self.r


class FDHG(Darts2):
    """Finite-difference hyper-parameter gradient of the registration work (``darts2``'s rule)."""

    name = "fdhg"
    Config = FDHGConfig
