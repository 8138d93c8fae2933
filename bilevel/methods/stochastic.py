"""Single-loop stochastic methods: ``x``, ``y`` and the linear-system variable ``v`` move together.

``v`` tracks ``H_yy^-1 d_y F`` (the solution ``cg`` computes; ``H_yy``, ``H_xy`` second derivatives
of the lower loss ``f``). Each call is one iteration at ``(x_k, y_k, v_k)``, on one lower and one
upper batch, of the directions

    D_y = grad_y f(x, y)
    D_v = H_yy v - grad_y F(x, y)
    D_x = grad_x F(x, y) - H_xy v

The method steps ``v <- v - v_lr * D_v`` itself (``v`` is method state, 0 at the start), returns
``D_x`` (or its estimate) as the upper gradient and ``D_y`` as the lower direction
(``updates_lower``): the loop's optimizers step ``x`` and ``y`` from the same point ``(x_k, y_k)``,
as the papers do. The three directions are sums of terms each computed on one batch, so they are
unbiased when ``f`` and ``F`` are means over their batch. At a fixed point (``D_y = D_v = 0``)
``y = y*(x)`` and ``v = H_yy^-1 grad_y F``, where ``D_x`` is the implicit-function hypergradient.
Cost per call: one backward of ``F``, one of ``f`` with its graph, one double backward giving
``H_yy v`` and ``H_xy v`` together.

* ``soba`` (Dagréou, Ablin, Vaiter, Moreau, NeurIPS 2022): the directions as above.
* ``saba`` (same paper): each of the five terms (``grad_y f``, ``H_yy v``, ``H_xy v`` on the lower
  minibatch; ``grad_y F``, ``grad_x F`` on the upper one) through SAGA memory over a fixed
  partition of each data set into minibatches (``saga.py``: how a batch names its minibatch,
  option ``index_key``); with constant steps it converges to the exact solution, where ``soba``
  stays in a noise ball of the size of its steps. Memory: per lower minibatch two lower-sized and
  one upper-sized tensor set, per upper minibatch one of each.
* ``ma_soba`` (moving-average SOBA; Chen, Xiao, Balasubramanian 2023, "Optimal algorithms for
  stochastic bilevel optimization under relaxed smoothness conditions"): ``soba`` with the upper
  direction replaced by its moving average ``h <- (1 - theta) h + theta D_x`` (``h`` method state,
  0 at the start); the upper step uses the updated ``h``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from ..base import Context, Method, OptionError, check_positive
from ..tensors import TensorDict, cloned, full_precision, grad, norm, same_layout, vjp
from .saga import SagaMemory, batch_index


def oracles(ctx: Context, v: TensorDict) -> tuple[dict[str, TensorDict], dict[str, float]]:
    """The five terms at ``(x, y, v)``, detached: ``grad_f`` (``d_y f``, lower shapes), ``hvp``
    (``H_yy v``, lower shapes), ``cross`` (``H_xy v``, upper shapes) on the lower batch; ``grad_Fy``
    (lower shapes) and ``grad_Fx`` (upper shapes) on the upper batch. Also the two losses."""
    y, x = ctx.y, ctx.x
    upper = ctx.F(y, x)
    Fx, Fy = ctx.partials(upper, y)
    lower = ctx.f(y, x)
    gyf = grad(lower, y, create_graph=True)
    both = vjp(gyf, {**x, **{"\0" + k: t for k, t in y.items()}}, v)
    terms = {"grad_f": {k: g.detach() for k, g in gyf.items()},
             "hvp": {k: both["\0" + k] for k in y}, "cross": {k: both[k] for k in x},
             "grad_Fy": Fy, "grad_Fx": Fx}
    return terms, {"lower_loss": float(lower.detach()), "upper_loss": float(upper.detach())}


def _check_lr(cfg: Any) -> None:
    check_positive("v_lr", cfg.v_lr)


class _SingleLoop(Method):
    """The shared iteration; subclasses may replace the terms (``_estimates``) or the upper
    direction (``_upper``) and keep more state (``_extra_state``)."""

    updates_lower = True

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.v: TensorDict | None = None
        self.iteration = 0

    def _v(self, y: TensorDict) -> TensorDict:
        if self.v is None:
            self.v = {k: t.detach().new_zeros(t.shape) for k, t in y.items()}
        elif not same_layout(self.v, y):
            raise ValueError(f"method {self.name!r} holds v for other lower variables ({sorted(self.v)}); "
                             "build a new method for this problem")
        else:  # a state loaded from a checkpoint of another device
            self.v = {k: t.to(y[k]) for k, t in self.v.items()}
        return self.v

    def _estimates(self, ctx: Context, terms: dict[str, TensorDict]) -> dict[str, TensorDict]:
        return terms

    def _upper(self, dx: TensorDict) -> TensorDict:
        return dx

    def compute(self, ctx: Context) -> tuple[TensorDict, dict[str, Any]]:
        with full_precision(ctx.y):  # v's dynamics are a linear solve: keep them out of autocast
            return self._compute(ctx)

    def _compute(self, ctx: Context) -> tuple[TensorDict, dict[str, Any]]:
        v = self._v(ctx.y)
        terms, diag = oracles(ctx, v)
        t = self._estimates(ctx, terms)
        dv = {k: t["hvp"][k] - t["grad_Fy"][k] for k in v}
        dx = {k: t["grad_Fx"][k] - t["cross"][k] for k in ctx.x}
        self.v = {k: v[k] - self.config.v_lr * dv[k] for k in v}
        ctx.lower_direction = t["grad_f"]
        self.iteration += 1
        diag.update(v_norm=float(norm(v)), v_residual=float(norm(dv)), hvps=1)
        return self._upper(dx), diag

    # -- state ---------------------------------------------------------------------------
    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra(self, state: dict[str, Any]) -> None:
        pass

    def replicated_state(self) -> list[Tensor]:
        """``v`` (and running averages), averaged over the processes of a data-parallel loop."""
        return [] if self.v is None else list(self.v.values())

    def state_dict(self) -> dict[str, Any]:
        return {"v": cloned(self.v), "iteration": self.iteration, **self._extra_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        known = {"v", "iteration"} | set(self._extra_state())
        unknown = set(state) - known
        if unknown:
            raise ValueError(f"unknown state keys {sorted(unknown)} for method {self.name!r}")
        self.v = cloned(state.get("v"))
        self.iteration = int(state.get("iteration", 0))
        self._load_extra(state)


@dataclass
class SOBAConfig:
    """Options of ``soba``.

    v_lr: step size of ``v <- v - v_lr (H_yy v - grad_y F)``; the paper takes the lower step size
        (the lower optimizer's learning rate) for it. Needs ``v_lr < 2 / lambda_max(H_yy)``.
    """

    v_lr: float = 0.1

    def __post_init__(self) -> None:
        _check_lr(self)


class SOBA(_SingleLoop):
    """SOBA: one stochastic step of ``y``, ``v`` and ``x`` per call, ``v`` kept in the method."""

    name = "soba"
    Config = SOBAConfig


@dataclass
class MASOBAConfig:
    """Options of ``ma_soba``.

    v_lr: step size of ``v`` (as ``soba``).
    theta: weight of the new direction in the moving average ``h <- (1 - theta) h + theta D_x``
        (1: ``soba``); ``0 < theta <= 1``. The average lags ``D_x`` by about ``1/theta - 1``
        calls, on top of the lag of ``y`` and ``v``: a small ``theta`` needs a small upper step
        (the tests' quadratic, lower step 0.3, ``v_lr = 0.1``: at an upper step of 0.3
        ``theta = 0.1`` diverges, ``theta = 0.5`` converges).
    """

    v_lr: float = 0.1
    theta: float = 0.5

    def __post_init__(self) -> None:
        _check_lr(self)
        check_positive("theta", self.theta)
        if self.theta > 1:
            raise OptionError(f"option theta must be <= 1, got {self.theta!r}")


class MASOBA(_SingleLoop):
    """MA-SOBA: SOBA whose upper direction is a moving average ``h`` of ``D_x`` (``h`` kept)."""

    name = "ma_soba"
    Config = MASOBAConfig

    def __init__(self, config: MASOBAConfig) -> None:
        super().__init__(config)
        self.h: TensorDict | None = None

    def _upper(self, dx: TensorDict) -> TensorDict:
        th = self.config.theta
        h = self.h
        if h is not None and not same_layout(h, dx):
            raise ValueError(f"method {self.name!r} holds an average for other upper variables ({sorted(h)})")
        self.h = {k: th * d if h is None else (1 - th) * h[k].to(d) + th * d for k, d in dx.items()}
        return {k: t.clone() for k, t in self.h.items()}  # the loop may clip the gradient in place

    def replicated_state(self) -> list[Tensor]:
        return super().replicated_state() + ([] if self.h is None else list(self.h.values()))

    def _extra_state(self) -> dict[str, Any]:
        return {"h": cloned(self.h)}

    def _load_extra(self, state: dict[str, Any]) -> None:
        self.h = cloned(state.get("h"))


@dataclass
class SABAConfig:
    """Options of ``saba``.

    v_lr: step size of ``v`` (as ``soba``).
    index_key: the key (``batch[index_key]``) or attribute naming each batch's minibatch: one
        integer per minibatch of a fixed partition of the data (``saga.py``). Batches without it
        are an error; a batch of ``None`` is minibatch 0.
    """

    v_lr: float = 0.1
    index_key: str = "index"

    def __post_init__(self) -> None:
        _check_lr(self)
        if not isinstance(self.index_key, str) or not self.index_key:
            raise OptionError(f"option index_key must be a non-empty string, got {self.index_key!r}")


_LOWER_TERMS = ("grad_f", "hvp", "cross")
_UPPER_TERMS = ("grad_Fy", "grad_Fx")


def _flat(terms: dict[str, TensorDict], names: tuple[str, ...]) -> TensorDict:
    return {f"{t}\0{k}": v for t in names for k, v in terms[t].items()}


def _unflat(flat: TensorDict) -> dict[str, TensorDict]:
    out: dict[str, TensorDict] = {}
    for key, v in flat.items():
        t, _, k = key.partition("\0")
        out.setdefault(t, {})[k] = v
    return out


class SABA(_SingleLoop):
    """SABA: SOBA's five terms through SAGA memory, one table per level (kept in the method)."""

    name = "saba"
    Config = SABAConfig

    def __init__(self, config: SABAConfig) -> None:
        super().__init__(config)
        self.lower_memory = SagaMemory()
        self.upper_memory = SagaMemory()
        self._indices = (0, 0)

    def _estimates(self, ctx: Context, terms: dict[str, TensorDict]) -> dict[str, TensorDict]:
        i, j = self._indices
        out = _unflat(self.lower_memory.estimate(i, _flat(terms, _LOWER_TERMS)))
        out.update(_unflat(self.upper_memory.estimate(j, _flat(terms, _UPPER_TERMS))))
        for t in _LOWER_TERMS + _UPPER_TERMS:  # a variable with no entry (an empty dict) stays empty
            out.setdefault(t, {})
        return out

    def _compute(self, ctx: Context) -> tuple[TensorDict, dict[str, Any]]:
        key = self.config.index_key  # read before any work: a batch without it fails at once
        self._indices = (batch_index(ctx.lower_batch, key), batch_index(ctx.upper_batch, key))
        grads, diag = super()._compute(ctx)
        diag.update(lower_entries=len(self.lower_memory.entries), upper_entries=len(self.upper_memory.entries))
        return grads, diag

    def _extra_state(self) -> dict[str, Any]:
        return {"lower_memory": self.lower_memory.state_dict(), "upper_memory": self.upper_memory.state_dict()}

    def _load_extra(self, state: dict[str, Any]) -> None:
        for name in ("lower_memory", "upper_memory"):
            memory = SagaMemory()
            if state.get(name) is not None:
                memory.load_state_dict(state[name])
            setattr(self, name, memory)
