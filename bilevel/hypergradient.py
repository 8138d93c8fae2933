"""The one public call: ``hypergradient(problem, method, lower_batch, upper_batch, **options)``."""
from __future__ import annotations

import time
from typing import Any

import torch

from .base import Context, Hypergradient, Method
from .methods import METHODS
from .problem import BilevelProblem
from .tensors import norm


def make_method(method: str | Method, options: dict[str, Any] | None = None) -> Method:
    """A method instance from its name and options (unknown names/options: a clear error)."""
    if isinstance(method, Method):
        if options:
            raise TypeError("options go to the method's config; pass a name, or a built method without options")
        return method
    if method not in METHODS:
        raise KeyError(f"unknown hypergradient method {method!r}; choose one of: {', '.join(sorted(METHODS))}")
    return METHODS[method].from_options(dict(options or {}))


def _sync(tensors: dict[str, torch.Tensor]) -> None:
    for t in tensors.values():
        if t.is_cuda:
            torch.cuda.synchronize(t.device)
            return


def hypergradient(problem: BilevelProblem, method: str | Method, lower_batch: Any, upper_batch: Any,
                  lower_optimizer: torch.optim.Optimizer | None = None, **options: Any) -> Hypergradient:
    """Gradient of the upper objective w.r.t. each upper variable, by ``method``.

    Args:
        problem: the bilevel problem; its variables are read, never changed.
        method: a name of ``bilevel.METHODS`` (or a built method).
        lower_batch, upper_batch: handed to ``lower_loss`` / ``upper_loss`` unchanged.
        lower_optimizer: the lower-level optimizer, when the method should follow its update
            (``darts2``'s virtual step; the unrolled methods' steps): ``torch.optim.SGD``.
        **options: fields of the method's config dataclass (``bilevel.METHODS[name].Config``).

    Returns:
        ``Hypergradient``: a dict upper-name -> gradient (detached, shapes of the variables; also
        ``iaptt``'s auxiliary variables), with ``.diagnostics`` (method, time_s, losses, norms)
        and ``.lower``: the lower variables' direction of the joint methods
        (``METHODS[name].updates_lower``), else ``None``. Joint methods keep state across
        calls: pass the same built method (``make_method``) every time.
    """
    m = make_method(method, options)
    m.setup(problem)
    ctx = Context.create(problem, lower_batch, upper_batch, lower_optimizer)
    _sync(ctx.y)
    start = time.perf_counter()
    grads, diagnostics = m.compute(ctx)
    grads = {k: g.detach() for k, g in grads.items()}
    lower = ctx.lower_direction
    if m.updates_lower != (lower is not None):
        raise RuntimeError(f"method {m.name!r}: updates_lower={m.updates_lower} but compute "
                           f"{'set no' if lower is None else 'set a'} lower direction")
    if lower is not None:
        lower = {k: d.detach() for k, d in lower.items()}
    _sync(grads)
    diagnostics = {"method": m.name, "time_s": time.perf_counter() - start, **diagnostics,
                   "grad_norm": float(norm(grads))}
    if lower is not None:
        diagnostics["lower_direction_norm"] = float(norm(lower))
    return Hypergradient(grads, diagnostics, lower)
