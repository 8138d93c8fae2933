"""Linear solvers on dicts of tensors, for ``H v = b`` given only products ``v -> H v``."""
from __future__ import annotations

from typing import Callable

import torch

from .tensors import TensorDict, axpy, dot, scale

MatVec = Callable[[TensorDict], TensorDict]


def conjugate_gradient(matvec: MatVec, b: TensorDict, iters: int, tol: float = 0.0,
                       x0: TensorDict | None = None) -> tuple[TensorDict, int, float]:
    """Solve ``H x = b`` for symmetric positive definite ``H`` by conjugate gradient.

    Stops after ``iters`` products or when ``||r|| <= tol * ||b||``. Returns the solution, the
    number of iterations run and the final relative residual."""
    x = {k: torch.zeros_like(v) for k, v in b.items()} if x0 is None else dict(x0)
    r = dict(b) if x0 is None else axpy(-1.0, matvec(x), b)
    p = dict(r)
    rr = dot(r, r)
    b_norm = torch.sqrt(dot(b, b)).clamp_min(torch.finfo(rr.dtype).tiny)
    it = 0
    for it in range(1, iters + 1):
        if tol > 0 and float(torch.sqrt(rr) / b_norm) <= tol:
            it -= 1
            break
        hp = matvec(p)
        alpha = rr / dot(p, hp)
        x = axpy(alpha, p, x)
        r = axpy(-alpha, hp, r)
        rr_new = dot(r, r)
        p = axpy(rr_new / rr, p, r)
        rr = rr_new
    return x, it, float(torch.sqrt(rr) / b_norm)


def neumann_series(matvec: MatVec, b: TensorDict, iters: int, alpha: float,
                   x0: TensorDict | None = None) -> TensorDict:
    """``alpha * sum_{j=0..iters} (I - alpha H)^j b``, the truncated Neumann series of ``H^-1 b``
    (converges when ``0 < alpha < 2 / lambda_max(H)``), ``iters`` products.

    It is ``iters + 1`` Richardson steps ``x <- x + alpha (b - H x)`` from 0; with ``x0`` (a warm
    start) the same steps start from ``x0``: ``(I - alpha H)^(iters+1) x0`` plus the series,
    ``iters + 1`` products."""
    if x0 is not None:
        x = dict(x0)
        for _ in range(iters + 1):
            x = axpy(alpha, axpy(-1.0, matvec(x), b), x)
        return x
    term = dict(b)
    total = dict(b)
    for _ in range(iters):
        term = axpy(-alpha, matvec(term), term)
        total = axpy(1.0, term, total)
    return scale(alpha, total)
